"""Turns decoded again frame by frame once the speakers are known (voicegender.listen.resegment), on synthetic
voices with known turns, and its Viterbi against brute force."""

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from voicegender.audio.decode import spans_of
from voicegender.audio.synth import synth_voice
from voicegender.listen.resegment import TurnVoices, pieces, resegment, viterbi_min_duration
from voicegender.listen.speakers import Speaker, speakers_in

RATE = 16_000
F0 = {0: 120.0, 1: 230.0, 2: 160.0}
VOCAL_TRACT = {0: 1.0, 1: 1.2, 2: 1.08}


@dataclass
class FakeTurn:
    start_s: float
    end_s: float
    speaker: int


def track(turns: list[tuple[float, float, int]], seed: int = 0) -> np.ndarray:
    end = max(e for _, e, _ in turns)
    audio = np.zeros(int(round(end * RATE)), np.float32)
    for i, (a, b, k) in enumerate(turns):
        n = int(round(b * RATE)) - int(round(a * RATE))
        audio[int(round(a * RATE)):int(round(a * RATE)) + n] = synth_voice(F0[k], n / RATE, seed=seed + i,
                                                                           formant_scale=VOCAL_TRACT[k])[:n]
    return audio


def heard(audio: np.ndarray, turns: list[FakeTurn]) -> TurnVoices:
    """What the encoder's read hears: each turn's middle 2 s."""
    voices = TurnVoices(len(turns))
    for i, t in enumerate(turns):
        mid = (t.start_s + t.end_s) / 2
        a, b = max(t.start_s, mid - 1.0), min(t.end_s, mid + 1.0)
        voices.hear(i, audio[int(a * RATE):int(b * RATE)])
    return voices


def redo(audio: np.ndarray, turns: list[FakeTurn]) -> list[FakeTurn]:
    return resegment(turns, heard(audio, turns), lambda spans: spans_of([audio], spans), RATE, FakeTurn)


def brute_force(scores: np.ndarray, penalty: float | np.ndarray, min_frames: int) -> float:
    """The best total score over every path whose runs all last at least ``min_frames`` (one state throughout when
    there are fewer frames); a change into frame t costs ``penalty`` (or ``penalty[t]``)."""
    n, k = scores.shape
    cost = np.broadcast_to(np.asarray(penalty, float), (n,))
    best = -np.inf
    for path in itertools.product(range(k), repeat=n):
        cuts = [t for t in range(1, n) if path[t] != path[t - 1]]
        runs = np.diff([0, *cuts, n])
        if runs.min() < min(min_frames, n):
            continue
        best = max(best, scores[np.arange(n), path].sum() - cost[cuts].sum())
    return best


@pytest.mark.parametrize("seed", range(12))
def test_viterbi_finds_the_best_path_that_keeps_every_turn_long_enough(seed: int):
    rng = np.random.default_rng(seed)
    k, n, d = int(rng.integers(2, 4)), int(rng.integers(2, 8)), int(rng.integers(1, 5))
    scores = rng.normal(size=(n, k))
    path = viterbi_min_duration(scores, 0.7, d)
    cuts = np.flatnonzero(np.diff(path)) + 1
    assert np.all(np.diff([0, *cuts, n]) >= min(d, n))  # every run lasts at least d frames
    total = scores[np.arange(n), path].sum() - 0.7 * len(cuts)
    assert total == pytest.approx(brute_force(scores, 0.7, d))


@pytest.mark.parametrize("seed", range(8))
def test_viterbi_with_a_cost_per_frame_finds_the_best_path(seed: int):
    rng = np.random.default_rng(100 + seed)
    k, n, d = int(rng.integers(2, 4)), int(rng.integers(2, 8)), int(rng.integers(1, 4))
    scores = rng.normal(size=(n, k))
    cost = rng.uniform(0.0, 2.0, size=n)
    path = viterbi_min_duration(scores, cost, d)
    cuts = np.flatnonzero(np.diff(path)) + 1
    assert np.all(np.diff([0, *cuts, n]) >= min(d, n))
    assert scores[np.arange(n), path].sum() - cost[cuts].sum() == pytest.approx(brute_force(scores, cost, d))


def test_a_change_is_taken_where_it_costs_less():
    scores = np.zeros((40, 2))
    scores[:, 0] = 0.1
    scores[20:, 1] = 0.2  # the other state is better from frame 20 on, by less than a change costs
    assert viterbi_min_duration(scores, 3.0, 5).tolist() == [0] * 40
    cost = np.full(40, 3.0)
    cost[20] = 0.5  # ... except at frame 20 (a local speaker change heard there)
    assert viterbi_min_duration(scores, cost, 5).tolist() == [0] * 20 + [1] * 20


def test_a_piece_starts_and_ends_with_turns_long_enough():
    scores = np.full((40, 2), [0.1, 0.0])
    scores[:3, 1] = 2.0  # the first 3 frames the other state: too short a turn of their own at the start
    path = viterbi_min_duration(scores, 1.0, 15)
    assert np.all(np.diff([0, *(np.flatnonzero(np.diff(path)) + 1), 40]) >= 15)
    assert viterbi_min_duration(scores, 1.0, 1)[:4].tolist() == [1, 1, 1, 0]  # allowed when turns may be short
    assert viterbi_min_duration(scores[:5], 1.0, 15).tolist() == [1] * 5  # shorter than a turn: one state


def test_viterbi_keeps_a_blip_shorter_than_a_turn_out():
    scores = np.zeros((40, 2))
    scores[:, 0] = 1.0
    scores[10:13, 1] = 2.0  # 3 frames the other state: worth a change only if a turn may be that short
    assert viterbi_min_duration(scores, 1.0, 1)[10:13].tolist() == [1, 1, 1]
    assert viterbi_min_duration(scores, 1.0, 5).tolist() == [0] * 40  # shorter than 5 frames: not a turn


def test_a_short_turn_the_changes_missed_is_found():
    true = [(0.0, 4.0, 0), (4.0, 4.8, 1), (4.8, 9.0, 0), (9.0, 13.0, 1)]
    audio = track(true)
    turns = redo(audio, [FakeTurn(0.0, 9.0, 0), FakeTurn(9.0, 13.0, 1)])  # the reply at 4.0-4.8 s missed
    got = [(round(t.start_s, 2), round(t.end_s, 2), t.speaker) for t in turns]
    assert [s for _, _, s in got] == [0, 1, 0, 1]
    assert abs(turns[1].start_s - 4.0) <= 0.1 and abs(turns[1].end_s - 4.8) <= 0.1, got
    assert abs(turns[3].start_s - 9.0) <= 0.1
    assert turns[0].start_s == 0.0 and turns[-1].end_s == 13.0  # the piece's ends stay
    assert all(a.end_s == b.start_s for a, b in zip(turns[:-1], turns[1:], strict=True))


def test_a_change_costs_nothing_where_the_local_speakers_surely_change(monkeypatch):
    """The decoding's change cost follows pyannote's local speaker change: SWITCH_PENALTY where there is none, 0
    where it is sure, and the same turns as without it when the audio says the same."""
    from voicegender.listen import resegment as module
    from voicegender.speech.overlap import LocalChange

    true = [(0.0, 4.0, 0), (4.0, 4.8, 1), (4.8, 9.0, 0), (9.0, 13.0, 1)]
    audio = track(true)
    step = 0.016875
    scores = np.zeros(int(13.0 / step), np.uint8)
    scores[int(round(6.0 / step))] = 255  # sure at 6.0 s
    scores[int(round(8.0 / step))] = 51  # a fifth as sure at 8.0 s
    change = LocalChange(scores, step_s=step, first_s=0.0)
    costs = []
    viterbi = module.viterbi_min_duration
    monkeypatch.setattr(module, "viterbi_min_duration", lambda s, cost, d: costs.append(cost) or viterbi(s, cost, d))
    given = [FakeTurn(0.0, 9.0, 0), FakeTurn(9.0, 13.0, 1)]
    turns = resegment(given, heard(audio, given), lambda spans: spans_of([audio], spans), RATE, FakeTurn, change)
    (cost,), times = costs, np.arange(len(costs[0])) * module.FRAME_S  # frame times from the piece start, 0 s
    assert cost[np.argmin(np.abs(times - 6.0))] == 0.0 and cost.max() == module.SWITCH_PENALTY
    assert cost[np.argmin(np.abs(times - 8.0))] == pytest.approx(0.8 * module.SWITCH_PENALTY)
    assert np.count_nonzero(cost < module.SWITCH_PENALTY) == 2
    assert [(t.speaker, round(t.start_s, 1)) for t in turns] == [(t.speaker, round(t.start_s, 1)) for t in redo(
        audio, given)]


def test_turns_that_are_right_stay_as_they_are():
    true = [(0.0, 4.0, 0), (4.0, 8.0, 1), (8.0, 12.0, 2), (12.0, 16.0, 0)]
    audio = track(true, seed=3)
    turns = redo(audio, [FakeTurn(a, b, k) for a, b, k in true])
    assert [t.speaker for t in turns] == [0, 1, 2, 0]
    assert np.max(np.abs([t.end_s for t in turns] - np.array([4.0, 8.0, 12.0, 16.0]))) <= 0.1


def test_only_touching_turns_of_two_or_more_speakers_with_voices_are_read_again():
    turns = [FakeTurn(0.0, 3.0, 0), FakeTurn(3.0, 6.0, 0),  # one speaker: nothing to decide
             FakeTurn(7.0, 9.0, 0), FakeTurn(9.0, 12.0, 1),  # two speakers
             FakeTurn(13.0, 15.0, 1), FakeTurn(15.0, 15.2, 2)]  # speaker 2: too little audio for a voice
    voices = {0: object(), 1: object()}
    assert pieces(turns, voices) == [[2, 3]]
    # a turn of a speaker without a voice stays, and cuts the run it is in
    assert pieces([FakeTurn(0.0, 3.0, 0), FakeTurn(3.0, 3.2, 2), FakeTurn(3.2, 6.0, 1)], voices) == []
    audio = track([(0.0, 6.0, 0), (7.0, 9.0, 0), (9.0, 12.0, 1), (13.0, 15.0, 1), (15.0, 15.2, 2)])
    read = []

    def read_spans(spans):
        read.extend(spans)
        return spans_of([audio], spans)

    out = resegment(turns, heard(audio, turns), read_spans, RATE, FakeTurn)
    assert read == [(7 * RATE, 12 * RATE)]
    assert out[:2] == turns[:2] and out[-2:] == turns[-2:]  # the same turns, untouched


def test_long_runs_of_turns_are_decoded_in_pieces():
    turns = [FakeTurn(20.0 * i, 20.0 * (i + 1), i % 2) for i in range(7)]  # 140 s of touching turns
    got = pieces(turns, {0: object(), 1: object()})
    assert [len(p) for p in got] == [3, 3] and got[0][0] == 0  # the 7th turn alone holds one speaker


def test_speakers_are_counted_again_and_numbered_in_order_of_appearance():
    voices = [Speaker(f"S{i + 1}", g, p, None, 0.0, 0) for i, (g, p) in
              enumerate([("female", 0.9), ("male", 0.1), ("female", 0.8)])]

    @dataclass
    class T:
        start_s: float
        end_s: float
        speaker: int

    turns = [T(0.0, 2.0, 1), T(2.0, 3.0, 1), T(3.0, 5.0, 0), T(5.0, 6.0, 1)]  # speaker 2 lost all its time
    out = speakers_in(turns, voices)
    assert [(s.id, s.label, s.p_female, s.speech_s, s.turns) for s in out] == [
        ("S1", "male", 0.1, 4.0, 2), ("S2", "female", 0.9, 2.0, 1)]
    assert [t.speaker for t in turns] == [0, 0, 1, 0]


def test_diarize_finds_a_reply_shorter_than_the_changes_can_mark():
    """End to end: the windows mark changes at least 1 s apart, so a 0.8 s reply is heard as part of its
    neighbour's turn; the third read gives it to its speaker (the fake encoder tells voices apart by pitch)."""
    from conftest import windows_of

    from voicegender.listen.speakers import SpeakerOptions, diarize
    from voicegender.voice.pitch import median_pitch

    true = [(0.0, 4.0, 0), (4.0, 4.8, 1), (4.8, 9.0, 0), (9.0, 13.0, 1), (13.0, 17.0, 0)]
    audio = track(true, seed=5)
    w = windows_of(true, {0: -3.0, 1: 3.0})

    class PitchEncoder:
        def embed(self, waves):
            out = np.zeros((len(waves), 4))
            for i, x in enumerate(waves):
                out[i, min((0, 1), key=lambda k: abs(F0[k] - median_pitch(x)))] = 1.0
            return out

    def run(options):
        result = diarize(w, [(0, len(audio))], lambda a, b: np.ones(b - a, bool), options, RATE,
                         lambda spans: spans_of([audio], spans), PitchEncoder())
        return [(t.start_s, t.end_s, result.speakers[t.speaker].label) for t in result.turns]

    before = run(SpeakerOptions(resegment=False))
    after = run(SpeakerOptions())
    assert not any(abs(a - 4.0) < 0.3 and abs(b - 4.8) < 0.3 for a, b, _ in before)  # missed without it
    reply = [(a, b, g) for a, b, g in after if a < 4.8 and b > 4.0]
    assert any(abs(a - 4.0) <= 0.1 and abs(b - 4.8) <= 0.1 and g == "female" for a, b, g in reply), after


def test_diarize_moves_changes_the_windows_put_on_their_half_second_grid_to_the_true_ones():
    """The windows see changes only every 0.5 s; decoded again, the changes between speakers fall on the true ones
    (the fake encoder tells voices apart by pitch)."""
    from conftest import windows_of

    from voicegender.listen.speakers import SpeakerOptions, diarize
    from voicegender.voice.pitch import median_pitch

    true = [(0.0, 4.3, 0), (4.3, 7.2, 1), (7.2, 12.1, 2), (12.1, 15.3, 0), (15.3, 19.8, 1), (19.8, 24.0, 2)]
    audio = track(true, seed=7)
    w = windows_of(true, {0: -3.0, 1: 3.0, 2: -2.0})

    class PitchEncoder:
        def embed(self, waves):
            out = np.zeros((len(waves), 4))
            for i, x in enumerate(waves):
                out[i, min(F0, key=lambda k: abs(F0[k] - median_pitch(x)))] = 1.0
            return out

    def ends(options):
        result = diarize(w, [(0, len(audio))], lambda a, b: np.ones(b - a, bool), options, RATE,
                         lambda spans: spans_of([audio], spans), PitchEncoder())
        return np.array([t.end_s for t in result.turns[:-1]])

    truth = [4.3, 7.2, 12.1, 15.3, 19.8]
    assert np.max(np.abs(ends(SpeakerOptions(resegment=False)) - truth)) >= 0.15  # on the windows' grid
    assert np.max(np.abs(ends(SpeakerOptions()) - truth)) <= 0.06


def test_silence_and_scraps_describe_no_voice():
    voices = TurnVoices(3)
    voices.hear(0, np.zeros(2 * RATE, np.float32))  # digital silence
    voices.hear(1, synth_voice(120.0, 0.02, seed=1))  # shorter than four frames
    voices.hear(2, synth_voice(120.0, 2.0, seed=2))
    assert set(voices.voices([0, 1, 2])) == {2}
    assert not voices.stats[:2].any()


def test_a_piece_the_reader_does_not_give_back_keeps_its_turns():
    audio = track([(0.0, 4.0, 0), (4.0, 8.0, 1)])
    turns = [FakeTurn(0.0, 4.0, 0), FakeTurn(4.0, 8.0, 1)]
    assert resegment(turns, heard(audio, turns), lambda spans: iter(()), RATE, FakeTurn) == turns
    past_the_end = lambda spans: ((i, np.zeros(0, np.float32)) for i in range(len(spans)))  # noqa: E731
    out = resegment(turns, heard(audio, turns), past_the_end, RATE, FakeTurn)
    assert [(t.start_s, t.end_s, t.speaker) for t in out] == [(0.0, 4.0, 0), (4.0, 8.0, 1)]
