"""Musical analysis of stems and MIDI patterns: pure functions, arrays in, small records out.

Audio: duration, tempo (librosa onset autocorrelation, refined by a fit through the tracked beats,
then snapped to a whole number of 4/4 bars when the file is a loop), key (CQT chroma correlated with
Krumhansl-Kessler key profiles; librosa has no key estimator), integrated loudness (ITU-R BS.1770
via pyloudnorm) and sample peak.
MIDI: tempo, key (key-signature event, else the duration-weighted pitch-class histogram against the
same profiles), instruments, note density and pitch range (pretty_midi).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import librosa
import librosa.core.constantq
import numpy as np
import pretty_midi
import scipy.signal
from pyloudnorm.iirfilter import IIRfilter

from audio.decode import Audio
from audio.signal import resample

# Bump when an estimator changes: re-indexing then refreshes every item's analysis.
# 3: one-shots (not_applicable, one_shot), container and channel count recorded.
ANALYSIS_VERSION = 3

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_TO_SHARP = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

ANALYSIS_SR = 22_050
HOP = 512
# librosa's defaults, which the estimates were tuned with: the STFT frame of the onset envelope and
# of the tuning estimate, and the chroma CQT's resolution (three bins a semitone).
N_FFT = 2048
CHROMA_BINS_PER_OCTAVE = 36
# Below this correlation with the best key profile the item is called atonal (key None).
MIN_KEY_CORRELATION = 0.5
BPM_RANGE = (60.0, 200.0)
# Loop-length tempo: only for clips this short (longer files make bar counts too dense to tell
# apart), and only when the best bar-consistent tempo repeats nearly as well as the best overall.
LOOP_MAX_SECONDS = 60.0
LOOP_SCORE_RATIO = 0.9
# Shorter than this, a stem is a one-shot (a hit, not a loop): no loop is shorter than one 4/4 bar
# at 240 BPM. Tempo and key do not apply to it, and are recorded as not applicable.
ONE_SHOT_MAX_SECONDS = 1.0
# BS.1770 weights cover at most five channels (L, R, C, Ls, Rs); beyond that, loudness is
# measured on the mono downmix.
LOUDNESS_MAX_CHANNELS = 5
LOUDNESS_CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)
# BS.1770-4 gating: 400 ms blocks every 100 ms, absolute gate -70 LKFS, relative gate -10 LU.
GATE_BLOCK_S = 0.4
GATE_STEP = 0.25  # of a block
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


@dataclass
class AudioAnalysis:
    duration_s: float
    bpm: float | None
    bpm_method: str  # "loop-length" | "beats" | "periodicity" | "none"
    key: str | None
    key_confidence: float
    loudness_lufs: float | None
    peak_dbfs: float
    one_shot: bool = False
    channels: int = 1
    container: str = ""  # what the bytes were (libsndfile's name), whatever the extension says
    not_applicable: list[str] = field(default_factory=list)  # estimates that do not apply

    def to_payload(self) -> dict:
        return asdict(self)


@dataclass
class MidiAnalysis:
    duration_s: float
    bpm: float
    key: str | None
    key_source: str  # "key-signature" | "pitch-histogram" | "none"
    instruments: list[dict] = field(default_factory=list)
    note_count: int = 0
    notes_per_second: float = 0.0
    pitch_range: tuple[int, int] | None = None
    is_drum_only: bool = False

    def to_payload(self) -> dict:
        return asdict(self)


# --- key ----------------------------------------------------------------------------------------


def normalise_key(name: str) -> str:
    """Canonical key name: sharps, capitalised tonic, 'major'/'minor'.

    >>> normalise_key("bb min"), normalise_key("F# Major"), normalise_key("Am")
    ('A# minor', 'F# major', 'A minor')
    """
    text = name.strip().replace("♯", "#").replace("♭", "b")
    parts = text.split()
    if len(parts) == 1:  # "Am", "C", "F#m"
        token = parts[0]
        minor = token.endswith("m") and not token.lower().endswith("maj")
        tonic = token[:-1] if minor else token
        mode = "minor" if minor else "major"
    else:
        tonic, mode_word = parts[0], parts[1].lower()
        mode = "minor" if mode_word.startswith("min") else "major"
    tonic = tonic[0].upper() + tonic[1:]
    tonic = FLAT_TO_SHARP.get(tonic, tonic)
    if tonic not in PITCH_CLASSES:
        raise ValueError(f"not a key: {name!r}")
    return f"{tonic} {mode}"


def relative_key(key: str) -> str:
    """The relative major/minor.

    >>> relative_key("A minor"), relative_key("C major")
    ('C major', 'A minor')
    """
    tonic, mode = key.split()
    index = PITCH_CLASSES.index(tonic)
    if mode == "minor":
        return f"{PITCH_CLASSES[(index + 3) % 12]} major"
    return f"{PITCH_CLASSES[(index - 3) % 12]} minor"


def key_from_pitch_classes(histogram: np.ndarray) -> tuple[str | None, float]:
    """Best key for a 12-bin pitch-class weight vector, and its profile correlation.

    >>> c_major = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], float)
    >>> key_from_pitch_classes(c_major)[0]
    'C major'
    """
    histogram = np.asarray(histogram, dtype=float)
    if histogram.sum() <= 0 or np.allclose(histogram, histogram.mean()):
        return None, 0.0
    best_key, best_r = None, -1.0
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1])
            if r > best_r:
                best_key, best_r = f"{PITCH_CLASSES[tonic]} {mode}", r
    return best_key, best_r


def estimate_key(
    y: np.ndarray, sr: int, *, tuning: float | None = None
) -> tuple[str | None, float]:
    """Key of a mono signal from its mean CQT chroma; None when it looks atonal.

    ``tuning`` (fractions of a chroma bin, see :func:`estimate_tuning`) saves the CQT its own
    tuning estimate when the caller has the signal's spectrogram already.
    """
    _memoise_cqt_filter_banks()
    with warnings.catch_warnings():
        # the CQT's lowest octaves of a short clip are shorter than librosa's default n_fft
        warnings.simplefilter("ignore", UserWarning)
        chroma = librosa.feature.chroma_cqt(
            y=y, sr=sr, hop_length=HOP * 4, tuning=tuning, bins_per_octave=CHROMA_BINS_PER_OCTAVE
        )
    key, r = key_from_pitch_classes(chroma.mean(axis=1))
    if r < MIN_KEY_CORRELATION:
        return None, r
    return key, r


def estimate_tuning(magnitude: np.ndarray, sr: int) -> float:
    """Deviation from A440 in chroma bins, from a :func:`spectrogram`: what the chroma CQT
    estimates by itself from ``y`` (the same piptrack over the same STFT), without a second STFT.
    """
    return float(
        librosa.estimate_tuning(
            S=magnitude, sr=sr, n_fft=N_FFT, bins_per_octave=CHROMA_BINS_PER_OCTAVE
        )
    )


# --- shared front end ---------------------------------------------------------------------------


def spectrogram(y: np.ndarray) -> np.ndarray:
    """|STFT| of an analysis signal (2048-sample frames, hop 512, centred, zero-padded).

    librosa computes exactly this twice per stem: inside the onset envelope's mel spectrogram
    and inside the chroma's tuning estimate. Computing it once here and handing it to both
    gives the same numbers for one STFT less.
    """
    frames = librosa.stft(
        y, n_fft=N_FFT, hop_length=HOP, window="hann", center=True, pad_mode="constant"
    )
    return np.abs(frames)


@lru_cache(maxsize=8)
def _mel_basis(sr: int) -> np.ndarray:
    """librosa's onset mel filter bank (128 bands up to Nyquist); librosa rebuilds it per call."""
    return librosa.filters.mel(sr=sr, n_fft=N_FFT, fmax=0.5 * sr)


def onset_envelope(magnitude: np.ndarray, sr: int) -> np.ndarray:
    """librosa's default onset strength (log mel spectral flux), from a :func:`spectrogram`."""
    mel = np.einsum("...ft,mf->...mt", magnitude**2, _mel_basis(sr), optimize=True)
    return librosa.onset.onset_strength(
        S=librosa.power_to_db(mel), sr=sr, n_fft=N_FFT, hop_length=HOP
    )


class _FilterBankMemo:
    """Memoises librosa's CQT filter-bank builder (``__vqt_filter_fft``), which is most of the
    chroma CQT's cost: librosa builds the same bank again for each of the seven octaves and for
    every file, and its own cache is off unless a disk cache folder is configured.

    The key is the filters' frequencies *relative to the sample rate*: each octave halves both,
    and the bank depends on their ratio only (halving by two is exact in floating point), so the
    octaves share one entry and the results are bit-identical (tested). librosa rescales the
    returned basis in place, so every caller gets its own copy.
    """

    MAX_ENTRIES = 512  # a few per tuning; tunings come in 0.01-bin steps

    def __init__(self, build) -> None:
        self.build = build
        self.entries: dict[tuple, tuple] = {}

    def __call__(self, sr, freqs, filter_scale, norm, sparsity, hop_length=None, **options):
        key = (
            (np.asarray(freqs, dtype=float) / sr).tobytes(),
            filter_scale,
            norm,
            sparsity,
            hop_length,
            repr(sorted((name, np.asarray(value).tobytes() if isinstance(value, np.ndarray)
                         else repr(value)) for name, value in options.items())),
        )  # fmt: skip
        if hop_length is not None or key not in self.entries:
            # with a hop the bank's length depends on the rate itself: build it as asked
            built = self.build(sr, freqs, filter_scale, norm, sparsity, hop_length, **options)
            if hop_length is not None:
                return built
            if len(self.entries) >= self.MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = built
        basis, n_fft, lengths = self.entries[key]
        return basis.copy(), n_fft, lengths.copy()


_FILTER_BUILDER = "__vqt_filter_fft"


def _memoise_cqt_filter_banks() -> None:
    """Install :class:`_FilterBankMemo` in librosa's CQT module, once (no-op if librosa renamed
    the builder: then the CQT is only slower)."""
    module = librosa.core.constantq
    current = getattr(module, _FILTER_BUILDER, None)
    if current is not None and not isinstance(current, _FilterBankMemo):
        setattr(module, _FILTER_BUILDER, _FilterBankMemo(current))


# --- tempo --------------------------------------------------------------------------------------


def loop_bpm_candidates(duration_s: float, lo: float = 60.0, hi: float = 200.0) -> np.ndarray:
    """Tempi at which ``duration_s`` is a whole number of 4/4 bars.

    >>> loop_bpm_candidates(240 * 4 / 124.0, 100, 150).round(1).tolist()
    [124.0]
    """
    bars = np.arange(1, 129)
    bpm = 240.0 * bars / duration_s
    return bpm[(bpm >= lo) & (bpm <= hi)]


def periodicity(autocorr: np.ndarray, bpm: np.ndarray, frames_per_second: float) -> np.ndarray:
    """How strongly an onset envelope repeats at one beat, two beats and one 4/4 bar of each
    tempo in ``bpm`` (normalised autocorrelation, linearly interpolated between lags)."""
    lags = np.arange(autocorr.size)
    beat = 60.0 / np.asarray(bpm, dtype=float) * frames_per_second
    score = np.zeros_like(beat)
    for multiple, weight in ((1, 1.0), (2, 0.5), (4, 1.0)):
        score += weight * np.interp(beat * multiple, lags, autocorr, right=0.0)
    return score


def pick_octave(bpm: float, reference: float, allowed: np.ndarray | None = None) -> float:
    """``bpm``, or its half or double, whichever is nearest ``reference`` (log scale).

    Periodicity alone cannot tell 88 from 176 BPM; librosa's tempo estimate, with its prior
    around 120 BPM, usually can.

    >>> pick_octave(196.0, 129.0), pick_octave(66.0, 129.0)
    (98.0, 132.0)
    """
    options = [bpm * f for f in (0.5, 1.0, 2.0) if BPM_RANGE[0] <= bpm * f <= BPM_RANGE[1]]
    if allowed is not None:
        options = [o for o in options if np.min(np.abs(allowed - o)) < 1e-6] or [bpm]
    return float(min(options, key=lambda o: abs(np.log(o / reference))))


def estimate_bpm(
    y: np.ndarray, sr: int, *, onset: np.ndarray | None = None
) -> tuple[float | None, str]:
    """Tempo of a mono signal, and which evidence decided it.

    Scores every tempo in 60–200 BPM by the onset envelope's periodicity at one beat, two beats
    and one bar. A clip under a minute whose best *bar-consistent* tempo (the clip is a whole
    number of 4/4 bars) scores nearly as well as the best tempo overall is a loop cut on bar
    lines, and that tempo wins ("loop-length"); otherwise the overall best is refined with a line
    through librosa's tracked beats ("beats"). The octave follows librosa's estimate.
    ``onset`` is the signal's :func:`onset_envelope`, when the caller has computed it.
    """
    duration = y.size / sr
    if onset is None:
        onset = onset_envelope(spectrogram(y), sr)
    if onset.max() <= 0 or duration < 1.0:
        return None, "none"
    fps = sr / HOP
    reference = float(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=HOP)[0])
    autocorr = librosa.autocorrelate(onset - onset.mean())
    autocorr = autocorr / max(float(autocorr[0]), 1e-12)
    grid = np.arange(BPM_RANGE[0], BPM_RANGE[1] + 0.01, 0.25)
    grid_scores = periodicity(autocorr, grid, fps)
    free_best = float(grid[np.argmax(grid_scores)])
    if duration <= LOOP_MAX_SECONDS:
        candidates = loop_bpm_candidates(duration, *BPM_RANGE)
        if candidates.size:
            scores = periodicity(autocorr, candidates, fps)
            best = float(candidates[np.argmax(scores)])
            if scores.max() >= LOOP_SCORE_RATIO * grid_scores.max():
                return round(pick_octave(best, reference, candidates), 2), "loop-length"
    tempo = pick_octave(free_best, reference)
    _, beats = librosa.beat.beat_track(
        onset_envelope=onset, sr=sr, hop_length=HOP, bpm=tempo, units="time"
    )
    if len(beats) >= 4:
        period = float(np.polyfit(np.arange(len(beats)), beats, 1)[0])
        # Keep the refinement only if the beat tracker stayed near the chosen tempo.
        if period > 0 and abs(np.log(60.0 / period / tempo)) < 0.04:
            return round(60.0 / period, 2), "beats"
    return round(tempo, 2), "periodicity"


def bpm_matches(estimate: float, truth: float, tolerance: float = 0.02) -> bool:
    """Within ``tolerance`` of the truth, or of its half or double (an octave error).

    >>> bpm_matches(61.5, 123.0), bpm_matches(130.0, 123.0)
    (True, False)
    """
    return any(abs(estimate - truth * f) <= tolerance * truth * f for f in (1.0, 0.5, 2.0))


# --- loudness -----------------------------------------------------------------------------------


def loudness_lufs(samples: np.ndarray, sr: int) -> float | None:
    """Integrated loudness (ITU-R BS.1770-4) of (channels, frames) audio; None if too short.

    The measure pyloudnorm's ``Meter.integrated_loudness`` takes (its K-weighting filters, its
    block bounds, the same gates), vectorised: both K-weighting biquads in one ``sosfilt`` over
    all channels, and the 400 ms block energies from one cumulative sum instead of a Python
    loop over blocks and channels: a third of the time, the same values to 1e-9 LU.
    """
    if samples.shape[1] < int(GATE_BLOCK_S * sr):  # one gating block
        return None
    if samples.shape[0] > LOUDNESS_MAX_CHANNELS:
        samples = samples.mean(axis=0, keepdims=True)
    weighted = scipy.signal.sosfilt(_k_weighting(sr), samples.astype(np.float64), axis=-1)
    frames = weighted.shape[1]
    blocks = int(np.round((frames / sr - GATE_BLOCK_S) / (GATE_BLOCK_S * GATE_STEP))) + 1
    step = np.arange(blocks) * GATE_STEP
    lower = np.minimum((GATE_BLOCK_S * step * sr).astype(np.int64), frames)
    upper = np.minimum((GATE_BLOCK_S * (step + 1) * sr).astype(np.int64), frames)
    mean_square = _block_sums(weighted**2, lower, upper) / (GATE_BLOCK_S * sr)
    gains = np.asarray(LOUDNESS_CHANNEL_GAINS[: weighted.shape[0]])[:, None]
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10((gains * mean_square).sum(axis=0))
        above_absolute = block_lufs >= ABSOLUTE_GATE_LUFS
        if not above_absolute.any():
            return None
        relative_gate = (
            -0.691
            + 10.0 * np.log10((gains[:, 0] * mean_square[:, above_absolute].mean(axis=1)).sum())
            + RELATIVE_GATE_LU
        )
        gated = (block_lufs > relative_gate) & (block_lufs > ABSOLUTE_GATE_LUFS)
        if not gated.any():
            return None
        value = -0.691 + 10.0 * np.log10((gains[:, 0] * mean_square[:, gated].mean(axis=1)).sum())
    return round(float(value), 2) if np.isfinite(value) else None


def _block_sums(values: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Sums of ``values[:, lower[j]:upper[j]]`` for every block j: the overlapping blocks are
    cut into the segments between all their bounds, each segment summed once."""
    frames = values.shape[-1]
    bounds = np.unique(np.concatenate([lower, upper]))
    starts = bounds[bounds < frames]
    segments = np.add.reduceat(values, starts, axis=-1) if starts.size else values[:, :0]
    running = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(segments, axis=-1)], -1)
    # a bound's position among the segment starts (the end of the audio: after the last one)
    sums = running[:, np.searchsorted(starts, upper)] - running[:, np.searchsorted(starts, lower)]
    return np.maximum(sums, 0.0)


@lru_cache(maxsize=8)
def _k_weighting(sr: int) -> np.ndarray:
    """BS.1770's K-weighting at ``sr`` (pyloudnorm's two biquads) as second-order sections."""
    stages = (
        IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sr, "high_shelf"),
        IIRfilter(0.0, 0.5, 38.0, sr, "high_pass"),
    )
    sections = [scipy.signal.tf2sos(stage.b, stage.a) for stage in stages]
    sections[0][0, :3] *= np.prod([stage.passband_gain for stage in stages])
    return np.concatenate(sections)


def peak_dbfs(samples: np.ndarray) -> float:
    peak = float(np.abs(samples).max())
    return round(20 * np.log10(max(peak, 1e-10)), 2)


# --- whole items --------------------------------------------------------------------------------


def analyse_audio(audio: Audio, *, tonal: bool | None = None) -> AudioAnalysis:
    """Analyse a decoded stem. ``tonal=False`` (e.g. a known drum loop) skips key estimation.

    A one-shot (under :data:`ONE_SHOT_MAX_SECONDS`) gets no tempo or key: they do not apply to
    a 40 ms hit, and ``not_applicable`` says so rather than an error or a guess.
    """
    one_shot = audio.duration_s < ONE_SHOT_MAX_SECONDS
    loudness = loudness_lufs(audio.samples, audio.sr)
    not_applicable = [] if loudness is not None else ["loudness_lufs"]
    if one_shot:
        bpm, method, key, confidence = None, "not-applicable", None, 0.0
        not_applicable = ["bpm", "key", *not_applicable]
    else:
        y = resample(audio.mono(), audio.sr, ANALYSIS_SR)
        magnitude = spectrogram(y)  # one STFT for the onset envelope and the tuning
        bpm, method = estimate_bpm(y, ANALYSIS_SR, onset=onset_envelope(magnitude, ANALYSIS_SR))
        if tonal is False:
            key, confidence = None, 0.0
        else:
            tuning = estimate_tuning(magnitude, ANALYSIS_SR)
            key, confidence = estimate_key(y, ANALYSIS_SR, tuning=tuning)
    return AudioAnalysis(
        duration_s=round(audio.duration_s, 4),
        bpm=bpm,
        bpm_method=method,
        key=key,
        key_confidence=round(confidence, 3),
        loudness_lufs=loudness,
        peak_dbfs=peak_dbfs(audio.samples),
        one_shot=one_shot,
        channels=audio.channels,
        container=audio.container,
        not_applicable=not_applicable,
    )


def warm_up() -> None:
    """Run the audio analysis once on a synthetic loop, under a machine-wide file lock.

    librosa's beat tracker uses numba ``@guvectorize(cache=True)`` kernels. When two fresh
    processes compile them at the same moment (the first index run after install, with worker
    processes), they can write the kernel's two cache files with different ABI tags, and the
    next load jumps to a null function pointer: a segfault at address 0 (numba issue #10128).
    Compiling once under a lock, before any real work, means one process writes the cache and
    every other one only reads it. Cheap once the cache exists.
    """
    import fcntl
    import tempfile
    from pathlib import Path

    sr = 22_050
    clicks = np.zeros(2 * sr, np.float32)
    clicks[:: sr // 4] = 1.0  # 120 BPM clicks, two seconds: reaches the beat tracker
    audio = Audio(np.stack([clicks, clicks]), sr)
    lock = Path(tempfile.gettempdir()) / "audiorag-numba-warm-up.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            analyse_audio(audio)
            # a clean loop like this one is settled by its length; make sure the beat tracker
            # (where the crash was) compiles too, with the same dtypes as estimate_bpm
            onset = librosa.onset.onset_strength(y=clicks, sr=sr, hop_length=HOP)
            librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=HOP, bpm=120.0)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def parse_midi(data: bytes) -> pretty_midi.PrettyMIDI:
    """Parse MIDI bytes; raise ValueError with the reason for anything unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as err:  # mido raises a zoo of types (OSError, EOFError, KeyError, …)
        raise ValueError(f"not a readable MIDI file ({type(err).__name__}: {err})") from err


def analyse_midi(midi: pretty_midi.PrettyMIDI) -> MidiAnalysis:
    """Tempo, key, instruments, density and range of a MIDI pattern."""
    notes = [n for inst in midi.instruments for n in inst.notes]
    if not notes:
        raise ValueError("MIDI file holds no notes")
    _, tempi = midi.get_tempo_changes()
    bpm = round(float(tempi[0]), 2) if len(tempi) else 120.0
    duration = float(midi.get_end_time())
    tonal_notes = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    key, source = _midi_key(midi, tonal_notes)
    pitches = [n.pitch for n in tonal_notes]
    return MidiAnalysis(
        duration_s=round(duration, 4),
        bpm=bpm,
        key=key,
        key_source=source,
        instruments=[
            {
                "program": inst.program,
                "is_drum": inst.is_drum,
                "name": "Drum kit"
                if inst.is_drum
                else pretty_midi.program_to_instrument_name(inst.program),
                "family": "drums" if inst.is_drum else family_of_program(inst.program),
                "notes": len(inst.notes),
            }
            for inst in midi.instruments
            if inst.notes
        ],
        note_count=len(notes),
        notes_per_second=round(len(notes) / max(duration, 1e-6), 3),
        pitch_range=(min(pitches), max(pitches)) if pitches else None,
        is_drum_only=not tonal_notes,
    )


def _midi_key(midi: pretty_midi.PrettyMIDI, tonal_notes: list) -> tuple[str | None, str]:
    if not tonal_notes:
        return None, "none"
    if midi.key_signature_changes:
        number = midi.key_signature_changes[0].key_number
        name = pretty_midi.key_number_to_key_name(number)  # e.g. "A Minor", "Db Major"
        return normalise_key(name), "key-signature"
    histogram = np.zeros(12)
    for note in tonal_notes:
        histogram[note.pitch % 12] += note.end - note.start
    key, _ = key_from_pitch_classes(histogram)
    return key, "pitch-histogram" if key else "none"


# General MIDI program ranges → our instrument families.
_GM_FAMILIES: tuple[tuple[range, str], ...] = (
    (range(0, 24), "keys"),  # pianos, chromatic percussion, organs
    (range(24, 32), "guitar"),
    (range(32, 40), "bass"),
    (range(40, 45), "strings"),
    (range(45, 47), "pluck"),  # pizzicato strings, harp
    (range(47, 48), "drums"),  # timpani
    (range(48, 52), "strings"),
    (range(52, 55), "vocals"),  # choir, voice oohs, synth voice
    (range(55, 56), "fx"),  # orchestra hit
    (range(56, 80), "lead"),  # brass, reeds, pipes
    (range(80, 88), "lead"),
    (range(88, 96), "pad"),
    (range(96, 104), "fx"),
    (range(104, 112), "pluck"),  # ethnic plucked instruments
    (range(112, 120), "drums"),
    (range(120, 128), "fx"),
)


def family_of_program(program: int) -> str:
    """Our instrument family for a General MIDI program number (0-127).

    >>> family_of_program(33), family_of_program(89), family_of_program(0)
    ('bass', 'pad', 'keys')
    """
    for programs, family in _GM_FAMILIES:
        if program in programs:
            return family
    raise ValueError(f"GM program out of range: {program}")
