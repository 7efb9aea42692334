"""The numpy median filter equals scipy's (mode "nearest"), for the segment option that used scipy."""

from __future__ import annotations

import numpy as np
import pytest

from voicegender.listen.smoothing import median_filter


@pytest.mark.parametrize("size", [1, 2, 3, 4, 9, 10, 31])
def test_equals_scipy_median_filter(size: int):
    ndimage = pytest.importorskip("scipy.ndimage", reason="the reference needs scipy (fit extras)")
    rng = np.random.default_rng(size)
    for x in (rng.normal(size=200), rng.choice([-1.0, 0.0, 1.0], 57), rng.normal(size=5)):
        np.testing.assert_array_equal(median_filter(x, size), ndimage.median_filter(x, size=size, mode="nearest"))
    assert median_filter(np.zeros(0), size).shape == (0,)
