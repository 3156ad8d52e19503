"""Analysis estimators on signals with known answers."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from audio.decode import Audio
from index.analysis import (
    analyse_audio,
    analyse_midi,
    bpm_matches,
    estimate_bpm,
    estimate_key,
    family_of_program,
    key_from_pitch_classes,
    loop_bpm_candidates,
    loudness_lufs,
    normalise_key,
    parse_midi,
    pick_octave,
    relative_key,
)

SR = 22_050


def click_loop(bpm: float, bars: int, sr: int = SR) -> np.ndarray:
    """Kick on every beat, hat on every off-beat: an exact loop of ``bars`` 4/4 bars."""
    beat = 60.0 / bpm
    n = round(bars * 4 * beat * sr)
    y = np.zeros(n, np.float32)
    decay = np.exp(-np.arange(int(0.05 * sr)) / (0.01 * sr)).astype(np.float32)
    rng = np.random.default_rng(0)
    for i in range(bars * 8):
        start = round(i * beat / 2 * sr)
        burst = decay * (
            rng.standard_normal(decay.size) if i % 2 else np.sin(np.arange(decay.size) * 0.05)
        )
        end = min(n, start + decay.size)
        y[start:end] += (0.8 if i % 2 == 0 else 0.3) * burst[: end - start]
    return y


def chord_signal(
    midi_pitches: list[list[int]], seconds_each: float = 1.0, sr: int = SR
) -> np.ndarray:
    t = np.arange(int(seconds_each * sr)) / sr
    parts = []
    for chord in midi_pitches:
        tone = sum(np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t) for p in chord)
        parts.append(tone / len(chord))
    return (0.4 * np.concatenate(parts)).astype(np.float32)


@pytest.mark.parametrize("bpm,bars", [(124.0, 4), (174.0, 8), (92.0, 2), (140.0, 4)])
def test_bpm_of_click_loops(bpm, bars):
    estimate, method = estimate_bpm(click_loop(bpm, bars), SR)
    assert bpm_matches(estimate, bpm), (estimate, bpm, method)


def test_octave_follows_the_reference_within_loop_candidates():
    candidates = loop_bpm_candidates(4 * 240 / 88.0, 60, 200)
    assert pick_octave(176.0, 117.0, candidates) == pytest.approx(88.0)
    assert pick_octave(66.0, 129.0) == 132.0


def test_loop_length_decides_for_bar_cut_loops():
    estimate, method = estimate_bpm(click_loop(97.0, 4), SR)
    assert method == "loop-length" and bpm_matches(estimate, 97.0, tolerance=0.001)


def test_non_loop_clip_is_not_forced_onto_bar_lengths():
    # 4 bars at 130 BPM plus an odd 0.37 s: no whole-bar tempo near 130 fits the length
    y = click_loop(130.0, 4)
    y = np.concatenate([y, y[: int(0.37 * SR)]])
    estimate, method = estimate_bpm(y, SR)
    assert bpm_matches(estimate, 130.0), (estimate, method)


def test_key_of_cadence_in_a_minor():
    # i - iv - V - i in A minor (Am, Dm, E, Am) with the bass an octave below
    progression = [[45, 57, 60, 64], [50, 62, 65, 69], [52, 64, 68, 71], [45, 57, 60, 64]]
    key, confidence = estimate_key(chord_signal(progression), SR)
    assert key in ("A minor", relative_key("A minor")), key
    assert confidence > 0.5


def test_key_of_cadence_in_e_major():
    progression = [[40, 52, 56, 59], [45, 57, 61, 64], [47, 59, 63, 66], [40, 52, 56, 59]]
    key, _ = estimate_key(chord_signal(progression), SR)
    assert key == "E major"


def test_key_profiles_and_names():
    assert key_from_pitch_classes(np.ones(12)) == (None, 0.0)
    assert normalise_key("Ebm") == "D# minor"
    assert normalise_key("c# MAJOR") == "C# major"
    assert relative_key("F# minor") == "A major"
    with pytest.raises(ValueError):
        normalise_key("H major")


def test_analyse_audio_reports_everything():
    y = click_loop(128.0, 4)
    audio = Audio(np.stack([y, y]), SR)
    result = analyse_audio(audio, tonal=False)
    assert result.key is None
    assert bpm_matches(result.bpm, 128.0)
    assert result.duration_s == pytest.approx(4 * 240 / 128.0, abs=1e-3)
    assert -40 < result.loudness_lufs < 0
    assert result.peak_dbfs <= 0


def test_loudness_none_for_tiny_clips():
    assert loudness_lufs(np.zeros((2, 100), np.float32) + 0.1, SR) is None


def _midi(
    program: int, pitches: list[int], bpm: float = 100.0, key: str | None = None
) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(program=program)
    beat = 60.0 / bpm
    for i, p in enumerate(pitches):
        inst.notes.append(
            pretty_midi.Note(velocity=90, pitch=p, start=i * beat, end=(i + 1) * beat)
        )
    pm.instruments.append(inst)
    if key:
        pm.key_signature_changes.append(
            pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(key), 0.0)
        )
    return pm


def test_midi_analysis_reads_tempo_key_and_instruments():
    pm = _midi(33, [45, 48, 52, 57, 55, 52, 50, 45], bpm=96.0, key="A minor")
    result = analyse_midi(pm)
    assert result.bpm == pytest.approx(96.0)
    assert result.key == "A minor" and result.key_source == "key-signature"
    assert result.instruments[0]["family"] == "bass"
    assert result.pitch_range == (45, 57)
    assert result.notes_per_second == pytest.approx(8 / result.duration_s, rel=1e-3)


def test_midi_key_from_histogram_when_no_signature():
    # G major scale, tonic weighted
    pm = _midi(0, [55, 57, 59, 60, 62, 64, 66, 67, 55, 62, 55])
    result = analyse_midi(pm)
    assert result.key == "G major" and result.key_source == "pitch-histogram"


def test_midi_errors_are_clear():
    with pytest.raises(ValueError, match="not a readable MIDI"):
        parse_midi(b"MThd garbage")
    with pytest.raises(ValueError, match="no notes"):
        analyse_midi(pretty_midi.PrettyMIDI())


def test_gm_families():
    assert [family_of_program(p) for p in (0, 25, 38, 48, 81, 90, 46)] == [
        "keys",
        "guitar",
        "bass",
        "strings",
        "lead",
        "pad",
        "pluck",
    ]


# --- the cheaper front end computes what librosa and pyloudnorm compute --------------------------


def _detuned_chords() -> np.ndarray:
    """A minor cadence 30 cents sharp (a tuning the CQT must correct), with a click loop."""
    progression = [[45, 57, 60, 64], [50, 62, 65, 69], [52, 64, 68, 71], [45, 57, 60, 64]]
    t = np.arange(SR) / SR
    parts = [
        sum(np.sin(2 * np.pi * 440 * 2 ** ((p - 69 + 0.3) / 12) * t) for p in chord) / 4
        for chord in progression
    ]
    tones = np.concatenate(parts).astype(np.float32)
    return 0.4 * tones + click_loop(120.0, 2)[: tones.size]


def test_memoised_cqt_filters_give_librosas_chroma_bit_for_bit(monkeypatch):
    import librosa
    import librosa.core.constantq

    y = _detuned_chords()
    estimate_key(y, SR)  # installs the memo and fills it
    memo = getattr(librosa.core.constantq, "__vqt_filter_fft")
    assert memo.entries, "the memo is installed and holds the banks"

    def chroma() -> np.ndarray:
        return librosa.feature.chroma_cqt(y=y, sr=SR, hop_length=2048, bins_per_octave=36)

    cached = chroma()  # every octave's bank from the memo
    monkeypatch.setattr(librosa.core.constantq, "__vqt_filter_fft", memo.build)
    np.testing.assert_array_equal(cached, chroma())


def test_one_stft_feeds_onset_and_tuning_as_librosa_would():
    import librosa

    from index.analysis import HOP, estimate_tuning, onset_envelope, spectrogram

    y = _detuned_chords()
    magnitude = spectrogram(y)
    np.testing.assert_array_equal(
        onset_envelope(magnitude, SR), librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP)
    )
    tuning = estimate_tuning(magnitude, SR)
    assert tuning == librosa.estimate_tuning(y=y, sr=SR, bins_per_octave=36)
    # 30 cents sharp is 0.9 of a 33-cent chroma bin: 0.1 bin below the next one
    assert -0.3 < tuning < 0.0
    assert estimate_key(y, SR, tuning=tuning) == estimate_key(y, SR)


@pytest.mark.parametrize("channels", [1, 2, 5, 6])
def test_loudness_equals_pyloudnorm(channels):
    import pyloudnorm

    rng = np.random.default_rng(channels)
    loop = click_loop(124.0, 2, sr=44_100)
    samples = np.stack([loop * (0.3 + 0.1 * c) for c in range(channels)])
    samples += 0.01 * rng.standard_normal(samples.shape).astype(np.float32)
    samples[:, : 44_100 // 2] *= 1e-4  # a near-silent start: both gates have work to do
    mixed = samples if channels <= 5 else samples.mean(axis=0, keepdims=True)
    reference = pyloudnorm.Meter(44_100).integrated_loudness(mixed.T.astype(np.float64))
    assert loudness_lufs(samples, 44_100) == pytest.approx(reference, abs=0.0051)


def test_loudness_of_silence_is_none():
    assert loudness_lufs(np.zeros((2, 44_100), np.float32), 44_100) is None
