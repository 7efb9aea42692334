"""Speaker turns and speakers (voicegender.listen.speakers) from windows with known voices."""

import numpy as np
import pytest
from conftest import voice_vector, windows_of

from voicegender.listen.speakers import SpeakerOptions, change_points, diarize, split_turns

RATE = 16_000


def all_speech(a: int, b: int) -> np.ndarray:
    return np.ones(b - a, bool)


TURNS = [(0.0, 4.0, 0), (4.0, 7.0, 1), (7.0, 12.0, 2), (12.0, 15.0, 0), (15.0, 19.0, 3), (19.0, 23.0, 1)]
GENDERS = {0: 3.0, 1: -3.0, 2: 2.5, 3: -2.0}  # voices 0 and 2 are women, 1 and 3 men


def test_changes_fall_at_the_turn_boundaries():
    w = windows_of(TURNS, GENDERS)
    found = np.array(change_points(w, (0, 23 * RATE), SpeakerOptions())) / RATE
    truth = [t[0] for t in TURNS[1:]]
    assert len(found) == len(truth)
    assert np.max(np.abs(found - truth)) <= 0.5


def test_no_change_inside_one_voice_and_none_too_close_to_an_edge():
    w = windows_of([(0.0, 10.0, 0)], GENDERS)
    assert change_points(w, (0, 10 * RATE), SpeakerOptions()) == []
    w = windows_of([(0.0, 0.3, 1), (0.3, 8.0, 0)], GENDERS)  # a 0.3 s stub at the start: no turn of its own
    assert all(c / RATE >= SpeakerOptions().min_turn_s for c in change_points(w, (0, 8 * RATE), SpeakerOptions()))


def test_long_turns_are_cut_into_pieces():
    w = windows_of([(0.0, 50.0, 0)], GENDERS)
    turns = split_turns(w, [(0, 50 * RATE)], all_speech, SpeakerOptions(turn_max_s=20.0), RATE)
    assert len(turns) == 3 and all(t.end_s - t.start_s <= 20.0 for t in turns)
    assert turns[0].start_s == 0 and turns[-1].end_s == 50.0


@pytest.mark.parametrize("with_encoder", [False, True])
def test_speakers_their_genders_and_turns(with_encoder: bool):
    w = windows_of(TURNS, GENDERS)
    encoder = read_spans = None
    if with_encoder:  # a perfect encoder: reads which voice a span belongs to from a fake audio track
        voice_track = np.zeros(23 * RATE, np.float32)
        for t0, e, k in TURNS:
            voice_track[int(t0 * RATE):int(e * RATE)] = k

        class Encoder:
            def embed(self, waves):
                return np.stack([voice_vector(int(np.bincount(x.astype(int)).argmax())) for x in waves])

        encoder = Encoder()

        def read_spans(spans):
            return ((i, voice_track[a:b]) for i, (a, b) in enumerate(spans))

    # the fake track is no audio to decode frame by frame (tests/listen/test_resegment.py does that on voices)
    options = SpeakerOptions(resegment=False)
    result = diarize(w, [(0, 23 * RATE)], all_speech, options, RATE, read_spans, encoder)
    assert result.embedder == ("ecapa" if with_encoder else "ge2e")
    assert [s.id for s in result.speakers] == ["S1", "S2", "S3", "S4"]
    assert [s.label for s in result.speakers] == ["female", "male", "female", "male"]
    assert [s.turns for s in result.speakers] == [2, 2, 1, 1]
    assert [round(s.speech_s) for s in result.speakers] == [7, 7, 5, 4]
    assert all(s.p_child < 0.1 for s in result.speakers)
    # every turn's speaker is the voice that talks most of it
    for t in result.turns:
        mid = (t.start_s + t.end_s) / 2
        voice = next(k for t0, e, k in TURNS if t0 <= mid < e)
        assert result.speakers[t.speaker].id == f"S{[0, 1, 2, 3].index(voice) + 1}"


def test_a_model_without_embeddings_gives_no_speakers():
    w = windows_of(TURNS, GENDERS)
    w.change = w.embedding = None
    assert diarize(w, [(0, 23 * RATE)], all_speech, SpeakerOptions(), RATE).turns == []


def test_narrow_band_recordings_keep_close_voices_apart():
    """Through a telephone line different people sound closer to the speaker encoder: a narrow-band recording is
    clustered with its own, lower threshold, so two similar women stay two speakers."""
    w = windows_of(TURNS, GENDERS)
    voice_track = np.zeros(23 * RATE, np.float32)
    for t0, e, k in TURNS:
        voice_track[int(t0 * RATE):int(e * RATE)] = k
    close = {k: voice_vector(k) for k in range(4)}
    other = voice_vector(5) - (voice_vector(5) @ close[0]) * close[0]
    close[2] = 0.3 * close[0] + np.sqrt(1 - 0.3**2) * other / np.linalg.norm(other)  # voices 0 and 2: distance 0.7

    class Encoder:
        def embed(self, waves):
            return np.stack([close[int(np.bincount(x.astype(int)).argmax())] for x in waves])

    def read_spans(spans):
        return ((i, voice_track[a:b]) for i, (a, b) in enumerate(spans))

    options = SpeakerOptions(resegment=False)  # the fake track is no audio to decode frame by frame
    assert options.cluster_threshold_narrowband < 0.7 < options.cluster_threshold
    wide = diarize(w, [(0, 23 * RATE)], all_speech, options, RATE, read_spans, Encoder())
    narrow = diarize(w, [(0, 23 * RATE)], all_speech, options, RATE, read_spans, Encoder(), narrowband=True)
    assert len(wide.speakers) == 3 and len(narrow.speakers) == 4


def test_a_speakers_gender_is_heard_inside_its_turns():
    """Short turns of a woman between long turns of a man who sounds very male: windows across the changes hear
    him too, so the woman's gender comes from the windows wholly inside her turns."""
    from voicegender.listen.speakers import Turn, gender_windows, speakers_of

    layout = [(0.0, 6.0, 1), (6.0, 8.0, 0), (8.0, 14.0, 1), (14.0, 16.0, 0), (16.0, 22.0, 1)]
    w = windows_of(layout, {0: 1.0, 1: -8.0})
    centre = w.centre
    turns = []
    for a, b, k in layout:
        inside = np.flatnonzero((centre >= a * RATE) & (centre < b * RATE))
        turns.append(Turn(a, b, inside, b - a, k))
    hers = [t for t in turns if t.speaker == 0]
    chosen = gender_windows(hers, w, RATE)
    assert np.all(w.start[chosen] >= 6 * RATE) and len(chosen) >= 2  # only windows wholly inside her turns
    assert all(6 * RATE <= s and s + w.n_samples <= 8 * RATE or 14 * RATE <= s and s + w.n_samples <= 16 * RATE
               for s in w.start[chosen])
    # every window centred in her turns would average to male (the man's -8 in the windows across the changes)
    centred = np.concatenate([t.windows for t in hers])
    assert np.average(w.logit[centred], weights=w.weight[centred]) < 0
    assert [s.label for s in speakers_of(turns, w, RATE)] == ["female", "male"]


def test_a_speaker_of_short_turns_only_is_heard_in_the_windows_centred_in_them():
    from voicegender.listen.speakers import Turn, gender_windows

    layout = [(0.0, 5.0, 1), (5.0, 6.0, 0), (6.0, 11.0, 1)]  # her one turn is shorter than a window
    w = windows_of(layout, {0: 2.0, 1: -2.0})
    inside = np.flatnonzero((w.centre >= 5 * RATE) & (w.centre < 6 * RATE))
    hers = [Turn(5.0, 6.0, inside, 1.0, 0)]
    assert list(gender_windows(hers, w, RATE)) == list(inside) and len(inside) == 2
