"""Speaker changes placed to the frame (voicegender.listen.turn_edges) on synthetic voices with known changes."""

from dataclasses import dataclass

import numpy as np
import pytest
from conftest import windows_of

from voicegender.audio.synth import synth_voice
from voicegender.listen.speakers import SpeakerOptions, diarize
from voicegender.listen.turn_edges import REACH_S, ChangesHeard, change_evidence, neighbourhood, place_changes
from voicegender.voice.pitch import median_pitch

RATE = 16_000
F0 = {0: 120.0, 1: 220.0, 2: 150.0, 3: 260.0}  # voice -> pitch (Hz) ...
VOCAL_TRACT = {0: 1.0, 1: 1.17, 2: 1.08, 3: 1.3}  # ... and formants (scale of the male ones)


@dataclass
class FakeTurn:
    start_s: float
    end_s: float
    speaker: int


def track(turns: list[tuple[float, float, int]], seed: int = 0) -> np.ndarray:
    """Audio of back-to-back turns (start_s, end_s, voice); silence where no turn is."""
    end = max(e for _, e, _ in turns)
    audio = np.zeros(int(round(end * RATE)), np.float32)
    for i, (a, b, k) in enumerate(turns):
        n = int(round(b * RATE)) - int(round(a * RATE))
        voice = synth_voice(F0[k], n / RATE, seed=seed + i, formant_scale=VOCAL_TRACT[k])
        audio[int(round(a * RATE)):int(round(a * RATE)) + n] = voice[:n]
    return audio


def evidence_of(audio: np.ndarray, turns: list[FakeTurn]) -> ChangesHeard:
    heard = ChangesHeard(len(turns) - 1)
    for i in range(len(turns) - 1):
        c = int(round(turns[i].end_s * RATE))
        a, b = neighbourhood(c, RATE)
        found = change_evidence(audio[a:b], a, c, RATE)
        if found is not None:
            heard.keep(i, i, found)
    return heard


TRUE = [(0.0, 3.0, 0), (3.0, 6.0, 1), (6.0, 9.0, 0), (9.0, 12.0, 1), (12.0, 15.0, 0)]


@pytest.mark.parametrize("shift", [-0.25, 0.3])  # the window detector is 0.2-0.3 s off on average
def test_changes_that_are_off_move_onto_the_true_ones(shift: float):
    audio = track(TRUE)
    cuts = [3.0 + shift, 6.0 - shift, 9.0 + shift, 12.0 - shift]
    edges = [0.0, *cuts, 15.0]
    turns = [FakeTurn(a, b, k % 2) for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))]
    assert place_changes(turns, evidence_of(audio, turns)) == 4
    placed = [t.end_s for t in turns[:-1]]
    assert np.max(np.abs(np.array(placed) - [3.0, 6.0, 9.0, 12.0])) <= 0.05
    assert all(t.start_s < t.end_s for t in turns)


def test_a_silence_between_two_voices_is_split_in_the_middle():
    audio = track(TRUE)
    audio[int(2.8 * RATE):int(3.2 * RATE)] = 0.0  # 0.4 s of silence around the change at 3.0
    turns = [FakeTurn(0.0, 3.45, 0), FakeTurn(3.45, 6.0, 1), FakeTurn(6.0, 9.0, 0), FakeTurn(9.0, 12.0, 1),
             FakeTurn(12.0, 15.0, 0)]
    place_changes(turns, evidence_of(audio, turns))
    assert abs(turns[0].end_s - 3.0) <= 0.06


def test_changes_between_the_same_speaker_or_without_evidence_stay():
    audio = track(TRUE)
    turns = [FakeTurn(0.0, 3.3, 0), FakeTurn(3.3, 6.0, 0), FakeTurn(6.0, 9.3, 1)]
    # voice 1's far frames (one side of one change, 0.3 s) are too few to describe it; the change at 3.3 is
    # within one speaker
    assert place_changes(turns, evidence_of(audio, turns)) == 0
    assert [t.end_s for t in turns] == [3.3, 6.0, 9.3]


def test_a_change_near_the_start_of_the_recording_and_silent_audio():
    audio = track([(0.0, 0.8, 1), (0.8, 4.0, 0), (4.0, 7.0, 1), (7.0, 10.0, 0), (10.0, 13.0, 1)])
    turns = [FakeTurn(0.0, 1.0, 1), FakeTurn(1.0, 4.2, 0), FakeTurn(4.2, 7.0, 1), FakeTurn(7.0, 9.8, 0),
             FakeTurn(9.8, 13.0, 1)]  # the first change's neighbourhood is cut short by the start of the file
    assert place_changes(turns, evidence_of(audio, turns)) == 4
    assert np.max(np.abs(np.array([t.end_s for t in turns[:-1]]) - [0.8, 4.0, 7.0, 10.0])) <= 0.06
    silent = np.zeros_like(audio)
    turns = [FakeTurn(0.0, 3.3, 0), FakeTurn(3.3, 6.2, 1), FakeTurn(6.2, 9.0, 0), FakeTurn(9.0, 13.0, 1)]
    assert place_changes(turns, evidence_of(silent, turns)) == 0  # digital silence says nothing of any voice
    assert [t.end_s for t in turns] == [3.3, 6.2, 9.0, 13.0]


def test_a_change_moves_no_further_than_its_reach_and_leaves_both_turns():
    audio = track(TRUE)
    turns = [FakeTurn(0.0, 2.0, 0), FakeTurn(2.0, 3.3, 1), FakeTurn(3.3, 6.0, 1), FakeTurn(6.0, 9.0, 0),
             FakeTurn(9.0, 12.0, 1), FakeTurn(12.0, 15.0, 0)]  # the first change is 1 s early: beyond reach
    place_changes(turns, evidence_of(audio, turns))
    assert 2.0 + REACH_S - 0.05 <= turns[0].end_s <= 2.0 + REACH_S + 1e-9  # as far as it may go towards 3.0
    assert turns[1].end_s - turns[1].start_s >= 0.2


def test_diarize_places_changes_that_the_windows_put_on_their_half_second_grid():
    """End to end: the windows see changes only every 0.5 s; with the second read of the audio, diarize moves the
    changes between speakers onto the true ones (the fake encoder tells voices apart by pitch)."""
    turns = [(0.0, 4.3, 0), (4.3, 7.2, 1), (7.2, 12.1, 2), (12.1, 15.3, 0), (15.3, 19.8, 3), (19.8, 24.0, 1)]
    audio = track(turns)
    w = windows_of(turns, {0: -3.0, 1: 3.0, 2: -2.5, 3: 2.0})

    class PitchEncoder:
        def embed(self, waves):
            out = np.zeros((len(waves), 8))
            for i, x in enumerate(waves):
                f0 = median_pitch(x)
                out[i, min(F0, key=lambda k: abs(F0[k] - f0))] = 1.0
            return out

    def read_spans(spans):
        return ((i, audio[a:b]) for i, (a, b) in enumerate(spans))

    def all_speech(a, b):
        return np.ones(b - a, bool)

    result = diarize(w, [(0, len(audio))], all_speech, SpeakerOptions(), RATE, read_spans, PitchEncoder())
    assert [s.label for s in result.speakers] == ["male", "female", "male", "female"]
    found = [t.end_s for t in result.turns[:-1]]
    assert np.max(np.abs(np.array(found) - [4.3, 7.2, 12.1, 15.3, 19.8])) <= 0.06
    unplaced = diarize(w, [(0, len(audio))], all_speech, SpeakerOptions(place_changes=False, resegment=False), RATE,
                       read_spans, PitchEncoder())
    assert np.max(np.abs(np.array([t.end_s for t in unplaced.turns[:-1]]) - [4.3, 7.2, 12.1, 15.3, 19.8])) >= 0.15


def test_changes_heard_gives_back_what_it_kept_in_turn_order():
    audio = track(TRUE)
    evidence = [change_evidence(audio[a:b], a, c, RATE)
                for c in (int(0.3 * RATE), 3 * RATE, 9 * RATE) for a, b in [neighbourhood(c, RATE)]]
    assert len(evidence[0].cepstra_int8) < len(evidence[1].cepstra_int8)  # cut short at the audio's start
    heard = ChangesHeard(4)
    for row, turn in ((2, 3), (0, 0), (1, 1)):  # kept out of order; row 3 never kept
        heard.keep(row, turn, evidence[row])
    got = list(heard.items())
    assert len(heard) == 3 and [i for i, _ in got] == [0, 1, 3]
    for (_, back), ev in zip(got, evidence, strict=True):
        assert back.first_s == pytest.approx(ev.first_s) and back.scale == pytest.approx(ev.scale)
        assert np.array_equal(back.cepstra_int8, ev.cepstra_int8) and np.array_equal(back.active, ev.active)
        assert np.allclose(back.before, ev.before) and np.allclose(back.after, ev.after)
