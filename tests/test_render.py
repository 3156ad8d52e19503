"""MIDI rendering through the bundled General MIDI SoundFont: lengths, tails, levels, refusals."""

from __future__ import annotations

import io

import mido
import numpy as np
import pretty_midi
import pytest

from index.render import (
    DEFAULT_SOUNDFONT,
    SYNTH_SR,
    loop_length,
    midi_bytes,
    parse_midi,
    render_loop,
    render_midi,
    soundfont_bytes,
    synthesize,
    with_tail,
    wrap_tail,
)


def one_part(
    program: int,
    notes: list[tuple[int, float, float]],
    *,
    bpm: float = 120.0,
    is_drum: bool = False,
    velocity: int = 100,
) -> pretty_midi.PrettyMIDI:
    """A single-track pattern of (pitch, start, end) notes."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    track = pretty_midi.Instrument(program=program, is_drum=is_drum)
    track.notes = [pretty_midi.Note(velocity, pitch, start, end) for pitch, start, end in notes]
    midi.instruments.append(track)
    return midi


def frame_rms(audio: np.ndarray, start_s: float, end_s: float, sr: int = 44100) -> float:
    """RMS of both channels between two times."""
    segment = audio[:, int(start_s * sr) : int(end_s * sr)]
    return float(np.sqrt(np.mean(segment**2)))


def spectral_centroid(audio: np.ndarray, sr: int = 44100) -> float:
    mono = audio.mean(axis=0)
    magnitude = np.abs(np.fft.rfft(mono))
    freqs = np.fft.rfftfreq(mono.size, 1 / sr)
    return float((magnitude * freqs).sum() / magnitude.sum())


def test_default_soundfont_ships_with_pretty_midi_and_is_cached():
    assert DEFAULT_SOUNDFONT.is_file()
    assert DEFAULT_SOUNDFONT.name == "TimGM6mb.sf2"
    assert soundfont_bytes(DEFAULT_SOUNDFONT) is soundfont_bytes(DEFAULT_SOUNDFONT)


def test_render_midi_is_float32_stereo_normalised_with_its_release_tail():
    audio = render_midi(one_part(0, [(60, 0.0, 1.0), (64, 0.0, 1.0), (67, 0.0, 1.0)]))
    assert audio.dtype == np.float32 and audio.shape[0] == 2
    # The note ends at 1 s; the piano's release and the reverb ring on, then silence is trimmed.
    assert 1.2 * 44100 < audio.shape[1] < (1.0 + 3.0) * 44100
    assert np.isclose(np.abs(audio).max(), 10 ** (-1 / 20), atol=1e-3)
    assert frame_rms(audio, 0.1, 0.9) > 0.01


def test_render_midi_accepts_bytes_and_other_rates():
    pattern = one_part(33, [(40, 0.0, 0.5)])
    from_object = render_midi(pattern, sr=22050)
    from_bytes = render_midi(midi_bytes(pattern), sr=22050)
    assert np.array_equal(from_object, from_bytes)
    assert 0.5 * 22050 < from_object.shape[1] < 4 * 22050


def test_render_midi_follows_a_user_files_tempo_map():
    # 120 BPM for two beats (1 s), then 60 BPM: a note at beat 4 starts at 1 s + 2 s = 3 s.
    midi_file = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=500_000, time=0),
            mido.MetaMessage("set_tempo", tempo=1_000_000, time=960),
        ]
    )
    piano = mido.MidiTrack(
        [
            mido.Message("note_on", note=60, velocity=100, time=1920),
            mido.Message("note_off", note=60, velocity=0, time=480),
        ]
    )
    midi_file.tracks += [conductor, piano]
    buffer = io.BytesIO()
    midi_file.save(file=buffer)
    audio = render_midi(buffer.getvalue())
    onset = np.flatnonzero(np.abs(audio).max(axis=0) > 0.01)[0] / 44100
    assert onset == pytest.approx(3.0, abs=0.01)
    assert audio.shape[1] > 4.0 * 44100  # the note lasts a (slow) beat: until 4 s


@pytest.mark.parametrize(
    "midi",
    [pretty_midi.PrettyMIDI(), one_part(0, [])],
    ids=["no-tracks", "empty-track"],
)
def test_render_midi_refuses_midi_without_notes(midi):
    with pytest.raises(ValueError, match="no notes"):
        render_midi(midi)


def test_render_midi_refuses_bytes_that_are_not_midi():
    with pytest.raises(ValueError, match="not a readable Standard MIDI File"):
        render_midi(b"RIFF....WAVEfmt ")


@pytest.mark.parametrize(("bars", "bpm"), [(1, 70.0), (2, 175.0), (4, 124.0), (3, 97.0)])
def test_render_loop_is_exactly_the_loop_length(bars, bpm):
    beat = 60.0 / bpm
    pattern = one_part(0, [(57, 0.0, beat), (60, 2 * beat, 3 * beat)], bpm=bpm)
    audio = render_loop(pattern, bars=bars, bpm=bpm)
    assert audio.shape == (2, loop_length(bars, bpm))
    assert abs(audio.shape[1] - bars * 240 / bpm * 44100) <= 1


def test_render_loop_wraps_the_tail_onto_the_start():
    # A pad chord on the last half beat of a one-bar loop: its release rings past the loop end.
    late_chord = one_part(89, [(57, 1.75, 2.0), (60, 1.75, 2.0), (64, 1.75, 2.0)])
    wrapped = render_loop(late_chord, bars=1, bpm=120.0, peak_dbfs=None)
    unwrapped = render_midi(late_chord, peak_dbfs=None)[:, : wrapped.shape[1]]
    assert wrapped.shape == (2, 88200)
    assert frame_rms(unwrapped, 0.0, 0.2) < 1e-4  # nothing sounds at the start of one pass
    assert frame_rms(wrapped, 0.0, 0.2) > 20 * max(frame_rms(unwrapped, 0.0, 0.2), 1e-6)
    # Before the chord, the loop is just the folded tail; the chord itself is unchanged.
    assert np.allclose(wrapped[:, 80000:86000], unwrapped[:, 80000:86000], atol=2e-3)


def test_wrap_tail_folds_everything_past_the_length():
    audio = np.arange(10, dtype=np.float32).reshape(1, 10)
    folded = wrap_tail(audio, 4)
    assert folded.tolist() == [[0 + 4 + 8, 1 + 5 + 9, 2 + 6, 3 + 7]]
    assert folded.sum() == audio.sum()


def test_a_dense_loud_mix_is_rendered_without_clipping():
    # Forty loud voices on three channels clip the synth's 16-bit output at default volume.
    pattern = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for program in (48, 61, 81):
        track = pretty_midi.Instrument(program=program)
        track.control_changes.append(pretty_midi.ControlChange(7, 127, 0.0))
        track.notes = [pretty_midi.Note(127, 36 + 3 * k, 0.0, 1.0) for k in range(14)]
        pattern.instruments.append(track)
    midi_file = parse_midi(midi_bytes(pattern))
    raw = synthesize(with_tail(midi_file, end_s=1.0, tail_s=0.5), DEFAULT_SOUNDFONT)
    assert raw.shape[1] == pytest.approx(1.5 * SYNTH_SR, abs=SYNTH_SR * 0.01)
    assert np.abs(raw).max() < 32767 / 32768


def test_instrument_families_sound_distinct():
    bpm = 120.0
    beats = np.arange(8) * 0.5
    drums = one_part(
        0,
        [(36, t, t + 0.1) for t in beats[::2]]
        + [(42, t, t + 0.1) for t in beats]
        + [(38, t, t + 0.1) for t in beats[1::2]],
        is_drum=True,
    )
    bass = one_part(33, [(33, t, t + 0.45) for t in beats])
    pad = one_part(89, [(p, 0.0, 4.0) for p in (57, 60, 64, 69)], velocity=80)
    rendered = {
        name: render_loop(m, bars=2, bpm=bpm)
        for name, m in {"drums": drums, "bass": bass, "pad": pad}.items()
    }
    for audio in rendered.values():
        assert np.abs(audio).max() < 1.0 and frame_rms(audio, 0.0, 4.0) > 0.02

    # Bass is darkest, drums brightest (hats and snare are broadband).
    centroids = {name: spectral_centroid(audio) for name, audio in rendered.items()}
    assert centroids["bass"] < centroids["pad"] < centroids["drums"]
    assert centroids["drums"] > 1500

    # Pads sustain; drums are all attack: frame-level loudness varies far more for drums.
    def loudness_variation(audio):
        frames = audio.mean(axis=0)[: 4 * 44100].reshape(-1, 2205)
        rms = np.sqrt((frames**2).mean(axis=1))
        return rms.std() / rms.mean()

    assert loudness_variation(rendered["pad"]) < 0.5 < loudness_variation(rendered["drums"])
