"""Whether a recording is narrow-band: a telephone line (300–3400 Hz) or anything sampled at 8 kHz, whatever rate
it was saved at.

Streamed: :class:`BandwidthMeter` looks at one 32 ms frame every quarter second and adds up the power between
300 Hz and 3.4 kHz and between 4.2 and 7.8 kHz. A recording is narrow-band when the upper band holds less than
:data:`NARROWBAND_DB` of the lower one. Measured on the development conversations (100 mixes,
benchmarks/conversations.py --seed 1000): through the telephone line −79 to −73 dB; clean, noisy, babble and music
mixes −22 to −6 dB; a synthetic voice with little above 4 kHz (``synth.synth_voice``) −42 dB.
"""

from __future__ import annotations

import numpy as np

NARROWBAND_DB = -55.0  # upper band / lower band power below this: narrow-band (dull wide-band sound: -20 to -45)
FRAME = 512  # samples per look (32 ms at 16 kHz)


class BandwidthMeter:
    """Feed 16 kHz mono blocks; :attr:`narrowband` says whether what was fed is narrow-band."""

    def __init__(self, sample_rate: int = 16_000, every_s: float = 0.25) -> None:
        self.every = max(FRAME, int(every_s * sample_rate))
        freqs = np.fft.rfftfreq(FRAME, 1 / sample_rate)
        self._low = (freqs >= 300) & (freqs < 3400)
        self._high = (freqs >= 4200) & (freqs < 7800)
        self._window = np.hanning(FRAME).astype(np.float32)
        self._next = 0  # sample index of the next look
        self._buf = np.zeros(0, np.float32)  # audio from sample self._buf_start on (less than one look's spacing)
        self._buf_start = 0
        self.low_power = self.high_power = 0.0

    def feed(self, block: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, np.asarray(block, np.float32).reshape(-1)])
        end = self._buf_start + len(self._buf)
        starts = np.arange(self._next, end - FRAME + 1, self.every) - self._buf_start
        if len(starts):
            frames = self._buf[starts[:, None] + np.arange(FRAME)] * self._window
            power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
            self.low_power += float(power[:, self._low].sum())
            self.high_power += float(power[:, self._high].sum())
            self._next += len(starts) * self.every
        keep_from = min(self._next, end)
        self._buf = self._buf[keep_from - self._buf_start:]
        self._buf_start = keep_from

    @property
    def ratio_db(self) -> float | None:
        """Upper-band power over lower-band power in dB; None before any sound."""
        if self.low_power <= 0:
            return None
        return 10 * float(np.log10(max(self.high_power, 1e-30) / self.low_power))

    @property
    def narrowband(self) -> bool:
        ratio = self.ratio_db
        return ratio is not None and ratio < NARROWBAND_DB
