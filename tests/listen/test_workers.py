"""predict's worker threads: batches scored in parts on the workers, scoring before decoding, stuck workers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from voicegender.audio.synth import synth_voice
from voicegender.listen import workers as workers_mod
from voicegender.listen.workers import Workers, score_batch
from voicegender.voice.model import ScorerModel, score_speech


@pytest.fixture(scope="module")
def model():
    from voicegender.voice.default_model import load_default_model

    return load_default_model()


def _waves(n: int) -> list[np.ndarray]:
    return [synth_voice(100 + 9 * i, 0.4 + 0.37 * (i % 9), seed=i) for i in range(n)]


def test_split_over_the_workers_gives_the_answers_of_one_call(model):
    waves = _waves(37)
    workers = Workers(2)
    try:
        got = score_batch(model, waves, workers)
    finally:
        workers.close()
    want = score_speech(model, waves)
    np.testing.assert_allclose(got.p_female, want.p_female, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.p_child, want.p_child, rtol=0, atol=1e-6)


def test_plain_scorers_get_the_whole_batch_in_one_call_in_this_thread():
    calls = []

    def scorer(waves):
        calls.append((len(waves), threading.current_thread()))
        return np.full(len(waves), 0.7)

    workers = Workers(2)
    try:
        got = score_batch(ScorerModel(scorer), _waves(20), workers)
    finally:
        workers.close()
    assert calls == [(20, threading.current_thread())] and got.p_child is None and np.all(got.p_female == 0.7)


def test_scoring_goes_before_waiting_decodes():
    workers = Workers(1)
    order, gate = [], threading.Event()
    try:
        workers.submit(lambda watch: gate.wait(5))  # occupies the only worker
        for i in range(3):
            workers.submit(lambda watch, i=i: order.append(f"decode {i}"))
        future, _ = workers.submit(lambda watch: order.append("score"), urgent=True)
        gate.set()
        future.result(timeout=5)
        time.sleep(0.2)
    finally:
        workers.close()
    assert order[0] == "score" and sorted(order[1:]) == ["decode 0", "decode 1", "decode 2"]


def test_a_batch_is_still_scored_when_every_worker_is_stuck(model, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(workers_mod, "SCORE_PART_MIN", 2)
    workers = Workers(2, max_stuck=0)
    release = threading.Event()
    stuck = [workers.submit(lambda watch: release.wait(30)) for _ in range(2)]
    while any(watch.last is None for _, watch in stuck):  # both running
        time.sleep(0.01)
    assert all(workers.give_up(future, watch) for future, watch in stuck) and workers.exhausted
    try:
        started = time.monotonic()
        got = score_batch(model, _waves(4), workers)  # two parts, no worker to run them: scored here
        assert len(got.p_female) == 4 and time.monotonic() - started < 20
    finally:
        release.set()
        workers.close()


def test_close_waits_for_running_workers_but_not_for_a_stuck_one():
    """A worker thread still inside torch or onnxruntime as the interpreter exits can abort the process (exit 134
    after every answer was written): close() lets the threads leave first, except one stuck on a given-up file."""
    workers = Workers(2, max_stuck=1)
    release = threading.Event()
    stuck_future, stuck_watch = workers.submit(lambda watch: release.wait(30))
    while stuck_watch.last is None:
        time.sleep(0.01)
    assert workers.give_up(stuck_future, stuck_watch)  # a new thread takes its place
    busy, _ = workers.submit(lambda watch: time.sleep(0.3) or "done")
    started = time.monotonic()
    try:
        workers.close()
        assert busy.done() and busy.result() == "done"  # close waited for the running task
        assert [w for t, w in workers._threads.items() if t.is_alive()] == [stuck_watch]
        assert time.monotonic() - started < workers_mod.CLOSE_JOIN_S
    finally:
        release.set()
