"""Many files at once: worker threads that decode, detect speech and score, with a decode watchdog.

A file whose decoding makes no progress for ``decode_timeout_s`` is answered ``error`` and its worker thread
replaced (see :class:`Workers` for what cannot be stopped). The worker reports progress through the file's
:class:`Watch`; the thread waiting for the answer (:func:`wait_for`) gives up on it. A batch's short speech is scored
on the same threads (:func:`score_batch`). :func:`voicegender.listen.predict.iter_predictions` drives them.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from ..voice.model import SCORE_PART_MIN, Model, Scores, joined_scores, score_parts, score_speech
from .prediction import Prepared

log = logging.getLogger(__name__)

CLOSE_JOIN_S = 2.0  # at the end of a run, seconds to wait for the worker threads to leave (stuck ones are not)
MAX_STUCK_DECODES = 4  # worker threads replaced per run while their decoder is stuck; then remaining files: error


# --- one file's progress: what the watchdog watches ----------------------------------------------------------------
class _Abandoned(BaseException):
    """Raised in a worker whose file was given up, at its next progress report (a BaseException, as
    asyncio.CancelledError: no ``except Exception`` on the way may swallow it)."""


class Watch:
    """Progress of one file's decoding: the worker reports it, the thread waiting for the answer may give up."""

    def __init__(self) -> None:
        self.last: float | None = None  # time.monotonic() of the last progress; None: not started
        self.abandoned = False
        self.replaced = False  # the worker running it was replaced by a new thread

    def begin(self) -> None:
        self.last = time.monotonic()

    def progress(self, n: int = 1) -> None:
        """``n`` more frames decoded (0: none, but still running); stops the work once it was given up."""
        if self.abandoned:
            raise _Abandoned
        if n:
            self.last = time.monotonic()


# --- a batch's speech, scored on the workers -----------------------------------------------------------------------
def _score_part(model: Model, waves: list[np.ndarray], watch: Watch) -> Scores:
    return score_speech(model, waves)


def score_batch(model: Model, waves: list[np.ndarray], workers: Workers | None) -> Scores:
    """:func:`~voicegender.voice.model.score_speech` of a batch, split over the worker threads for models that
    score each clip on its own (``model.scores_clips_apart``).

    Why: the thread waiting for the batch scoring it was the bottleneck: the encoder (2.5 ms per clip) took one
    core while the workers, done with the next batches, idled. 1,024 AudioMNIST-AZ clips in-process on 2 cores:
    3.4-3.5 s with the model in the waiting thread, 2.6-2.9 s split over the workers (three alternating runs, load
    0.7-1.2). The parts go before waiting decodes (``urgent``) and no thread is added: each core runs one task
    (onnxruntime on 1 intra-op thread; two sessions side by side lose 2-6 % per window, measured). The shipped kind
    (:class:`~voicegender.voice.default_model.VoiceModel`) scores each clip on its own, so the parts give the answers
    of one call (to 1e-16); other models (checkpoints, plain scorers, which may batch clips together) keep one call
    in this thread. When
    every worker is stuck on a file the watchdog gave up, a part still waiting is scored here.
    """
    parts = 1 if workers is None or not model.scores_clips_apart else min(workers.size, len(waves) // SCORE_PART_MIN)
    if parts <= 1:
        return score_speech(model, waves)
    spans = score_parts(waves, parts)
    futures = [workers.submit(_score_part, model, waves[a:b], urgent=True)[0] for a, b in spans]
    results = []
    for future, (a, b) in zip(futures, spans, strict=True):
        while True:
            try:
                results.append(future.result(timeout=0.5))
                break
            except FutureTimeout:
                if workers.exhausted and future.cancel():
                    results.append(score_speech(model, waves[a:b]))
                    break
    return joined_scores(results)


# --- the threads and the watchdog ----------------------------------------------------------------------------------
class Workers:
    """Daemon threads decoding files; a file that makes no progress is given up and its thread replaced.

    Python cannot stop a thread. A worker whose file was given up stops at its next progress report (every block,
    PyAV frame, or step of the analysis): memory is freed and the thread leaves, since a new one took its place.
    A decoder stuck inside one C call (libsndfile, FFmpeg, soxr) never reports: its thread keeps running, with
    the memory it holds, until that call returns. Such threads are daemons (they do not keep the process alive
    at exit, unlike ThreadPoolExecutor's, which are joined), at most :data:`MAX_STUCK_DECODES` are replaced per
    run, and once every worker is stuck the files still waiting are answered error instead of waiting forever.
    """

    def __init__(self, workers: int, max_stuck: int | None = None) -> None:
        # (priority, order, task): scoring (0) before decoding (1) before the stop signal (2), else first come
        self._tasks: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self.size = workers
        self._lock = threading.Lock()
        self._serving = 0  # threads taking tasks
        self._stuck = 0  # threads busy with a given-up task
        self._replaced = 0
        self._max_stuck = MAX_STUCK_DECODES if max_stuck is None else max_stuck
        self._threads: dict[threading.Thread, Watch | None] = {}  # each thread and the task it runs (None: idle)
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        self._serving += 1
        thread = threading.Thread(target=self._run, name="voicegender-decode", daemon=True)
        self._threads[thread] = None
        thread.start()

    def submit(self, fn: Callable[..., object], *args, urgent: bool = False) -> tuple[Future, Watch]:
        """Run ``fn(*args, watch)`` on a worker; ``urgent`` tasks go before every waiting non-urgent one."""
        future: Future = Future()
        watch = Watch()
        self._tasks.put((0 if urgent else 1, next(self._order), (future, watch, fn, args)))
        return future, watch

    def _run(self) -> None:
        while (task := self._tasks.get()[2]) is not None:
            future, watch, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            watch.begin()
            self._threads[threading.current_thread()] = watch
            try:
                future.set_result(fn(*args, watch))
            except BaseException as e:  # _Abandoned, or a bug: the waiting thread re-raises it (unless it gave up)
                future.set_exception(e)
            self._threads[threading.current_thread()] = None
            with self._lock:
                if watch.abandoned:
                    self._stuck -= 1
                    if watch.replaced:  # a new thread took this one's place
                        return
                    self._serving += 1

    def give_up(self, future: Future, watch: Watch) -> bool:
        """Abandon a running task (False if it finished meanwhile); replace its thread while allowed."""
        with self._lock:
            if future.done():
                return False
            watch.abandoned = True
            self._serving -= 1
            self._stuck += 1
            if self._replaced < self._max_stuck:
                self._replaced += 1
                watch.replaced = True
                self._spawn()
            return True

    @property
    def exhausted(self) -> bool:
        """Every thread is stuck and none may be added: waiting tasks would never start."""
        return self._serving <= 0

    def close(self, pending: Iterable[Future] = (), join_s: float = CLOSE_JOIN_S) -> None:
        """Cancel ``pending`` tasks, stop the threads, and wait up to ``join_s`` for those not stuck on a given-up
        file to leave: a daemon thread still inside torch or onnxruntime when the interpreter exits can abort the
        process ("terminate called without an active exception", exit 134) after every answer was written."""
        for future in pending:
            future.cancel()
        with self._lock:
            for _ in range(self._serving + self._stuck):
                self._tasks.put((2, next(self._order), None))
        deadline = time.monotonic() + join_s
        for thread, watch in list(self._threads.items()):
            if watch is None or not watch.abandoned:
                thread.join(max(0.0, deadline - time.monotonic()))


def wait_for(future: Future, watch: Watch, path: str, workers: Workers, timeout_s: float) -> Prepared:
    """The worker's answer for ``path``, or an error row once its decoding made no progress for ``timeout_s``."""
    poll = min(1.0, timeout_s / 4) if timeout_s > 0 else None
    while True:
        try:
            return future.result(timeout=poll)
        except FutureTimeout:
            pass
        if watch.last is not None and time.monotonic() - watch.last > timeout_s and workers.give_up(future, watch):
            log.warning("%s: decoding made no progress for %g s; given up", path, timeout_s)
            return Prepared(path, error=f"{path}: decoding made no progress for {timeout_s:g} s; gave up "
                                         "(a corrupt or hostile file?)")
        if watch.last is None and workers.exhausted and future.cancel():
            return Prepared(path, error=f"{path}: not decoded: every decoder thread is stuck on an earlier file")
