"""Procedural composition of the demo loops: pure functions from item spec and seeded rng to MIDI.

Everything here is on a 16-step-per-bar grid in 4/4. Patterns are first written as
:class:`NoteEvent` lists in grid steps (musical time), then realised to seconds with the item's
swing and a little human timing and velocity spread (:func:`realize`). Tonal parts share one
harmony model: a diatonic progression that starts and ends on the tonic (:func:`progression`),
chords stacked in thirds from the key's scale (natural minor, except a major ``V`` taken from
harmonic minor), and voicings chosen for smooth voice leading (:func:`voice_chord`).

:func:`compose_item` is the entry point; it dispatches on the item's instrument family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pretty_midi

STEPS_PER_BAR = 16
TICKS_PER_BEAT = 480

PITCH_CLASS_NAMES: tuple[str, ...] = (
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
)  # fmt: skip
MAJOR_SCALE: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR_SCALE: tuple[int, ...] = (0, 2, 3, 5, 7, 8, 10)
HARMONIC_MINOR_SCALE: tuple[int, ...] = (0, 2, 3, 5, 7, 8, 11)

ROMAN_NUMERALS: tuple[str, ...] = ("i", "ii", "iii", "iv", "v", "vi", "vii")

# Four- and eight-chord loops that start and end on the tonic, so a key estimator hears the tonic
# first, last and most. In minor, an upper-case V is the harmonic-minor dominant (raised 7th).
PROGRESSIONS: dict[str, dict[int, tuple[tuple[str, ...], ...]]] = {
    "major": {
        4: (
            ("I", "IV", "V", "I"),
            ("I", "vi", "IV", "I"),
            ("I", "ii", "V", "I"),
            ("I", "V", "IV", "I"),
            ("I", "vi", "V", "I"),
            ("I", "iii", "IV", "I"),
        ),
        8: (
            ("I", "vi", "IV", "V", "I", "IV", "V", "I"),
            ("I", "V", "vi", "IV", "I", "ii", "V", "I"),
            ("I", "IV", "I", "V", "vi", "IV", "V", "I"),
            ("I", "iii", "vi", "IV", "I", "ii", "V", "I"),
        ),
    },
    "minor": {
        4: (
            ("i", "VI", "VII", "i"),
            ("i", "iv", "V", "i"),
            ("i", "iv", "VII", "i"),
            ("i", "VI", "iv", "i"),
            ("i", "VII", "VI", "i"),
            ("i", "ii°", "V", "i"),
        ),
        8: (
            ("i", "VI", "III", "VII", "i", "iv", "V", "i"),
            ("i", "iv", "VII", "III", "VI", "iv", "V", "i"),
            ("i", "VI", "iv", "V", "i", "VI", "VII", "i"),
            ("i", "VII", "VI", "VII", "i", "iv", "V", "i"),
        ),
    },
}

# Genres whose parts are programmed to the grid; everything else gets human timing spread.
QUANTIZED_GENRES: frozenset[str] = frozenset({"house", "techno", "trance", "trap", "reggaeton"})

# Mood tags that push a part's dynamics up or down.
LOUD_MOODS: frozenset[str] = frozenset({"energetic", "aggressive", "driving"})
SOFT_MOODS: frozenset[str] = frozenset({"chill", "dreamy", "melancholic", "nostalgic"})

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Specs, keys and time


@dataclass(frozen=True)
class Key:
    """A major or minor key: tonic pitch class (0 = C) and mode."""

    tonic: int
    mode: str

    @classmethod
    def parse(cls, name: str) -> Key:
        """Key from its name.

        Examples
        --------
        >>> Key.parse("F# minor")
        Key(tonic=6, mode='minor')
        """
        tonic_name, mode = name.split()
        return cls(PITCH_CLASS_NAMES.index(tonic_name), mode)

    @property
    def name(self) -> str:
        """Display name, sharps only: ``"A minor"``, ``"F# major"``."""
        return f"{PITCH_CLASS_NAMES[self.tonic]} {self.mode}"

    @property
    def scale(self) -> tuple[int, ...]:
        """The seven pitch classes of the key (natural minor for minor keys), tonic first."""
        steps = MAJOR_SCALE if self.mode == "major" else NATURAL_MINOR_SCALE
        return tuple((self.tonic + step) % 12 for step in steps)

    @property
    def key_number(self) -> int:
        """pretty_midi key number: 0-11 major, 12-23 minor."""
        return self.tonic + (12 if self.mode == "minor" else 0)


ALL_KEYS: tuple[Key, ...] = tuple(
    Key(tonic, mode) for mode in ("major", "minor") for tonic in range(12)
)


@dataclass(frozen=True)
class ItemSpec:
    """Everything that defines one demo item, chosen by the catalog plan.

    ``program`` is the General MIDI program of a tonal item (``None`` for drums); ``drum_kit``
    is the GM drum-kit program of a drum item (``None`` for tonal items). ``swing`` is the
    16th-note swing ratio, 0.5 being straight.
    """

    index: int
    instrument: str
    genre: str
    bpm: float
    bars: int
    key: Key | None
    program: int | None
    drum_kit: int | None
    swing: float
    tags: tuple[str, ...]

    @property
    def is_drum(self) -> bool:
        return self.instrument == "drums"

    @property
    def steps(self) -> int:
        """Loop length in 16th-note steps."""
        return self.bars * STEPS_PER_BAR

    @property
    def seconds(self) -> float:
        """Exact loop length in seconds."""
        return self.bars * 4 * 60.0 / self.bpm


@dataclass(frozen=True)
class NoteEvent:
    """A note in musical time: start and duration in 16th steps (fractions allowed)."""

    start: float
    duration: float
    pitch: int
    velocity: float


@dataclass(frozen=True)
class Grid:
    """Maps 16th-note steps to seconds at a tempo, with swing on the off-16ths."""

    bpm: float
    swing: float = 0.5

    @property
    def step_seconds(self) -> float:
        return 15.0 / self.bpm

    def seconds(self, step: float) -> float:
        """Time of ``step``; swing stretches the first 16th of each 8th and squeezes the second.

        The warp is piecewise linear, so triplets and rolls swing along with the grid.

        Examples
        --------
        >>> Grid(120.0).seconds(4.0)
        0.5
        >>> round(Grid(120.0, swing=0.6).seconds(1.0), 3)
        0.15
        """
        pair, within = divmod(step, 2.0)
        if within < 1.0:
            warped = within * 2.0 * self.swing
        else:
            warped = 2.0 * self.swing + (within - 1.0) * 2.0 * (1.0 - self.swing)
        return (pair * 2.0 + warped) * self.step_seconds


def pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One element of ``options``, uniformly (works for sequences of tuples, unlike rng.choice)."""
    return options[int(rng.integers(len(options)))]


def dynamics(tags: Sequence[str]) -> float:
    """Velocity multiplier from mood tags: louder for energetic moods, softer for calm ones.

    Examples
    --------
    >>> dynamics(["aggressive"]), dynamics(["chill", "dreamy"])
    (1.08, 0.84)
    """
    louder = sum(tag in LOUD_MOODS for tag in tags)
    softer = sum(tag in SOFT_MOODS for tag in tags)
    return round(1.0 + 0.08 * louder - 0.08 * softer, 2)


def humanize_seconds(genre: str) -> float:
    """Standard deviation of note timing spread for a genre: none for grid-programmed styles."""
    return 0.0 if genre in QUANTIZED_GENRES else 0.006


def realize(
    events: Sequence[NoteEvent],
    spec: ItemSpec,
    rng: np.random.Generator,
    *,
    velocity_spread: float = 6.0,
) -> list[pretty_midi.Note]:
    """Turn grid events into notes in seconds, kept inside the loop.

    Applies the item's swing, timing spread (per genre), mood dynamics and velocity spread;
    every note starts at or after 0 and ends by the loop end (the renderer wraps the tail).
    """
    grid = Grid(spec.bpm, spec.swing)
    loop_end = spec.seconds
    spread = humanize_seconds(spec.genre)
    scale = dynamics(spec.tags)
    # One timing offset per onset, not per note: a player's chord lands together, early or late.
    offsets: dict[float, float] = {}
    notes = []
    for event in sorted(events, key=lambda e: (e.start, e.pitch)):
        if event.start not in offsets:
            offsets[event.start] = rng.normal(0.0, spread) if spread else 0.0
        start = grid.seconds(event.start) + offsets[event.start]
        start = min(max(start, 0.0), loop_end - 0.02)
        end = min(max(grid.seconds(event.start + event.duration), start + 0.02), loop_end)
        velocity = event.velocity * scale + rng.normal(0.0, velocity_spread)
        notes.append(
            pretty_midi.Note(
                velocity=int(np.clip(round(velocity), 1, 127)),
                pitch=int(event.pitch),
                start=start,
                end=end,
            )
        )
    return notes


def new_midi(spec: ItemSpec) -> pretty_midi.PrettyMIDI:
    """Empty MIDI at the item's tempo, 4/4, with the key signature for tonal items."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=spec.bpm, resolution=TICKS_PER_BEAT)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    if spec.key is not None:
        midi.key_signature_changes.append(pretty_midi.KeySignature(spec.key.key_number, 0.0))
    return midi


def instrument_track(
    spec: ItemSpec, notes: list[pretty_midi.Note], *, reverb: int, chorus: int = 0
) -> pretty_midi.Instrument:
    """A track with the item's program (or drum kit), effect sends and notes."""
    program = spec.drum_kit if spec.is_drum else spec.program
    track = pretty_midi.Instrument(
        program=int(program or 0), is_drum=spec.is_drum, name=spec.instrument
    )
    # Full channel volume: the synth mixes quietly and writes 16 bits, so a hotter mix keeps more
    # resolution (the renderer backs off if it ever clips).
    track.control_changes.append(pretty_midi.ControlChange(7, 127, 0.0))
    # Effect sends are part of the sound: drier for drums and bass, wetter for pads and strings.
    track.control_changes.append(pretty_midi.ControlChange(91, reverb, 0.0))
    track.control_changes.append(pretty_midi.ControlChange(93, chorus, 0.0))
    track.notes = notes
    return track


# ---------------------------------------------------------------------------------------------
# Harmony


@dataclass(frozen=True)
class Chord:
    """A chord in the progression: roman numeral, pitch classes (root first) and its span."""

    numeral: str
    tones: tuple[int, ...]
    start: float
    length: float

    @property
    def root(self) -> int:
        return self.tones[0]


def chord_tones(key: Key, numeral: str, size: int = 3) -> tuple[int, ...]:
    """Pitch classes of a diatonic chord, stacked in thirds from the key's scale.

    In minor keys an upper-case ``V`` uses harmonic minor (the raised leading tone); every
    other chord uses natural minor, so ``VII`` is the major subtonic chord.

    Examples
    --------
    >>> chord_tones(Key.parse("A minor"), "V")
    (4, 8, 11)
    >>> chord_tones(Key.parse("C major"), "ii", size=4)
    (2, 5, 9, 0)
    """
    degree = ROMAN_NUMERALS.index(numeral.rstrip("°").lower())
    if key.mode == "minor" and numeral == "V":
        steps = HARMONIC_MINOR_SCALE
    else:
        steps = MAJOR_SCALE if key.mode == "major" else NATURAL_MINOR_SCALE
    return tuple((key.tonic + steps[(degree + 2 * k) % 7]) % 12 for k in range(size))


def progression(
    key: Key, bars: int, rng: np.random.Generator, *, sevenths: bool = False
) -> list[Chord]:
    """A chord progression filling ``bars`` bars, starting and ending on the tonic.

    Two bars take a four-chord loop at two chords per bar, four bars one chord per bar, eight
    bars either an eight-chord loop or a four-chord loop at two bars per chord.
    """
    if bars >= 8 and rng.random() < 0.5:
        numerals = pick(rng, PROGRESSIONS[key.mode][8])
    else:
        numerals = pick(rng, PROGRESSIONS[key.mode][4])
    length = bars * STEPS_PER_BAR / len(numerals)
    size = 4 if sevenths else 3
    return [
        Chord(numeral, chord_tones(key, numeral, size), index * length, length)
        for index, numeral in enumerate(numerals)
    ]


def chord_at(chords: Sequence[Chord], step: float) -> Chord:
    """The chord sounding at ``step``."""
    for chord in chords:
        if chord.start <= step < chord.start + chord.length:
            return chord
    return chords[-1]


def place(pitch_class: int, low: int) -> int:
    """The pitch of ``pitch_class`` in the octave starting at ``low``.

    Examples
    --------
    >>> place(9, 28)
    33
    """
    return low + (pitch_class - low) % 12


def voice_chord(tones: Sequence[int], low: int, previous: Sequence[int] | None) -> list[int]:
    """Close-position voicing of ``tones`` with its bass in ``[low, low + 12)``.

    Of all inversions, takes the one that moves least from ``previous`` (smooth voice leading),
    or the root position when there is none.

    Examples
    --------
    >>> voice_chord((0, 4, 7), 55, None)
    [60, 64, 67]
    >>> voice_chord((5, 9, 0), 55, [60, 64, 67])
    [60, 65, 69]
    """
    candidates = []
    for inversion in range(len(tones)):
        rotated = [*tones[inversion:], *tones[:inversion]]
        pitches = [place(rotated[0], low)]
        for pitch_class in rotated[1:]:
            pitches.append(pitches[-1] + ((pitch_class - pitches[-1]) % 12 or 12))
        candidates.append(pitches)
    if previous is None:
        return candidates[0]

    def movement(candidate: list[int]) -> int:
        return sum(min(abs(pitch - old) for old in previous) for pitch in candidate)

    return min(candidates, key=movement)


def voicings(chords: Sequence[Chord], low: int) -> list[list[int]]:
    """Voice-led voicings of a progression, bass of each in ``[low, low + 12)``."""
    voiced: list[list[int]] = []
    for chord in chords:
        voiced.append(voice_chord(chord.tones, low, voiced[-1] if voiced else None))
    return voiced


def scale_pitch(key: Key, degree: int, tonic_pitch: int) -> int:
    """Pitch of scale ``degree`` (0 = tonic, 7 = tonic an octave up, negatives below)."""
    octave, within = divmod(degree, 7)
    steps = MAJOR_SCALE if key.mode == "major" else NATURAL_MINOR_SCALE
    return tonic_pitch + 12 * octave + steps[within]


def nearest_chord_degree(key: Key, degree: int, chord: Chord) -> int:
    """The scale degree closest to ``degree`` whose pitch class is a tone of ``chord``."""
    for distance in (0, 1, -1, 2, -2, 3, -3):
        candidate = degree + distance
        if (key.tonic + scale_pitch(key, candidate, 0)) % 12 in chord.tones:
            return candidate
    return degree


def tonal_context(spec: ItemSpec) -> Key:
    """The key of a tonal item (every non-drum spec has one)."""
    if spec.key is None:
        raise ValueError(f"item {spec.index} ({spec.instrument}) needs a key")
    return spec.key


# ---------------------------------------------------------------------------------------------
# Drums

KICK, RIM, SNARE, CLAP, SNARE_ELECTRIC = 36, 37, 38, 39, 40
HAT_CLOSED, HAT_PEDAL, HAT_OPEN = 42, 44, 46
CRASH, RIDE, RIDE_BELL, TAMBOURINE, COWBELL = 49, 51, 53, 54, 56
BONGO_HIGH, BONGO_LOW, CONGA_MUTE, CONGA_OPEN, CONGA_LOW = 60, 61, 62, 63, 64
TIMBALE_HIGH, SHAKER = 65, 70
TOMS_HIGH_TO_LOW: tuple[int, ...] = (50, 48, 47, 45, 43, 41)

# How long each drum voice is held, in steps (most kit samples are one-shots; these matter for
# hats, crashes and the long 808 kick).
DRUM_LENGTHS: dict[int, float] = {HAT_OPEN: 2.0, CRASH: 8.0, RIDE: 2.0, KICK: 1.0}


def hit(step: float, drum: int, velocity: float) -> NoteEvent:
    """A drum hit at ``step`` with its voice's usual length."""
    return NoteEvent(step, DRUM_LENGTHS.get(drum, 0.9), drum, velocity)


def hats(bar: int, steps: Sequence[int], drum: int, on: float, off: float) -> list[NoteEvent]:
    """Hi-hat hits on ``steps`` of ``bar``, accented on quarter notes."""
    return [hit(bar * 16 + s, drum, on if s % 4 == 0 else off) for s in steps]


def at(bar: int, steps: Sequence[float], drum: int, velocity: float) -> list[NoteEvent]:
    """Same-velocity hits of one voice on ``steps`` of ``bar``."""
    return [hit(bar * 16 + s, drum, velocity) for s in steps]


EIGHTHS = tuple(range(0, 16, 2))
SIXTEENTHS = tuple(range(16))
OFFBEAT_EIGHTHS = (2, 6, 10, 14)
FOUR_ON_THE_FLOOR = (0, 4, 8, 12)
BACKBEAT = (4, 12)


def tom_fill(bar: int, length: int, rng: np.random.Generator) -> list[NoteEvent]:
    """A descending 16th-note tom (or snare) fill over the last ``length`` steps of ``bar``."""
    voices = TOMS_HIGH_TO_LOW if rng.random() < 0.7 else (SNARE,) * 6
    first = 16 - length
    return [
        hit(
            bar * 16 + first + i,
            voices[min(i * len(voices) // length, len(voices) - 1)],
            90 + 3 * i,
        )
        for i in range(length)
    ]


def without_steps(events: list[NoteEvent], start: float, end: float) -> list[NoteEvent]:
    """Drop hits in ``[start, end)``, to clear room for a fill."""
    return [event for event in events if not start <= event.start < end]


def house_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Four-on-the-floor kick, clap on 2 and 4, open hats on the off-beats, 16th hats or shaker."""
    closed = pick(rng, ((), SIXTEENTHS, (1, 3, 5, 7, 9, 11, 13, 15)))
    shaker = rng.random() < 0.4
    congas = rng.random() < 0.35
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        events += at(bar, FOUR_ON_THE_FLOOR, KICK, 118)
        events += at(bar, BACKBEAT, CLAP, 105)
        events += at(bar, OFFBEAT_EIGHTHS, HAT_OPEN, 82)
        events += hats(bar, [s for s in closed if s not in OFFBEAT_EIGHTHS], HAT_CLOSED, 70, 48)
        if shaker:
            events += [hit(bar * 16 + s, SHAKER, 55 if s % 2 else 40) for s in SIXTEENTHS]
        if congas:
            events += at(bar, (3, 11), CONGA_MUTE, 70) + at(bar, (7, 14), CONGA_OPEN, 75)
        if bar == spec.bars - 1 and rng.random() < 0.5:
            events += at(bar, (15,), CLAP, 80)
    return events


def techno_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Pounding four-on-the-floor, off-beat hats, rolling 16th hats and a syncopated rim motif."""
    clap = rng.random() < 0.5
    rim_steps = tuple(sorted(rng.choice([3, 6, 7, 10, 11, 13, 14, 15], size=3, replace=False)))
    rolling_hats = rng.random() < 0.7
    ride = rng.random() < 0.3
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        events += at(bar, FOUR_ON_THE_FLOOR, KICK, 124)
        events += at(bar, OFFBEAT_EIGHTHS, HAT_OPEN if rng.random() < 0.5 else HAT_CLOSED, 88)
        if rolling_hats:
            events += [hit(bar * 16 + s, HAT_CLOSED, 62 if s % 2 else 40) for s in SIXTEENTHS]
        if clap:
            events += at(bar, BACKBEAT, CLAP, 100)
        events += at(bar, rim_steps, RIM, 78)
        if ride:
            events += at(bar, OFFBEAT_EIGHTHS, RIDE, 60)
    return events


HIP_HOP_KICKS: tuple[tuple[int, ...], ...] = (
    (0, 10),
    (0, 7, 10),
    (0, 3, 10),
    (0, 8, 10),
    (0, 6, 10, 13),
)


def hip_hop_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Boom-bap: kick on one and the 'and' of three, hard snare on the backbeat, swung 8th hats."""
    kick_a, kick_b = pick(rng, HIP_HOP_KICKS), pick(rng, HIP_HOP_KICKS)
    sixteenth_hats = rng.random() < 0.3
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        events += at(bar, kick_a if bar % 2 == 0 else kick_b, KICK, 112)
        events += at(bar, BACKBEAT, SNARE, 112)
        events += hats(bar, SIXTEENTHS if sixteenth_hats else EIGHTHS, HAT_CLOSED, 85, 60)
        if bar % 2 == 1 and rng.random() < 0.5:
            events += at(bar, (15,), KICK, 80)
        if bar == spec.bars - 1 and rng.random() < 0.4:
            events += at(bar, (14,), HAT_OPEN, 75)
    return events


def lo_fi_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Soft, heavily swung boom-bap with a lazy (late) snare or rim and quiet hats."""
    kick = pick(rng, HIP_HOP_KICKS)
    backbeat_voice = RIM if rng.random() < 0.35 else SNARE
    lag = 0.1  # a tenth of a step late: the laid-back snare of lo-fi beats
    shaker = rng.random() < 0.4
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        events += at(bar, kick, KICK, 92)
        events += at(bar, [s + lag for s in BACKBEAT], backbeat_voice, 88)
        events += hats(bar, EIGHTHS, HAT_CLOSED, 58, 40)
        if shaker:
            events += at(bar, (2, 6, 10, 14), SHAKER, 40)
        if bar % 2 == 1 and rng.random() < 0.5:
            events += at(bar, (14,), KICK, 70)
    return events


TRAP_KICKS: tuple[tuple[int, ...], ...] = (
    (0, 7, 10),
    (0, 3, 11),
    (0, 6, 10, 14),
    (0, 10, 11),
    (0, 3, 6, 14),
)


def trap_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """808 trap in half time: snare and clap on three, sparse 808 kicks, hats with rolls.

    Written for the fast count (130-150 BPM); at the slow count (70-75 BPM) each written bar is
    half a real bar, so rolls become 32nds and snares land on two and four.
    """
    written_bars = spec.bars * 2 if spec.bpm < 100 else spec.bars
    scale = spec.bars / written_bars
    kicks = (pick(rng, TRAP_KICKS), pick(rng, TRAP_KICKS))
    events: list[NoteEvent] = []
    for bar in range(written_bars):
        events += at(bar, kicks[bar % 2], KICK, 120)
        events += at(bar, (8,), SNARE, 110) + at(bar, (8,), CLAP, 105)
        hat_steps: list[float] = list(EIGHTHS)
        for _ in range(int(rng.integers(1, 3))):
            # A roll fills one beat with 16ths, 16th triplets or 32nds.
            beat = int(rng.integers(4)) * 4
            rate = pick(rng, (1.0, 2.0 / 3.0, 0.5))
            hat_steps = [s for s in hat_steps if not beat <= s < beat + 4]
            hat_steps += list(np.arange(beat, beat + 4, rate))
        events += [
            hit(bar * 16 + s, HAT_CLOSED, 80 if s % 4 == 0 else 62 + 8 * rng.random())
            for s in sorted(hat_steps)
        ]
        if rng.random() < 0.3:
            events += at(bar, (int(pick(rng, (6, 14))),), HAT_OPEN, 70)
    return [
        NoteEvent(
            e.start * scale,
            e.duration * scale * (4.0 if e.pitch == KICK else 1.0),
            e.pitch,
            e.velocity,
        )
        for e in events
    ]


DNB_KICKS: tuple[tuple[int, ...], ...] = ((0, 10), (0, 10, 11), (0, 2, 10), (0, 6, 10))


def drum_and_bass_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Two-step: kick on one and the 'and' of three, snare on two and four, ghosts, 8th hats."""
    ghosts = tuple(int(s) for s in rng.choice([1, 7, 9, 14, 15], size=2, replace=False))
    ride = rng.random() < 0.3
    shaker = rng.random() < 0.4
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        events += at(bar, DNB_KICKS[0] if bar % 2 == 0 else pick(rng, DNB_KICKS), KICK, 118)
        events += at(bar, BACKBEAT, SNARE, 118)
        events += at(bar, ghosts, SNARE, 42)
        events += (
            at(bar, OFFBEAT_EIGHTHS, RIDE, 70) if ride else hats(bar, EIGHTHS, HAT_CLOSED, 78, 60)
        )
        if shaker:
            events += [hit(bar * 16 + s, SHAKER, 48 if s % 2 else 34) for s in SIXTEENTHS]
    return events


FUNK_KICKS: tuple[tuple[int, ...], ...] = (
    (0, 3, 10),
    (0, 7, 10),
    (0, 6, 10),
    (0, 3, 8, 10),
    (0, 10, 13),
)


def funk_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Syncopated kick, backbeat with ghost-note snares, accented 16th hats, an open-hat lift."""
    kick_a, kick_b = pick(rng, FUNK_KICKS), pick(rng, FUNK_KICKS)
    ghosts = tuple(int(s) for s in rng.choice([2, 3, 6, 7, 9, 11, 14, 15], size=4, replace=False))
    open_step = pick(rng, (6, 14, 10))
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        events += at(bar, kick_a if bar % 2 == 0 else kick_b, KICK, 108)
        events += at(bar, BACKBEAT, SNARE, 112)
        events += at(bar, [s for s in ghosts if rng.random() < 0.85], SNARE, 34)
        events += hats(bar, [s for s in SIXTEENTHS if s != open_step], HAT_CLOSED, 82, 52)
        events += at(bar, (open_step,), HAT_OPEN, 78)
    return events


ROCK_KICKS: tuple[tuple[int, ...], ...] = ((0, 8), (0, 8, 10), (0, 7, 8), (0, 3, 8), (0, 2, 8, 10))


def rock_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Kick on one and three, big backbeat, 8th hats or ride, a crash on one and a fill into it."""
    kick = pick(rng, ROCK_KICKS)
    cymbal = pick(rng, (HAT_CLOSED, HAT_CLOSED, RIDE, HAT_OPEN))
    events: list[NoteEvent] = at(0, (0,), CRASH, 110)
    for bar in range(spec.bars):
        events += at(bar, kick, KICK, 118)
        events += at(bar, BACKBEAT, SNARE, 122)
        events += hats(bar, EIGHTHS if bar or cymbal != HAT_OPEN else EIGHTHS[1:], cymbal, 90, 70)
    if spec.bars >= 2 and rng.random() < 0.7:
        last = spec.bars - 1
        length = pick(rng, (4, 8))
        events = without_steps(events, last * 16 + 16 - length, spec.steps) + tom_fill(
            last, length, rng
        )
    return events


def reggaeton_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Dembow: kick on every beat, snare on the 'three-three-two' off-steps (3, 6, 11, 14)."""
    snare = pick(rng, (SNARE, SNARE_ELECTRIC, RIM))
    sixteenth_hats = rng.random() < 0.4
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        events += at(bar, FOUR_ON_THE_FLOOR, KICK, 115)
        events += at(bar, (3, 11), snare, 100) + at(bar, (6, 14), snare, 108)
        events += hats(bar, SIXTEENTHS if sixteenth_hats else EIGHTHS, HAT_CLOSED, 70, 50)
        if bar == spec.bars - 1 and rng.random() < 0.5:
            events += at(bar, (13, 15), TIMBALE_HIGH, 85)
    return events


BREAKBEAT_BARS: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = (
    # (kicks, snares, ghost snares): funk-break and amen-style bars
    ((0, 2, 10), (4, 12), (7, 9, 15)),
    ((0, 10, 11), (4, 12), (6, 14)),
    ((0, 2, 10, 11), (4, 12), (7, 9, 15)),
    ((0, 6, 10), (4, 12), (3, 9, 14)),
)


def breakbeat_drums(spec: ItemSpec, rng: np.random.Generator) -> list[NoteEvent]:
    """Chopped-break feel: broken kicks, backbeat snares with ghosts, 8th hats, open-hat accents."""
    bar_a, bar_b = pick(rng, BREAKBEAT_BARS), pick(rng, BREAKBEAT_BARS)
    events: list[NoteEvent] = []
    for bar in range(spec.bars):
        kicks, snares, ghosts = bar_a if bar % 2 == 0 else bar_b
        events += at(bar, kicks, KICK, 115)
        events += at(bar, snares, SNARE, 115)
        events += at(bar, ghosts, SNARE, 45)
        events += hats(bar, (0, 2, 4, 8, 10, 12), HAT_CLOSED, 82, 64)
        events += at(bar, (6, 14), HAT_OPEN, 76)
    return events


DRUM_STYLES: dict[str, Callable[[ItemSpec, np.random.Generator], list[NoteEvent]]] = {
    "house": house_drums,
    "techno": techno_drums,
    "hip-hop": hip_hop_drums,
    "trap": trap_drums,
    "drum-and-bass": drum_and_bass_drums,
    "funk": funk_drums,
    "rock": rock_drums,
    "reggaeton": reggaeton_drums,
    "breakbeat": breakbeat_drums,
    "lo-fi": lo_fi_drums,
}


def compose_drums(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """A drum loop in the style of ``spec.genre`` on the GM drum channel."""
    events = DRUM_STYLES[spec.genre](spec, rng)
    midi = new_midi(spec)
    notes = realize(events, spec, rng, velocity_spread=5.0)
    midi.instruments.append(instrument_track(spec, notes, reverb=25))
    return midi


# ---------------------------------------------------------------------------------------------
# Bass

# One bar of bass rhythm per idiom, one character per 16th step: a letter starts a note and
# says which ("R" root, "O" root an octave up, "F" fifth, "A" a scale step leading into the next
# chord's root), "-" holds it, "." is a rest.
BASS_RHYTHMS: dict[str, tuple[str, ...]] = {
    "offbeat": ("..R-..R-..R-..O-", "..R-..O-..R-..F-", "..R-..R-..R-..R-"),
    "rolling": (".RRR.RRR.RRR.RRR", ".ROR.ROR.ROR.ROR"),
    "boom-bap": ("R-----.R-.R---A-", "R--F--....R---.A", "R------...O-----"),
    "808": ("R------R--R-----", "R--R------O-----", "R---------F-----"),
    "reese": ("R---------R-----", "R-----O---R-----"),
    "funk": ("R-.O..RF..R-.O.A", "R-R.O..R..FO..A-"),
    "eighths": ("R-R-R-R-R-R-R-R-", "R-R-R-O-R-R-R-O-"),
    "pop": ("R--R--F-R--R--A-", "R---F-O-R---A---"),
    "tresillo": ("R--R--F-R--R--O-",),
}

BASS_ROLES: dict[str, str] = {"R": "root", "O": "octave", "F": "fifth", "A": "approach"}


def parse_rhythm(pattern: str) -> list[tuple[int, int, str]]:
    """(step, length in steps, role) of each note in a one-bar rhythm string.

    Examples
    --------
    >>> parse_rhythm("R--.O-..")
    [(0, 3, 'root'), (4, 2, 'octave')]
    """
    notes: list[tuple[int, int, str]] = []
    for step, symbol in enumerate(pattern):
        if symbol in BASS_ROLES:
            notes.append((step, 1, BASS_ROLES[symbol]))
        elif symbol == "-" and notes and notes[-1][0] + notes[-1][1] == step:
            notes[-1] = (notes[-1][0], notes[-1][1] + 1, notes[-1][2])
    return notes


BASS_STYLE_BY_GENRE: dict[str, tuple[str, ...]] = {
    "house": ("offbeat", "offbeat", "rolling"),
    "techno": ("rolling", "offbeat"),
    "trance": ("rolling",),
    "hip-hop": ("boom-bap",),
    "lo-fi": ("boom-bap",),
    "trap": ("808",),
    "drum-and-bass": ("reese",),
    "funk": ("funk",),
    "rock": ("eighths",),
    "pop": ("pop", "eighths"),
    "reggaeton": ("tresillo",),
}


def bass_pitch(key: Key, role: str, chord: Chord, next_chord: Chord, low: int) -> int:
    """The bass note for a rhythm role over ``chord``, rooted in the octave from ``low``."""
    root = place(chord.root, low)
    if role == "octave":
        return root + 12
    if role == "fifth":
        return root + (chord.tones[2] - chord.root) % 12
    if role == "approach":
        # The scale tone a step below (or above) the next root leads into it.
        target = place(next_chord.root, low)
        below = [p for p in range(target - 2, target) if p % 12 in key.scale]
        return below[-1] if below else target
    return root


def compose_bass(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """A bass line on the chord roots, in the rhythm idiom of the genre."""
    key = tonal_context(spec)
    chords = progression(key, spec.bars, rng)
    rhythm_a = parse_rhythm(pick(rng, BASS_RHYTHMS[pick(rng, BASS_STYLE_BY_GENRE[spec.genre])]))
    rhythm_b = parse_rhythm(pick(rng, BASS_RHYTHMS[pick(rng, BASS_STYLE_BY_GENRE[spec.genre])]))
    # Root octave E1..D#2 for electric bass; synth basses sit the same, 808s a touch lower.
    low = 26 if spec.genre == "trap" else 28
    events = []
    for bar in range(spec.bars):
        rhythm = rhythm_b if bar % 4 == 3 else rhythm_a
        for step, length, role in rhythm:
            start = bar * 16 + step
            chord = chord_at(chords, start)
            following = chord_at(chords, (chord.start + chord.length) % spec.steps)
            # An approach note only makes sense right before a chord change.
            if role == "approach" and chord.start + chord.length - start > 2:
                role = "root"
            accent = 100 if step % 4 == 0 else 88
            pitch = bass_pitch(key, role, chord, following, low)
            events.append(NoteEvent(start, length * 0.95, pitch, accent))
    midi = new_midi(spec)
    midi.instruments.append(instrument_track(spec, realize(events, spec, rng), reverb=5))
    return midi


# ---------------------------------------------------------------------------------------------
# Keys, pads, strings


KEYS_STYLE_BY_GENRE: dict[str, tuple[str, ...]] = {
    "house": ("stabs",),
    "hip-hop": ("comp",),
    "lo-fi": ("comp",),
    "funk": ("comp",),
    "pop": ("pulse", "sustain"),
    "cinematic": ("sustain", "pulse"),
    "trap": ("sustain", "pulse"),
}

STAB_RHYTHMS: tuple[tuple[int, ...], ...] = (
    (2, 6, 10, 14),
    (0, 3, 6, 10, 12),
    (3, 6, 10, 14),
    (0, 3, 7, 10),
)
CLAV_RHYTHMS: tuple[tuple[int, ...], ...] = (
    (0, 3, 6, 7, 10, 12, 14),
    (0, 2, 3, 6, 8, 11, 14),
    (1, 3, 6, 9, 11, 14),
)
COMP_RHYTHMS: tuple[tuple[tuple[int, float], ...], ...] = (
    ((0, 6), (7, 3), (10, 6)),
    ((0, 10), (10, 6)),
    ((0, 3), (3, 4), (10, 5)),
)


def compose_keys(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """Piano, electric piano or clavinet chords, played the way the genre comps."""
    key = tonal_context(spec)
    # A clavinet always plays the choppy funk part it is known for.
    style = "clav" if spec.program == 7 else pick(rng, KEYS_STYLE_BY_GENRE[spec.genre])
    sevenths = style == "comp" or (spec.genre == "house" and rng.random() < 0.4)
    chords = progression(key, spec.bars, rng, sevenths=sevenths)
    right_hand = voicings(chords, 55 if style != "clav" else 60)
    # One rhythm for the whole loop, as a player locks into a part.
    stab_rhythm, clav_rhythm = pick(rng, STAB_RHYTHMS), pick(rng, CLAV_RHYTHMS)
    comp_rhythm = pick(rng, COMP_RHYTHMS)
    events: list[NoteEvent] = []
    for chord, voicing in zip(chords, right_hand, strict=True):
        bass = place(chord.root, 36)
        span = range(int(chord.start), int(chord.start + chord.length))
        if style == "sustain":
            events += [NoteEvent(chord.start, chord.length, p, 72) for p in voicing]
            events.append(NoteEvent(chord.start, chord.length, bass, 78))
        elif style == "pulse":
            events += [
                NoteEvent(s, 1.7, p, 80 if s % 4 == 0 else 66)
                for s in span
                if s % 2 == 0
                for p in voicing
            ]
            events += [NoteEvent(s, 8.0, bass, 80) for s in span if s % 8 == 0]
        elif style == "stabs":
            events += [
                NoteEvent(s, 1.2, p, 98) for s in span if s % 16 in stab_rhythm for p in voicing
            ]
        elif style == "clav":
            events += [
                NoteEvent(s, 0.6, p, 96 if s % 4 == 0 else 80)
                for s in span
                if s % 16 in clav_rhythm
                for p in voicing
            ]
        else:  # comp: held chords with a re-strike, left-hand root
            events += [
                NoteEvent(
                    s, min(length, chord.start + chord.length - s), p, 76 if s % 16 == 0 else 64
                )
                for s in span
                for step, length in comp_rhythm
                if s % 16 == step
                for p in voicing
            ]
            events += [
                NoteEvent(s, 7.5, bass, 72)
                for s in span
                if s % 16 == 0 or (chord.length < 16 and s == chord.start)
            ]
    midi = new_midi(spec)
    midi.instruments.append(
        instrument_track(spec, realize(events, spec, rng), reverb=45, chorus=10)
    )
    return midi


def compose_pad(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """Sustained, wide pad chords: a low root under a voice-led upper voicing."""
    key = tonal_context(spec)
    chords = progression(
        key, spec.bars, rng, sevenths=spec.genre in ("ambient", "lo-fi") and rng.random() < 0.6
    )
    events: list[NoteEvent] = []
    for chord, voicing in zip(chords, voicings(chords, 57), strict=True):
        events.append(NoteEvent(chord.start, chord.length, place(chord.root, 45), 74))
        events += [NoteEvent(chord.start, chord.length, p, 80) for p in voicing]
    midi = new_midi(spec)
    midi.instruments.append(
        instrument_track(
            spec, realize(events, spec, rng, velocity_spread=3.0), reverb=90, chorus=50
        )
    )
    return midi


def compose_strings(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """String section: sustained four-part chords, or an 8th-note ostinato under held chords."""
    key = tonal_context(spec)
    chords = progression(key, spec.bars, rng)
    ostinato = spec.program != 44 and rng.random() < 0.45  # tremolo strings only sustain
    events: list[NoteEvent] = []
    for chord, voicing in zip(chords, voicings(chords, 60), strict=True):
        cello = place(chord.root, 43)
        events += [NoteEvent(chord.start, chord.length, p, 78) for p in voicing]
        if ostinato:
            fifth = cello + (chord.tones[2] - chord.root) % 12
            for s in range(int(chord.start), int(chord.start + chord.length), 2):
                events.append(
                    NoteEvent(s, 1.8, cello if s % 4 == 0 else fifth, 84 if s % 8 == 0 else 70)
                )
        else:
            events.append(NoteEvent(chord.start, chord.length, cello, 80))
    midi = new_midi(spec)
    midi.instruments.append(
        instrument_track(
            spec, realize(events, spec, rng, velocity_spread=4.0), reverb=70, chorus=20
        )
    )
    return midi


# ---------------------------------------------------------------------------------------------
# Melodic parts: lead, arp, pluck

LeadRhythm = tuple[tuple[float, float], ...]

LEAD_RHYTHMS: tuple[LeadRhythm, ...] = (
    ((0, 2), (2, 2), (4, 3), (8, 2), (10, 2), (12, 4)),
    ((0, 3), (3, 3), (6, 2), (8, 4), (12, 2), (14, 2)),
    ((0, 1), (2, 1), (3, 2), (6, 2), (8, 1), (10, 2), (12, 3)),
    ((0, 4), (4, 2), (6, 2), (8, 6), (14, 2)),
    ((0, 2), (3, 1), (4, 2), (7, 3), (10, 2), (12, 2), (14, 2)),
    ((2, 2), (4, 2), (6, 2), (8, 3), (11, 1), (12, 4)),
)

# Favoured melodic steps (in scale degrees) and how often: mostly steps, some skips, rare leaps.
MELODIC_STEPS = np.array([-3, -2, -1, 0, 1, 2, 3])
MELODIC_STEP_WEIGHTS = np.array([0.05, 0.15, 0.27, 0.06, 0.27, 0.15, 0.05])

# Tonal gravity: how much more often a melody rests on each scale degree (tonic, third and fifth
# most, the leading note least), so the line itself says which key it is in.
DEGREE_STABILITY = np.array([1.8, 0.9, 1.4, 0.9, 1.5, 0.9, 0.7])


def next_degree(degree: int, low: int, high: int, rng: np.random.Generator) -> int:
    """The melody's next scale degree: mostly steps, pulled towards stable degrees."""
    candidates = np.clip(degree + MELODIC_STEPS, low, high)
    weights = MELODIC_STEP_WEIGHTS * DEGREE_STABILITY[candidates % 7]
    return int(rng.choice(candidates, p=weights / weights.sum()))


def melody(
    key: Key,
    chords: Sequence[Chord],
    rhythm_a: LeadRhythm,
    rhythm_b: LeadRhythm,
    bars: int,
    tonic_pitch: int,
    rng: np.random.Generator,
) -> list[NoteEvent]:
    """A scale melody in call-and-response bars, chord tones on strong beats, tonic first and last.

    Odd bars answer even bars with a second rhythm; bars repeat the contour of the bar two
    earlier (refitted to the chord) so the line has a motif to recognise.
    """
    low, high = -2, 10
    degree = 0
    contours: dict[int, list[int]] = {}
    events: list[NoteEvent] = []
    for bar in range(bars):
        rhythm = rhythm_a if bar % 2 == 0 else rhythm_b
        role = bar % 2 if bar % 4 != 3 else 2
        remembered = contours.get(role)
        contour = []
        for index, (step, length) in enumerate(rhythm):
            start = bar * 16 + step
            chord = chord_at(chords, start)
            if remembered is not None:
                degree = remembered[index]
            elif bar > 0 or index > 0:
                degree = next_degree(degree, low, high, rng)
            if step % 4 == 0:
                degree = nearest_chord_degree(key, degree, chord)
            contour.append(degree)
            events.append(
                NoteEvent(
                    start,
                    length * 0.9,
                    scale_pitch(key, degree, tonic_pitch),
                    96 if step % 4 == 0 else 84,
                )
            )
        contours.setdefault(role, contour)
    # Land the phrase on the tonic (nearest octave) so the loop resolves where it starts.
    last = events[-1]
    final_degree = 7 * round(contour[-1] / 7)
    events[-1] = NoteEvent(
        last.start,
        bars * 16 - last.start,
        scale_pitch(key, final_degree, tonic_pitch),
        last.velocity,
    )
    return events


def compose_lead(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """A monophonic synth lead melody on the key's scale over an implied progression."""
    key = tonal_context(spec)
    chords = progression(key, spec.bars, rng)
    tonic = place(key.tonic, 60 if spec.genre not in ("trance", "pop") else 64)
    events = melody(
        key, chords, pick(rng, LEAD_RHYTHMS), pick(rng, LEAD_RHYTHMS), spec.bars, tonic, rng
    )
    midi = new_midi(spec)
    midi.instruments.append(
        instrument_track(spec, realize(events, spec, rng), reverb=50, chorus=20)
    )
    return midi


ARP_PATTERNS: tuple[str, ...] = ("up", "down", "up-down", "pedal", "up", "converge")


def arp_order(pattern: str, count: int) -> list[int]:
    """Index order through ``count`` ascending chord tones for an arpeggio pattern.

    Examples
    --------
    >>> arp_order("up-down", 4)
    [0, 1, 2, 3, 2, 1]
    >>> arp_order("pedal", 4)
    [0, 1, 0, 2, 0, 3]
    """
    up = list(range(count))
    if pattern == "down":
        return up[::-1]
    if pattern == "up-down":
        return up + up[-2:0:-1]
    if pattern == "pedal":
        return [i for upper in up[1:] for i in (0, upper)]
    if pattern == "converge":
        return [i for pair in zip(up, up[::-1], strict=True) for i in pair][:count]
    return up


def compose_arp(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """An arpeggiator line through each chord's tones across one or two octaves."""
    key = tonal_context(spec)
    chords = progression(
        key, spec.bars, rng, sevenths=spec.genre in ("ambient", "cinematic") and rng.random() < 0.4
    )
    pattern = pick(rng, ARP_PATTERNS)
    rate = 2 if spec.bpm < 95 and rng.random() < 0.5 else 1
    octaves = int(rng.integers(1, 3))
    gate = float(rng.uniform(0.45, 0.9))
    events: list[NoteEvent] = []
    for chord, voicing in zip(chords, voicings(chords, 57), strict=True):
        pool = [p + 12 * octave for octave in range(octaves) for p in voicing]
        order = arp_order(pattern, len(pool))
        # The arpeggio restarts on every chord, as a hardware arpeggiator re-triggers.
        for i, step in enumerate(np.arange(chord.start, chord.start + chord.length, rate)):
            velocity = 100 if step % 4 == 0 else 80 if step % 2 == 0 else 70
            events.append(
                NoteEvent(float(step), rate * gate, pool[order[i % len(order)]], velocity)
            )
    midi = new_midi(spec)
    midi.instruments.append(
        instrument_track(
            spec, realize(events, spec, rng, velocity_spread=4.0), reverb=45, chorus=15
        )
    )
    return midi


PLUCK_RHYTHMS: tuple[tuple[int, ...], ...] = (
    (0, 3, 6, 8, 11, 14),
    (0, 3, 6, 10, 12),
    (0, 2, 3, 6, 8, 10, 11, 14),
    (0, 3, 7, 10, 12, 14),
    (2, 4, 7, 10, 12, 15),
)


def compose_pluck(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """A syncopated plucked riff over chord tones, with occasional two-note dyads."""
    key = tonal_context(spec)
    chords = progression(key, spec.bars, rng)
    rhythm = pick(rng, PLUCK_RHYTHMS)
    contour = rng.permutation(3)
    events: list[NoteEvent] = []
    for chord, voicing in zip(chords, voicings(chords, 62), strict=True):
        steps = [
            s for s in range(int(chord.start), int(chord.start + chord.length)) if s % 16 in rhythm
        ]
        for i, step in enumerate(steps):
            top = voicing[int(contour[i % 3])]
            velocity = 98 if step % 4 == 0 else 82
            events.append(NoteEvent(step, 1.5, top, velocity))
            if rng.random() < 0.3:
                events.append(
                    NoteEvent(step, 1.5, top - 12 if top - 12 >= 48 else voicing[0], velocity - 10)
                )
    midi = new_midi(spec)
    midi.instruments.append(
        instrument_track(spec, realize(events, spec, rng), reverb=55, chorus=15)
    )
    return midi


# ---------------------------------------------------------------------------------------------
# Guitar

GUITAR_STYLE_BY_GENRE: dict[str, tuple[str, ...]] = {
    "rock": ("power",),
    "funk": ("scratch",),
    "pop": ("strum",),
    "reggaeton": ("strum", "picking"),
    "lo-fi": ("picking",),
    "hip-hop": ("picking", "scratch"),
}

# Strum directions on the 8th-note grid: "D" down, "U" up, "." rest.
STRUM_PATTERNS: tuple[str, ...] = ("D.DU.UDU", "D.D.DUDU", "D..UD.DU", "DUDUDUDU")
SCRATCH_RHYTHMS: tuple[tuple[int, ...], ...] = (
    (0, 2, 3, 6, 8, 10, 11, 14),
    (0, 1, 3, 4, 6, 8, 9, 11, 12, 14),
    (2, 3, 6, 7, 10, 11, 14, 15),
)


def guitar_voicing(chord: Chord) -> list[int]:
    """A six-string-style open voicing: low root, then 5th, octave, 3rd, 5th and root above."""
    root = place(chord.root, 40)
    third = (chord.tones[1] - chord.root) % 12
    fifth = (chord.tones[2] - chord.root) % 12
    return [
        p
        for p in (root, root + fifth, root + 12, root + 12 + third, root + 12 + fifth, root + 24)
        if p <= 84
    ]


def strum(
    step: float, voicing: Sequence[int], downward: bool, velocity: float, length: float
) -> list[NoteEvent]:
    """One strum: notes staggered low-to-high (down) or high-to-low on the top strings (up)."""
    strings = list(voicing) if downward else list(voicing[::-1][:4])
    return [
        NoteEvent(step + 0.06 * i, length - 0.06 * i, pitch, velocity - 3 * i)
        for i, pitch in enumerate(strings)
    ]


def compose_guitar(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """Guitar in the genre's idiom: power chords, funk scratching, strumming or fingerpicking."""
    key = tonal_context(spec)
    style = pick(rng, GUITAR_STYLE_BY_GENRE[spec.genre])
    chords = progression(key, spec.bars, rng, sevenths=style == "scratch")
    events: list[NoteEvent] = []
    strum_pattern = pick(rng, STRUM_PATTERNS)
    scratch_rhythm = pick(rng, SCRATCH_RHYTHMS)
    for chord, upper in zip(chords, voicings(chords, 60), strict=True):
        voicing = guitar_voicing(chord)
        span = range(int(chord.start), int(chord.start + chord.length))
        if style == "power":
            power = voicing[:3]  # root, fifth, octave
            events += [
                NoteEvent(s, 1.2 if s % 8 else 1.8, p, 104 if s % 8 == 0 else 86)
                for s in span
                if s % 2 == 0
                for p in power
            ]
        elif style == "scratch":
            events += [
                NoteEvent(s, 0.45, p, 92 if s % 4 == 0 else 70)
                for s in span
                if s % 16 in scratch_rhythm
                for p in upper
            ]
        elif style == "strum":
            for s in span:
                stroke = strum_pattern[(s % 16) // 2] if s % 2 == 0 else "."
                if stroke != ".":
                    events += strum(s, voicing, stroke == "D", 92 if stroke == "D" else 74, 2.0)
        else:  # picking: alternating bass, treble on the off-beats
            bass = voicing[0]
            fifth = voicing[1]
            treble = voicing[3:] or voicing[-2:]
            for s in span:
                if s % 4 == 0:
                    events.append(NoteEvent(s, 3.5, bass if s % 8 == 0 else fifth, 84))
                elif s % 2 == 0:
                    events.append(NoteEvent(s, 1.8, treble[(s // 2) % len(treble)], 70))
    midi = new_midi(spec)
    midi.instruments.append(
        instrument_track(
            spec, realize(events, spec, rng, velocity_spread=5.0), reverb=35, chorus=15
        )
    )
    return midi


COMPOSERS: dict[str, Callable[[ItemSpec, np.random.Generator], pretty_midi.PrettyMIDI]] = {
    "drums": compose_drums,
    "bass": compose_bass,
    "keys": compose_keys,
    "pad": compose_pad,
    "lead": compose_lead,
    "arp": compose_arp,
    "pluck": compose_pluck,
    "strings": compose_strings,
    "guitar": compose_guitar,
}


def compose_item(spec: ItemSpec, rng: np.random.Generator) -> pretty_midi.PrettyMIDI:
    """The MIDI pattern of one demo item, at its tempo, with a key signature if tonal.

    Examples
    --------
    >>> spec = ItemSpec(
    ...     0, "bass", "house", 124.0, 4, Key.parse("A minor"), 38, None, 0.5, ("groovy",)
    ... )
    >>> midi = compose_item(spec, np.random.default_rng(0))
    >>> midi.instruments[0].program, midi.get_end_time() <= spec.seconds
    (38, True)
    """
    return COMPOSERS[spec.instrument](spec, rng)
