"""Rendering MIDI to audio through a General MIDI SoundFont, with nothing but PyPI packages.

The synth is ``midirenderer`` (Rust, wrapping the ``rustysynth`` SoundFont engine): SoundFont bytes
plus Standard MIDI File bytes in, 48 kHz stereo 16-bit WAV bytes out, reverb and chorus on. Two of
its habits shape this module:

* it stops rendering at the last MIDI event, which cuts off every release and reverb tail, so we
  append a silent end-of-track ``RELEASE_TAIL_S`` later before handing the bytes over;
* it clamps its float mix to 16 bits, so a mix louder than full scale clips inside the synth; when
  that happens we render again with every channel's volume (CC 7) lowered.

The result is resampled to the caller's rate with ``soxr`` and peak-normalised.

:func:`render_midi` renders any MIDI file (user uploads included) to its natural length plus the
ringing tail; :func:`render_loop` renders a loop of known length and folds the tail back onto the
start, as sample-pack makers do, so the file loops seamlessly and its duration tells the bar count.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import midirenderer
import mido
import numpy as np
import pretty_midi
import soundfile as sf

from audio.signal import resample

DEFAULT_SOUNDFONT: Path = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"

# What the render functions accept: a pattern object, a parsed file, or Standard MIDI File bytes.
MidiSource = pretty_midi.PrettyMIDI | mido.MidiFile | bytes

# midirenderer always renders at this rate.
SYNTH_SR = 48000

# How long voices and reverb may ring after the last event. The GM release envelopes plus the
# synth's reverb fall below the 16-bit floor within about three seconds.
RELEASE_TAIL_S = 3.0

DEFAULT_PEAK_DBFS = -1.0

# Samples at or below this level (about -84 dBFS, two 16-bit steps) count as the silence after
# the tail when trimming.
_TAIL_FLOOR = 2.0 / 32768.0

# The synth's 16-bit output saturates here; any sample on a rail means the mix clipped.
_RAIL = 32767.0 / 32768.0

# Each retry after clipping lowers every channel's volume controller by this factor (-6 dB,
# because the synth squares volume).
_VOLUME_STEP = 0.5**0.5
_MAX_VOLUME_RETRIES = 4

# General MIDI's channel-volume default, used where a file never sets CC 7.
_GM_DEFAULT_VOLUME = 100


@lru_cache(maxsize=4)
def soundfont_bytes(path: Path) -> bytes:
    """Read a SoundFont once per path; every render reuses the bytes.

    Examples
    --------
    >>> len(soundfont_bytes(DEFAULT_SOUNDFONT)) > 1_000_000
    True
    """
    return Path(path).read_bytes()


def loop_length(bars: int, bpm: float, sr: int = 44100) -> int:
    """Number of samples in ``bars`` bars of 4/4 at ``bpm``, rounded to the nearest sample.

    Examples
    --------
    >>> loop_length(4, 120.0)
    352800
    >>> loop_length(2, 175.0, sr=48000)
    131657
    """
    return round(bars * 4 * 60.0 / bpm * sr)


def midi_bytes(midi: MidiSource) -> bytes:
    """Standard MIDI File bytes of ``midi`` (bytes pass through unchanged).

    Examples
    --------
    >>> midi_bytes(pretty_midi.PrettyMIDI())[:4]
    b'MThd'
    """
    if isinstance(midi, bytes | bytearray | memoryview):
        return bytes(midi)
    buffer = io.BytesIO()
    if isinstance(midi, mido.MidiFile):
        midi.save(file=buffer)
    else:
        midi.write(buffer)
    return buffer.getvalue()


def parse_midi(data: bytes) -> mido.MidiFile:
    """Parse Standard MIDI File bytes, refusing what the synth cannot play.

    Raises
    ------
    ValueError
        If the bytes are not a readable type 0/1 MIDI file or contain no notes.
    """
    try:
        midi_file = mido.MidiFile(file=io.BytesIO(data))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise ValueError(f"not a readable Standard MIDI File: {error}") from error
    if midi_file.type == 2:
        # Type 2 holds independent sequences; the synth (like most players) cannot merge them.
        raise ValueError("type 2 MIDI files (independent sequences) are not supported")
    has_notes = any(
        message.type == "note_on" and message.velocity > 0
        for track in midi_file.tracks
        for message in track
    )
    if not has_notes:
        raise ValueError("MIDI file has no notes to render")
    return midi_file


def _total_ticks(midi_file: mido.MidiFile) -> int:
    """Tick of the last event over all tracks."""
    return max((sum(message.time for message in track) for track in midi_file.tracks), default=0)


def _final_tempo(midi_file: mido.MidiFile) -> int:
    """Tempo (microseconds per beat) in force at the end of the file."""
    tempo_events = [
        (tick, message.tempo)
        for track in midi_file.tracks
        for tick, message in _absolute(track)
        if message.type == "set_tempo"
    ]
    return max(tempo_events)[1] if tempo_events else 500_000


def _absolute(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    """Messages of a track paired with their absolute tick."""
    tick = 0
    events = []
    for message in track:
        tick += message.time
        events.append((tick, message))
    return events


def with_tail(midi_file: mido.MidiFile, *, end_s: float, tail_s: float) -> mido.MidiFile:
    """Copy of ``midi_file`` whose last event is ``tail_s`` seconds after ``end_s``.

    The synth renders exactly up to the last event, so an extra track holding only an
    end-of-track meta event stretches the render without sounding anything.
    """
    ticks_per_second = midi_file.ticks_per_beat * 1e6 / _final_tempo(midi_file)
    end_tick = _total_ticks(midi_file) + max(0.0, end_s - midi_file.length) * ticks_per_second
    tail_tick = round(end_tick + tail_s * ticks_per_second)
    stretched = mido.MidiFile(type=1, ticks_per_beat=midi_file.ticks_per_beat)
    stretched.tracks = [
        *midi_file.tracks,
        mido.MidiTrack([mido.MetaMessage("end_of_track", time=tail_tick)]),
    ]
    return stretched


def scale_channel_volumes(midi_file: mido.MidiFile, factor: float) -> mido.MidiFile:
    """Copy of ``midi_file`` with every channel-volume (CC 7) value multiplied by ``factor``.

    Channels that never set CC 7 get an explicit scaled General MIDI default at tick 0.
    """
    scaled = mido.MidiFile(type=1, ticks_per_beat=midi_file.ticks_per_beat)
    for track in midi_file.tracks:
        scaled.tracks.append(
            mido.MidiTrack(
                message.copy(value=min(127, round(message.value * factor)))
                if message.type == "control_change" and message.control == 7
                else message
                for message in track
            )
        )
    defaults = [
        mido.Message(
            "control_change", channel=channel, control=7, value=round(_GM_DEFAULT_VOLUME * factor)
        )
        for channel in range(16)
    ]
    # Track 0 at tick 0 plays first, so each file's own CC 7 events still override these.
    scaled.tracks[0] = mido.MidiTrack([*defaults, *scaled.tracks[0]])
    return scaled


def synthesize(midi_file: mido.MidiFile, soundfont: Path) -> np.ndarray:
    """Render a parsed MIDI file at :data:`SYNTH_SR`; float32 (2, n), clipping avoided.

    A mix that hits the synth's 16-bit rails is rendered again with every channel-volume
    controller scaled down so the mix is 6 dB quieter, up to ``_MAX_VOLUME_RETRIES`` times.

    Raises
    ------
    ValueError
        If the synth rejects the file.
    """
    font = soundfont_bytes(Path(soundfont))
    attempt, factor = midi_file, 1.0
    for _ in range(_MAX_VOLUME_RETRIES):
        audio = _render_once(font, attempt)
        if np.max(np.abs(audio), initial=0.0) < _RAIL:
            return audio
        factor *= _VOLUME_STEP
        attempt = scale_channel_volumes(midi_file, factor)
    return _render_once(font, attempt)


def _render_once(font: bytes, midi_file: mido.MidiFile) -> np.ndarray:
    """One pass through midirenderer: float32 (2, n) at 48 kHz."""
    try:
        wav = midirenderer.render_wave_from(font, midi_bytes(midi_file))
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"the synth could not render this MIDI file: {error}") from error
    audio, _ = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T)


def normalize_peak(audio: np.ndarray, peak_dbfs: float = DEFAULT_PEAK_DBFS) -> np.ndarray:
    """Scale ``audio`` so its absolute peak sits at ``peak_dbfs``; silence is returned unchanged.

    Examples
    --------
    >>> x = normalize_peak(np.array([[0.1, -0.5]], np.float32), peak_dbfs=-6.0)
    >>> round(float(np.abs(x).max()), 3)
    0.501
    """
    peak = float(np.max(np.abs(audio), initial=0.0))
    if peak == 0.0:
        return audio
    return (audio * (10.0 ** (peak_dbfs / 20.0) / peak)).astype(np.float32)


def trim_tail(audio: np.ndarray, *, keep: int, floor: float = _TAIL_FLOOR) -> np.ndarray:
    """Drop trailing samples below ``floor`` after the first ``keep`` samples."""
    loud = np.flatnonzero(np.max(np.abs(audio[:, keep:]), axis=0) > floor)
    end = keep + (int(loud[-1]) + 1 if loud.size else 0)
    return audio[:, :end]


def wrap_tail(audio: np.ndarray, length: int) -> np.ndarray:
    """Fold everything past ``length`` samples back onto the start, repeatedly if needed.

    This is what a loop sounds like in its second and later passes: the previous pass's
    release and reverb ring into the start.

    Examples
    --------
    >>> wrap_tail(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), 2)
    array([[9., 6.]])
    """
    channels, n = audio.shape
    padded = np.zeros((channels, -(-n // length) * length), dtype=audio.dtype)
    padded[:, :n] = audio
    return padded.reshape(channels, -1, length).sum(axis=1)


def render_midi(
    midi: MidiSource,
    *,
    sr: int = 44100,
    soundfont: Path | None = None,
    peak_dbfs: float | None = DEFAULT_PEAK_DBFS,
) -> np.ndarray:
    """Render MIDI to float32 stereo audio, shape (2, n), including the release tail.

    The audio runs from time 0 to the last event plus whatever still rings after it (trailing
    silence trimmed), at any tempo map the file has.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI, mido.MidiFile or bytes
        The pattern, or a type 0/1 Standard MIDI File (parsed, or its bytes).
    sr : int
        Output sample rate (the synth runs at 48 kHz; soxr converts).
    soundfont : Path, optional
        A .sf2 file; defaults to :data:`DEFAULT_SOUNDFONT` (TimGM6mb, General MIDI).
    peak_dbfs : float or None
        Peak level to normalise to; ``None`` keeps the synth's own level.

    Raises
    ------
    ValueError
        If the MIDI is unreadable, of type 2, or has no notes.

    Examples
    --------
    >>> pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    >>> piano = pretty_midi.Instrument(program=0)
    >>> piano.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=0.5))
    >>> pm.instruments.append(piano)
    >>> audio = render_midi(pm)
    >>> audio.shape[0], audio.dtype, audio.shape[1] > 0.5 * 44100
    (2, dtype('float32'), True)
    >>> render_midi(pretty_midi.PrettyMIDI())
    Traceback (most recent call last):
    ...
    ValueError: MIDI file has no notes to render
    """
    midi_file = parse_midi(midi_bytes(midi))
    end_s = midi_file.length
    audio = synthesize(
        with_tail(midi_file, end_s=end_s, tail_s=RELEASE_TAIL_S), soundfont or DEFAULT_SOUNDFONT
    )
    audio = resample(trim_tail(audio, keep=round(end_s * SYNTH_SR)), SYNTH_SR, sr)
    return audio if peak_dbfs is None else normalize_peak(audio, peak_dbfs)


def render_loop(
    midi: MidiSource,
    *,
    bars: int,
    bpm: float,
    sr: int = 44100,
    soundfont: Path | None = None,
    peak_dbfs: float | None = DEFAULT_PEAK_DBFS,
) -> np.ndarray:
    """Render a 4/4 loop to exactly ``bars`` bars at ``bpm``, its tail wrapped onto the start.

    The result has :func:`loop_length` samples, so it repeats seamlessly and its duration
    tells the bar count; notes that ring past the loop end sound at the loop start, as they
    would on every pass after the first.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI, mido.MidiFile or bytes
        A pattern whose notes start within the loop, timed at ``bpm``.
    bars, bpm : int, float
        Loop length in 4/4 bars and its tempo.
    sr, soundfont, peak_dbfs
        As in :func:`render_midi`.

    Raises
    ------
    ValueError
        If the MIDI is unreadable or has no notes, or ``bars``/``bpm`` are not positive.

    Examples
    --------
    >>> pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    >>> pad = pretty_midi.Instrument(program=89)
    >>> pad.notes.append(pretty_midi.Note(velocity=80, pitch=57, start=0.0, end=2.0))
    >>> pm.instruments.append(pad)
    >>> render_loop(pm, bars=1, bpm=120.0).shape
    (2, 88200)
    """
    if bars <= 0 or bpm <= 0:
        raise ValueError(f"a loop needs positive bars and bpm, got bars={bars}, bpm={bpm}")
    midi_file = parse_midi(midi_bytes(midi))
    end_s = bars * 4 * 60.0 / bpm
    audio = synthesize(
        with_tail(midi_file, end_s=end_s, tail_s=RELEASE_TAIL_S), soundfont or DEFAULT_SOUNDFONT
    )
    # Resample before folding so the fold lands on the output's exact sample grid.
    audio = wrap_tail(resample(audio, SYNTH_SR, sr), loop_length(bars, bpm, sr))
    return audio if peak_dbfs is None else normalize_peak(audio, peak_dbfs)
