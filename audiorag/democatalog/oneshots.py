"""One-shots like the ones users own: every GM percussion sound, notes and chords of every program.

A sample library is mostly single hits and notes, not loops, and its file names say "kick",
"violin", "organ". This catalog renders, for each SoundFont given:

* every General MIDI percussion key (35–81) ``hits_per_drum`` times, each in a drum kit of the
  font and at its own velocity;
* every one of the 128 GM programs ``notes_per_program`` times: a single note or (for
  instruments that play them) a chord, at a pitch in the instrument's range, held 20 ms – 2.5 s;

each trimmed to at most 3 s (a 10 ms fade where the ring is cut), with a caption that names the
actual sound (GM name or a synonym: "closed hi-hat", "cello", "church organ") and often its family
or one-shot type. Layout under ``out``::

    oneshots/<family>/<font>_<n>_<name>.wav   44.1 kHz stereo 16-bit, 20 ms – 3 s
    licences.jsonl                            one row per file: path, licence, meta (+ caption)
    catalog.json                              seed, counts, each SoundFont with its licence

Deterministic in ``(seed, soundfonts, hits_per_drum, notes_per_program)``: each item's draws come
from a stream keyed by (seed, font, item).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import soundfile as sf

from audio.decode import file_sha256
from audiorag.democatalog.captions import capitalize, draw, fix_articles
from audiorag.democatalog.catalog import PEAK_DBFS, SAMPLE_RATE, stream
from audiorag.democatalog.compose import PITCH_CLASS_NAMES
from audiorag.democatalog.gm_names import (
    FAMILY_WORDS,
    FIRST_DRUM_NOTE,
    TYPE_WORDS,
    drum_type,
    drum_words,
    program_family,
    program_name,
    program_words,
)
from index.render import DEFAULT_SOUNDFONT, render_midi

GENERATOR_VERSION = "1.0"
MAX_SECONDS = 3.0
FADE_SECONDS = 0.01
NOTE_SECONDS = (0.02, 2.5)  # held length of a note (log-uniform); its release rings on
SILENT_PEAK = 1e-4  # a render this quiet means the font lacks the sound: left out, and counted
_ONE_SHOT_STREAM = 7

# GM drum kits (bank 128 presets): Standard, Room, Power, Electronic, TR-808, Jazz, Brush. A
# font without one falls back to its standard kit, which is still a real percussion sound.
DRUM_KITS: tuple[int, ...] = (0, 8, 16, 24, 25, 32, 40)

# Families whose instruments play chords (a third of their items are chords).
CHORD_FAMILIES = frozenset({"keys", "organ", "guitar", "strings", "brass", "pad", "choir"})

# Pitch range (MIDI notes) per family; the rest use the default.
PITCH_RANGES: dict[str, tuple[int, int]] = {
    "bass": (28, 52), "brass": (45, 74), "woodwind": (55, 84), "mallets": (60, 88),
    "choir": (50, 74), "percussion": (40, 64),
}  # fmt: skip
DEFAULT_PITCH_RANGE = (45, 79)

# Licences of the SoundFonts this project renders with (file name → licence line).
SOUNDFONT_LICENCES: dict[str, str] = {
    "TimGM6mb.sf2": "TimGM6mb by Tim Brechbill, GPL-2.0; shipped inside pretty_midi "
    "(Debian: timgm6mb-soundfont).",
    "sf_GMbank.sf2": "sf_GMbank.sf2 from Csound, public domain (Debian: csound-soundfont, "
    "copyright file: 'The file has Public Domain in its license field').",
    "FluidR3_GM.sf2": "FluidR3_GM by Frank Wen, MIT (Debian: fluid-soundfont-gm). HELD OUT: "
    "never train on it.",
    "MuseScore_General_Full.sf2": "MuseScore General by S. Christian Collins, MIT with PD/CC0 "
    "parts (Debian: musescore-general-soundfont-lossless); contains Fluid R3 Mono samples, "
    "so training on it leaks into the FluidR3 held-out set.",
}
UNKNOWN_LICENCE = "User-supplied SoundFont; its licence is not recorded here."

HOLDER = "audiorag demo one-shots"


@dataclass(frozen=True)
class OneShotSpec:
    """One hit or note to render."""

    index: int
    font: int  # place of its SoundFont in the list
    family: str
    sound: str  # one-shot type for percussion ("kick"), GM program name for the rest
    drum_note: int | None
    program: int | None
    kit: int | None
    pitches: tuple[int, ...]
    velocity: int
    hold_s: float

    @property
    def is_drum(self) -> bool:
        return self.drum_note is not None


@dataclass
class OneShotSummary:
    """What :func:`build_oneshot_catalog` wrote."""

    out: Path
    items: int
    silent_skipped: int
    counts_by_family: dict[str, int]
    seconds: float


ALL_DRUM_NOTES: tuple[int, ...] = tuple(range(FIRST_DRUM_NOTE, FIRST_DRUM_NOTE + 47))
ALL_PROGRAMS: tuple[int, ...] = tuple(range(128))


def plan_font(
    font: int,
    seed: int,
    *,
    hits_per_drum: int,
    notes_per_program: int,
    drum_notes: Sequence[int] = ALL_DRUM_NOTES,
    programs: Sequence[int] = ALL_PROGRAMS,
) -> list[OneShotSpec]:
    """Every percussion key ``hits_per_drum`` times and every program ``notes_per_program`` times
    (or only those of ``drum_notes`` and ``programs``), for the ``font``-th SoundFont; draws from
    one stream per item.

    >>> plan = plan_font(0, 0, hits_per_drum=1, notes_per_program=1)
    >>> len(plan), sum(spec.is_drum for spec in plan)
    (175, 47)
    """
    jobs: list[tuple[int | None, int | None]] = [
        (note, None) for note in drum_notes for _ in range(hits_per_drum)
    ]
    jobs += [(None, program) for program in programs for _ in range(notes_per_program)]
    plan = []
    for index, (note, program) in enumerate(jobs):
        rng = stream(seed, _ONE_SHOT_STREAM, font, index)
        velocity = int(rng.integers(60, 128))
        if note is not None:
            kit = DRUM_KITS[(index + font) % len(DRUM_KITS)]
            spec = OneShotSpec(
                index, font, "drums", drum_type(note), note, None, kit, (note,), velocity, 0.1
            )
            plan.append(spec)
            continue
        family = program_family(program)
        low, high = PITCH_RANGES.get(family, DEFAULT_PITCH_RANGE)
        root = int(rng.integers(low, high + 1))
        pitches: tuple[int, ...] = (root,)
        if family in CHORD_FAMILIES and rng.random() < 1 / 3:
            third = 3 if rng.random() < 0.5 else 4
            pitches = (root, root + third, root + 7)
        hold = float(np.exp(rng.uniform(*np.log(NOTE_SECONDS))))
        name = program_name(program)
        plan.append(
            OneShotSpec(
                index, font, family, name, None, program, None, pitches, velocity, round(hold, 3)
            )
        )
    return plan


def pitch_name(pitch: int) -> str:
    """Scientific pitch name: 60 → "C4".

    >>> pitch_name(60), pitch_name(69)
    ('C4', 'A4')
    """
    return f"{PITCH_CLASS_NAMES[pitch % 12]}{pitch // 12 - 1}"


def one_shot_midi(spec: OneShotSpec) -> pretty_midi.PrettyMIDI:
    """The hit or note as a one-track MIDI file."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    track = pretty_midi.Instrument(
        program=spec.kit if spec.is_drum else int(spec.program or 0), is_drum=spec.is_drum
    )
    track.control_changes.append(pretty_midi.ControlChange(7, 127, 0.0))
    track.control_changes.append(pretty_midi.ControlChange(91, 20, 0.0))  # a little room
    for pitch in spec.pitches:
        track.notes.append(pretty_midi.Note(spec.velocity, pitch, 0.0, spec.hold_s))
    midi.instruments.append(track)
    return midi


def render_one_shot(spec: OneShotSpec, soundfont: Path) -> np.ndarray | None:
    """The rendered sound, (2, n) float32, at most :data:`MAX_SECONDS`; None if it is silent."""
    audio = render_midi(one_shot_midi(spec), sr=SAMPLE_RATE, soundfont=soundfont, peak_dbfs=None)
    if audio.size == 0 or float(np.abs(audio).max()) < SILENT_PEAK:
        return None
    limit = round(MAX_SECONDS * SAMPLE_RATE)
    if audio.shape[1] > limit:
        audio = audio[:, :limit].copy()
        fade = round(FADE_SECONDS * SAMPLE_RATE)
        audio[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return (audio * (10 ** (PEAK_DBFS / 20) / np.abs(audio).max())).astype(np.float32)


def font_tag(soundfont: Path) -> str:
    """A short file-name-safe name for a SoundFont: "TimGM6mb.sf2" → "timgm6mb"."""
    return re.sub(r"[^a-z0-9]+", "-", Path(soundfont).stem.lower()).strip("-")


def item_path(spec: OneShotSpec, soundfont: Path) -> str:
    """Catalog-relative path: ``oneshots/strings/timgm6mb_0123_violin.wav``."""
    name = re.sub(r"[^a-z0-9]+", "-", drum_words(spec.drum_note)[0] if spec.is_drum else
                  spec.sound).strip("-")  # fmt: skip
    return f"oneshots/{spec.family}/{font_tag(soundfont)}_{spec.index:04d}_{name}.wav"


def item_meta(spec: OneShotSpec, soundfont: Path, seed: int) -> dict[str, Any]:
    """Ground truth of one file, with its caption."""
    meta: dict[str, Any] = {
        "kind": "stem",
        "instrument": spec.family,
        "program": spec.program,
        "is_drum": spec.is_drum,
        "genre": None,
        "bpm": None,
        "key": None,
        "bars": None,
        "tags": [spec.sound],
        "one_shot": True,
        "sound": spec.sound,
        "drum_note": spec.drum_note,
        "pitches": list(spec.pitches),
        "soundfont": Path(soundfont).name,
    }
    rng = stream(seed, _ONE_SHOT_STREAM + 1, spec.font, spec.index)
    meta["caption"] = oneshot_caption(meta, rng)
    return meta


# --- captions -----------------------------------------------------------------------------------

DRUM_TEMPLATES: tuple[str, ...] = (
    "{name}", "{name} one-shot", "{name} hit", "single {name} hit", "{name} sample",
    "one-shot {name}", "{family} one-shot: {name}", "{name}, {family} one-shot",
    "{kind} one-shot: {name}", "a {name}",
)  # fmt: skip
NOTE_TEMPLATES: tuple[str, ...] = (
    "{name}", "{name} note", "single {name} note", "{name} one-shot", "{name} note, {pitch}",
    "{family} one-shot: {name}", "{name} sample ({family})", "{family}: {name} note",
    "a {name} note in {pitch}", "{name}",
)  # fmt: skip
# Family- or type-only captions: a search for "strings" or "snare" names no instrument, and
# without them such words meet one-shots only beside a GM name.
FAMILY_ONLY_SHARE = 0.25
FAMILY_ONLY_TEMPLATES: tuple[str, ...] = (
    "{family}", "{family} one-shot", "{family} sample", "{family} sound", "single {family} hit",
)  # fmt: skip
CHORD_TEMPLATES: tuple[str, ...] = (
    "{name} chord", "{name} chord stab", "{family} chord one-shot: {name}", "{name} chord, {pitch}",
    "{name}",
)  # fmt: skip


def oneshot_caption(meta: Mapping[str, Any], rng: np.random.Generator) -> str:
    """A caption naming the actual sound, worded at random: "Closed hi-hat one-shot", "Cello
    note, G3", "Strings: violin note"; a quarter (:data:`FAMILY_ONLY_SHARE`) name only the family
    or one-shot type ("strings note", "snare"), as short searches do. Without a GM key or
    program (samples labelled by file name), ``meta["sound"]`` is the name.

    >>> meta = {"instrument": "drums", "drum_note": 42, "sound": "hi-hat", "pitches": [42]}
    >>> caption = oneshot_caption(meta, np.random.default_rng(0)).lower()
    >>> any(word in caption for word in ("hat", "drum", "percussion"))
    True
    """
    family = draw(FAMILY_WORDS[meta["instrument"]], rng)
    hit = meta.get("drum_note") is not None or meta.get("sound") in TYPE_WORDS
    if hit:
        kind = draw(TYPE_WORDS[meta["sound"]], rng)
        note = meta.get("drum_note")
        names = drum_words(note) if note is not None else (meta["sound"],)
        if rng.random() < FAMILY_ONLY_SHARE:
            text = draw(FAMILY_ONLY_TEMPLATES, rng).format(family=kind)
        else:
            text = draw(DRUM_TEMPLATES, rng).format(name=draw(names, rng), family=family, kind=kind)
    else:
        pitches = meta.get("pitches") or [60]
        program = meta.get("program")
        names = program_words(program) if program is not None else (meta["sound"],)
        if rng.random() < FAMILY_ONLY_SHARE:
            text = draw(FAMILY_ONLY_TEMPLATES, rng).format(family=family)
        else:
            templates = CHORD_TEMPLATES if len(pitches) > 1 else NOTE_TEMPLATES
            text = draw(templates, rng).format(
                name=draw(names, rng), family=family, pitch=pitch_name(pitches[0])
            )
    text = fix_articles(" ".join(text.split()))
    return capitalize(text) if rng.random() < 0.5 else text


# --- the build ----------------------------------------------------------------------------------


def soundfont_licence(soundfont: Path) -> str:
    return SOUNDFONT_LICENCES.get(Path(soundfont).name, UNKNOWN_LICENCE)


def licence_row(spec: OneShotSpec, soundfont: Path) -> dict[str, Any]:
    return {
        "id": f"OS-{font_tag(soundfont)}-{spec.index:04d}",
        "holder": HOLDER,
        "allowed_uses": ["search", "generation-seed", "commercial"],
        "attribution": f"Rendered with {soundfont_licence(soundfont)}",
    }


def build_oneshot_catalog(
    out: Path,
    *,
    soundfonts: Sequence[Path] = (DEFAULT_SOUNDFONT,),
    seed: int = 0,
    hits_per_drum: int = 2,
    notes_per_program: int = 2,
    drum_notes: Sequence[int] = ALL_DRUM_NOTES,
    programs: Sequence[int] = ALL_PROGRAMS,
) -> OneShotSummary:
    """Render the one-shot catalog of every SoundFont in ``soundfonts`` into ``out``.

    ``drum_notes`` and ``programs`` narrow it to some sounds (all by default).

    >>> import tempfile
    >>> summary = build_oneshot_catalog(Path(tempfile.mkdtemp()), hits_per_drum=0,
    ...                                 notes_per_program=0)
    >>> summary.items
    0
    """
    started = time.perf_counter()
    out = Path(out)
    fonts = [Path(font) for font in soundfonts]
    for font in fonts:
        if not font.is_file():
            raise FileNotFoundError(f"SoundFont not found: {font}")
    out.mkdir(parents=True, exist_ok=True)
    rows, silent = [], 0
    for place, font in enumerate(fonts):
        plan = plan_font(
            place, seed, hits_per_drum=hits_per_drum, notes_per_program=notes_per_program,
            drum_notes=drum_notes, programs=programs,
        )  # fmt: skip
        for spec in plan:
            audio = render_one_shot(spec, font)
            if audio is None:
                silent += 1
                continue
            path = item_path(spec, font)
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(out / path, audio.T, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            meta = item_meta(spec, font, seed)
            rows.append({"path": path, "licence": licence_row(spec, font), "meta": meta})
    with (out / "licences.jsonl").open("w", encoding="utf-8", newline="\n") as manifest:
        for row in rows:
            manifest.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = dict(sorted(Counter(row["meta"]["instrument"] for row in rows).items()))
    description = {
        "generator": "audiorag.democatalog.oneshots",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "hits_per_drum": hits_per_drum,
        "notes_per_program": notes_per_program,
        "items": len(rows),
        "silent_skipped": silent,
        "counts": {
            "family": counts,
            "sound": dict(sorted(Counter(row["meta"]["sound"] for row in rows).items())),
        },
        "soundfonts": [
            {"file": font.name, "sha256": file_sha256(font), "licence": soundfont_licence(font)}
            for font in fonts
        ],
    }
    (out / "catalog.json").write_text(
        json.dumps(description, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return OneShotSummary(out, len(rows), silent, counts, time.perf_counter() - started)


def summary_json(summary: OneShotSummary) -> dict[str, Any]:
    return {**asdict(summary), "out": str(summary.out)}
