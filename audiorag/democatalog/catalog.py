"""The synthetic licensed demo catalog: plan the items, compose them, render them, write the files.

Layout under the output folder::

    stems/<family>/<name>.wav   44.1 kHz stereo 16-bit loops, exactly bars * 240 / bpm seconds
    midi/<family>/<name>.mid    the pattern each stem was rendered from
    licences.jsonl              one row per file: path, licence, metadata (with a caption)
    catalog.json                generator version, seed, counts, the SoundFont and its licence

Everything is deterministic in ``(count, seed)``: the plan comes from one random stream, each
item's notes and caption from streams keyed by its index, so the files are byte-identical
however many worker processes render them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audio.decode import file_sha256
from audiorag.democatalog.captions import caption_for
from audiorag.democatalog.compose import ALL_KEYS, DRUM_STYLES, ItemSpec, Key, compose_item
from index.render import DEFAULT_SOUNDFONT, midi_bytes, render_loop

GENERATOR_VERSION = "1.0"
SAMPLE_RATE = 44100
PEAK_DBFS = -1.0

FAMILIES: tuple[str, ...] = (
    "drums",
    "bass",
    "keys",
    "pad",
    "lead",
    "arp",
    "pluck",
    "strings",
    "guitar",
)
TONAL_FAMILIES: tuple[str, ...] = FAMILIES[1:]
DRUM_SHARE = 0.35
BAR_CHOICES: tuple[int, ...] = (2, 4, 8)
BAR_WEIGHTS: tuple[float, ...] = (0.25, 0.5, 0.25)

MOODS: tuple[str, ...] = (
    "dark", "bright", "uplifting", "melancholic", "aggressive", "chill", "dreamy", "energetic",
    "groovy", "tense", "warm", "gritty", "hypnotic", "driving", "nostalgic", "playful",
)  # fmt: skip

# Realistic tempo ranges (inclusive BPM) per style; trap also lives at half time.
TEMPO_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "house": ((118, 128),),
    "techno": ((125, 140),),
    "trance": ((132, 140),),
    "hip-hop": ((80, 100),),
    "lo-fi": ((70, 90),),
    "trap": ((130, 150), (130, 150), (70, 75)),
    "drum-and-bass": ((160, 175),),
    "funk": ((95, 115),),
    "rock": ((100, 140),),
    "reggaeton": ((88, 100),),
    "breakbeat": ((120, 140),),
    "pop": ((95, 128),),
    "cinematic": ((70, 110),),
    "ambient": ((70, 100),),
}

# 16th-note swing ratio ranges; unlisted styles play straight.
SWING_RANGES: dict[str, tuple[float, float]] = {
    "hip-hop": (0.54, 0.62),
    "lo-fi": (0.56, 0.66),
    "funk": (0.52, 0.58),
    "breakbeat": (0.50, 0.54),
    "house": (0.50, 0.54),
}

# GM drum kits (bank 128 presets in TimGM6mb: 0 Standard, 8 Room, 16 Power, 24 Electronic,
# 25 TR-808, 32 Jazz, 40 Brush) that suit each style.
DRUM_KITS: dict[str, tuple[int, ...]] = {
    "house": (24, 25, 0),
    "techno": (24, 25),
    "hip-hop": (0, 8),
    "trap": (25,),
    "drum-and-bass": (0, 8, 24),
    "funk": (0, 8, 32),
    "rock": (16, 0, 8),
    "reggaeton": (25, 24),
    "breakbeat": (0, 8, 16),
    "lo-fi": (40, 32, 8),
}

# Which styles each tonal family plays, and the GM programs it uses in each.
FAMILY_PROGRAMS: dict[str, dict[str, tuple[int, ...]]] = {
    "bass": {
        "house": (38, 39, 33), "techno": (38, 39), "trance": (38, 39), "hip-hop": (33, 32, 34),
        "lo-fi": (32, 33, 35), "trap": (38, 39), "drum-and-bass": (38, 39), "funk": (36, 37, 33),
        "rock": (34, 33), "pop": (33, 34, 38), "reggaeton": (38, 33),
    },
    "keys": {
        "house": (0, 1, 4), "hip-hop": (4, 5, 0), "lo-fi": (4, 5, 0), "funk": (7, 4, 5),
        "pop": (0, 1, 2, 4), "cinematic": (0, 1), "trap": (0, 1, 5),
    },
    "pad": {
        "ambient": (88, 89, 91, 92, 94, 95), "cinematic": (89, 91, 92, 94, 95),
        "trance": (90, 95, 88, 94), "techno": (90, 93, 95, 89), "house": (89, 90, 88),
        "lo-fi": (89, 94, 92), "drum-and-bass": (88, 89, 94, 95),
    },
    "lead": {
        "trance": (81, 86, 80, 87), "house": (80, 81, 87), "techno": (81, 80, 84),
        "pop": (80, 81, 82, 83, 85), "trap": (80, 81, 82, 83), "drum-and-bass": (81, 86, 87),
        "hip-hop": (80, 82, 83),
    },
    "arp": {
        "trance": (81, 80, 86, 90), "techno": (81, 80, 87), "house": (80, 81, 90),
        "ambient": (8, 10, 11, 98), "cinematic": (8, 10, 98, 81), "pop": (80, 81, 90, 11),
    },
    "pluck": {
        "house": (45, 108, 12), "trance": (45, 108), "pop": (45, 46, 108, 12),
        "lo-fi": (108, 46, 12, 107), "cinematic": (45, 46), "ambient": (46, 108, 107),
        "trap": (45, 46, 107, 108), "reggaeton": (45, 12, 108),
    },
    "strings": {
        "cinematic": (48, 49, 44, 50), "pop": (48, 49, 50, 51), "ambient": (49, 50, 51),
        "hip-hop": (48, 49, 44), "trap": (48, 44, 49),
    },
    "guitar": {
        "rock": (29, 30), "funk": (28, 27, 26), "pop": (25, 24, 27), "lo-fi": (26, 24, 27),
        "hip-hop": (26, 27, 24), "reggaeton": (24, 25),
    },
}  # fmt: skip

# How often each style is in a minor key; steers a tonal item's style from its (balanced) key.
MINOR_AFFINITY: dict[str, float] = {
    "house": 0.5, "techno": 0.8, "trance": 0.7, "hip-hop": 0.65, "lo-fi": 0.5, "trap": 0.85,
    "drum-and-bass": 0.75, "funk": 0.35, "rock": 0.45, "pop": 0.3, "reggaeton": 0.6,
    "cinematic": 0.7, "ambient": 0.5,
}  # fmt: skip

# Moods that fit each style.
GENRE_MOODS: dict[str, tuple[str, ...]] = {
    "house": ("groovy", "energetic", "warm", "uplifting", "bright", "hypnotic"),
    "techno": ("dark", "hypnotic", "driving", "energetic", "gritty", "tense"),
    "trance": ("uplifting", "energetic", "dreamy", "bright", "driving", "melancholic"),
    "hip-hop": ("groovy", "gritty", "chill", "dark", "warm", "nostalgic"),
    "lo-fi": ("chill", "warm", "nostalgic", "melancholic", "dreamy"),
    "trap": ("dark", "aggressive", "tense", "gritty", "energetic"),
    "drum-and-bass": ("energetic", "driving", "dark", "aggressive", "tense", "dreamy"),
    "funk": ("groovy", "playful", "warm", "energetic", "bright"),
    "rock": ("energetic", "aggressive", "driving", "gritty", "bright"),
    "reggaeton": ("groovy", "energetic", "playful", "warm", "bright"),
    "breakbeat": ("energetic", "groovy", "gritty", "driving", "playful"),
    "pop": ("bright", "uplifting", "playful", "warm", "energetic", "melancholic"),
    "cinematic": ("tense", "dark", "melancholic", "dreamy", "uplifting"),
    "ambient": ("dreamy", "chill", "warm", "melancholic", "dark"),
}

# Moods a key's mode makes more (x2) or less (x0.4) likely.
MODE_MOODS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "minor": (frozenset({"dark", "melancholic", "tense"}), frozenset({"bright", "playful"})),
    "major": (frozenset({"bright", "uplifting", "warm", "playful"}), frozenset({"dark", "tense"})),
}


@dataclass(frozen=True)
class LicenceHolder:
    """A fictional rights holder: its name, licence-id scheme and attribution line."""

    name: str
    id_format: str
    attribution: str


LICENCE_HOLDERS: tuple[LicenceHolder, ...] = (
    LicenceHolder("Northside Records", "LIC-NSR-2026-{item:04d}",
                  "Northside Records — Demo Grooves Vol. 1 (CC-style demo licence)"),
    LicenceHolder("Lumen & Loop Audio", "LLA/2026/{item:05d}",
                  "Lumen & Loop Audio — Synth Essentials (royalty-free demo licence)"),
    LicenceHolder("Harbour Lane Music Library", "HLML-DEMO-{item:04d}",
                  "Harbour Lane Music Library — Session Players Sampler (library demo licence)"),
    LicenceHolder("Kestrel Sound Works", "KSW:demo:{item:04d}",
                  "Kestrel Sound Works — Studio Loops Collection (demo licence v2)"),
    LicenceHolder("Mira Okafor Productions", "MOP-{item:04d}-A",
                  "Mira Okafor Productions — Producer Kit (artist demo licence)"),
)  # fmt: skip

# Allowed-use tiers and their exact shares of the catalog.
ALLOWED_USES_SHARES: tuple[tuple[tuple[str, ...], float], ...] = (
    (("search", "generation-seed", "commercial"), 0.7),
    (("search", "generation-seed"), 0.2),
    (("search",), 0.1),
)

SOUNDFONT_LICENCE_NOTE = (
    "TimGM6mb.sf2 by Tim Brechbill, General MIDI SoundFont, GPL-2.0; shipped inside the "
    "pretty_midi package (as in Debian's timgm6mb-soundfont)."
)
CUSTOM_SOUNDFONT_NOTE = "User-supplied SoundFont; its licence is not recorded here."

# Independent random streams, so a change to one kind of choice never reshuffles another.
_PLAN_STREAM, _LICENCE_STREAM, _COMPOSE_STREAM, _CAPTION_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class Licence:
    """The licence attached to both files of an item."""

    id: str
    holder: str
    allowed_uses: tuple[str, ...]
    attribution: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "holder": self.holder,
            "allowed_uses": list(self.allowed_uses),
            "attribution": self.attribution,
        }


@dataclass
class DemoCatalogSummary:
    """What :func:`build_demo_catalog` wrote."""

    out: Path
    count: int
    files_written: int
    counts_by_instrument: dict[str, int]
    counts_by_genre: dict[str, int]
    seconds: float


def stream(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for a (seed, stream, index...) address."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=keys))


def balanced_cycle(options: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    """``n`` draws that use every option equally often (±1), in shuffled rounds.

    Examples
    --------
    >>> sorted(Counter(balanced_cycle("abc", 7, np.random.default_rng(0))).values())
    [2, 2, 3]
    """
    draws: list[Any] = []
    while len(draws) < n:
        draws += [options[i] for i in rng.permutation(len(options))]
    return draws[:n]


def family_counts(count: int) -> dict[str, int]:
    """How many items each family gets: ``DRUM_SHARE`` drums, the rest split evenly.

    Examples
    --------
    >>> family_counts(480)["drums"], family_counts(480)["bass"]
    (168, 39)
    """
    drums = round(DRUM_SHARE * count)
    tonal, extra = divmod(count - drums, len(TONAL_FAMILIES))
    counts = {"drums": drums}
    counts.update({family: tonal + (i < extra) for i, family in enumerate(TONAL_FAMILIES)})
    return counts


def choose_tempo(genre: str, rng: np.random.Generator) -> float:
    """A whole-number BPM from the style's realistic range."""
    ranges = TEMPO_RANGES[genre]
    low, high = ranges[int(rng.integers(len(ranges)))]
    return float(rng.integers(low, high + 1))


def choose_swing(genre: str, rng: np.random.Generator) -> float:
    """The style's swing ratio (0.5 = straight), to two decimals."""
    if genre not in SWING_RANGES:
        return 0.5
    return round(float(rng.uniform(*SWING_RANGES[genre])), 2)


def choose_moods(genre: str, key: Key | None, rng: np.random.Generator) -> tuple[str, ...]:
    """One to three mood tags that fit the style (and the key's mode), in vocabulary order."""
    options = GENRE_MOODS[genre]
    weights = np.ones(len(options))
    if key is not None:
        more, fewer = MODE_MOODS[key.mode]
        weights *= [2.0 if m in more else 0.4 if m in fewer else 1.0 for m in options]
    n = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
    chosen = rng.choice(
        len(options), size=min(n, len(options)), replace=False, p=weights / weights.sum()
    )
    return tuple(sorted((options[i] for i in chosen), key=MOODS.index))


def choose_tonal_genre(
    family: str, key: Key, used: Counter[tuple[str, str]], rng: np.random.Generator
) -> str:
    """A style for a tonal item that suits the key's mode, favouring the family's rarer styles."""
    genres = tuple(FAMILY_PROGRAMS[family])
    fit = np.array(
        [MINOR_AFFINITY[g] if key.mode == "minor" else 1.0 - MINOR_AFFINITY[g] for g in genres]
    )
    weights = fit / (1.0 + np.array([used[(family, g)] for g in genres]))
    return genres[int(rng.choice(len(genres), p=weights / weights.sum()))]


def plan_items(count: int, seed: int) -> list[ItemSpec]:
    """The catalog plan: one :class:`ItemSpec` per item, deterministic in ``(count, seed)``.

    Families follow :func:`family_counts`; drum items rotate through every drum style, tonal
    items through all 24 keys, each equally often (±1); styles, tempos, bar counts, programs,
    kits, swing and moods are drawn to suit one another.

    Examples
    --------
    >>> plan = plan_items(480, seed=0)
    >>> len(plan), sum(spec.is_drum for spec in plan)
    (480, 168)
    """
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    rng = stream(seed, _PLAN_STREAM)
    families = [family for family, n in family_counts(count).items() for _ in range(n)]
    families = [families[i] for i in rng.permutation(len(families))]
    styles = iter(balanced_cycle(tuple(DRUM_STYLES), families.count("drums"), rng))
    keys = iter(balanced_cycle(ALL_KEYS, count - families.count("drums"), rng))
    used: Counter[tuple[str, str]] = Counter()
    plan = []
    for index, family in enumerate(families):
        if family == "drums":
            genre, key = next(styles), None
            program, kit = None, int(rng.choice(DRUM_KITS[genre]))
        else:
            key = next(keys)
            genre = choose_tonal_genre(family, key, used, rng)
            program, kit = int(rng.choice(FAMILY_PROGRAMS[family][genre])), None
        used[(family, genre)] += 1
        plan.append(
            ItemSpec(
                index=index,
                instrument=family,
                genre=genre,
                bpm=choose_tempo(genre, rng),
                bars=int(rng.choice(BAR_CHOICES, p=BAR_WEIGHTS)),
                key=key,
                program=program,
                drum_kit=kit,
                swing=choose_swing(genre, rng),
                tags=choose_moods(genre, key, rng),
            )
        )
    return plan


def plan_licences(count: int, seed: int) -> list[Licence]:
    """One licence per item: a holder, and allowed uses in exact 70/20/10 shares."""
    rng = stream(seed, _LICENCE_STREAM)
    tiers: list[tuple[str, ...]] = []
    for uses, share in ALLOWED_USES_SHARES[:-1]:
        tiers += [uses] * round(share * count)
    tiers += [ALLOWED_USES_SHARES[-1][0]] * (count - len(tiers))
    tiers = [tiers[i] for i in rng.permutation(count)]
    licences = []
    for item, uses in enumerate(tiers):
        holder = LICENCE_HOLDERS[int(rng.integers(len(LICENCE_HOLDERS)))]
        licences.append(
            Licence(holder.id_format.format(item=item), holder.name, uses, holder.attribution)
        )
    return licences


def item_name(spec: ItemSpec) -> str:
    """File stem of an item: ``0042_house_drums_124bpm``, ``0137_bass_f-sharp-minor_96bpm``."""
    if spec.key is None:
        return f"{spec.index:04d}_{spec.genre}_drums_{spec.bpm:g}bpm"
    key = spec.key.name.lower().replace("#", "-sharp").replace(" ", "-")
    return f"{spec.index:04d}_{spec.instrument}_{key}_{spec.bpm:g}bpm"


def stem_path(spec: ItemSpec) -> str:
    """Catalog-relative path of the item's audio stem."""
    return f"stems/{spec.instrument}/{item_name(spec)}.wav"


def midi_path(spec: ItemSpec) -> str:
    """Catalog-relative path of the item's MIDI pattern."""
    return f"midi/{spec.instrument}/{item_name(spec)}.mid"


def item_meta(spec: ItemSpec, kind: str, seed: int) -> dict[str, Any]:
    """Ground-truth metadata of one file of an item, with its caption."""
    meta: dict[str, Any] = {
        "item": f"{spec.index:04d}",
        "kind": kind,
        "instrument": spec.instrument,
        "program": spec.program,
        "is_drum": spec.is_drum,
        "genre": spec.genre,
        "bpm": float(spec.bpm),
        "key": spec.key.name if spec.key else None,
        "bars": spec.bars,
        "tags": list(spec.tags),
    }
    # Same stream for both files of an item, so the stem and its MIDI share one caption.
    meta["caption"] = caption_for(meta, stream(seed, _CAPTION_STREAM, spec.index))
    return meta


def manifest_rows(spec: ItemSpec, licence: Licence, seed: int) -> list[dict[str, Any]]:
    """The two licences.jsonl rows of an item: its stem, then its MIDI file."""
    return [
        {"path": path, "licence": licence.as_json(), "meta": item_meta(spec, kind, seed)}
        for path, kind in ((stem_path(spec), "stem"), (midi_path(spec), "midi"))
    ]


def write_item(spec: ItemSpec, *, out: Path, seed: int, soundfont: Path) -> None:
    """Compose one item, write its .mid, render and write its .wav (runs in worker processes)."""
    midi = compose_item(spec, stream(seed, _COMPOSE_STREAM, spec.index))
    data = midi_bytes(midi)
    for relative in (midi_path(spec), stem_path(spec)):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
    (out / midi_path(spec)).write_bytes(data)
    audio = render_loop(
        data, bars=spec.bars, bpm=spec.bpm, sr=SAMPLE_RATE, soundfont=soundfont, peak_dbfs=PEAK_DBFS
    )
    sf.write(out / stem_path(spec), audio.T, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def catalog_description(
    plan: Sequence[ItemSpec], licences: Sequence[Licence], *, seed: int, soundfont: Path
) -> dict[str, Any]:
    """The catalog.json document: how it was made and what is in it (no paths or times, so it
    is identical wherever and whenever the catalog is rebuilt)."""
    default_font = soundfont.resolve() == DEFAULT_SOUNDFONT.resolve()

    def tally(values: Sequence[str]) -> dict[str, int]:
        return dict(sorted(Counter(values).items()))

    return {
        "generator": "audiorag.audiorag.democatalog",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "count": len(plan),
        "audio": {
            "sample_rate": SAMPLE_RATE,
            "channels": 2,
            "format": "WAV PCM 16-bit",
            "peak_dbfs": PEAK_DBFS,
        },
        "counts": {
            "instrument": tally([spec.instrument for spec in plan]),
            "drum_style": tally([spec.genre for spec in plan if spec.is_drum]),
            "genre": tally([spec.genre for spec in plan]),
            "key": tally([spec.key.name for spec in plan if spec.key]),
            "bars": tally([str(spec.bars) for spec in plan]),
            "licence_holder": tally([licence.holder for licence in licences]),
            "allowed_uses": tally(["+".join(licence.allowed_uses) for licence in licences]),
        },
        "soundfont": {
            "file": soundfont.name,
            "sha256": file_sha256(soundfont),
            "licence": SOUNDFONT_LICENCE_NOTE if default_font else CUSTOM_SOUNDFONT_NOTE,
        },
        "files": {"stems": len(plan), "midi": len(plan), "manifest": "licences.jsonl"},
    }


def remove_previous_build(out: Path) -> None:
    """Delete the files a previous demo build listed in ``out/licences.jsonl`` (and only those),
    so a rebuild with a smaller count leaves no stale items behind."""
    manifest = out / "licences.jsonl"
    if not manifest.is_file():
        return
    for line in manifest.read_text(encoding="utf-8").splitlines():
        try:
            path = str(json.loads(line).get("path", ""))
        except (json.JSONDecodeError, AttributeError):
            continue  # not a row we wrote: leave whatever it names alone
        target = (out / path).resolve()
        if path and target.is_relative_to(out.resolve()) and target.is_file():
            target.unlink()


def build_demo_catalog(
    out: Path,
    *,
    count: int = 480,
    seed: int = 0,
    soundfont: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> DemoCatalogSummary:
    """Compose, render and write the demo catalog to ``out``.

    Parameters
    ----------
    out : Path
        Output folder (created). Files of an earlier demo build there are replaced.
    count : int
        Number of items; each item is one .wav and one .mid.
    seed : int
        Same ``(count, seed)``, same bytes.
    soundfont : Path, optional
        The .sf2 to render with; defaults to TimGM6mb from pretty_midi.
    progress : callable, optional
        Called as ``progress(done, total)`` after each item (and once with 0 at the start).
    workers : int, optional
        Rendering processes; defaults to the CPU count. 1 renders in this process. The output
        does not depend on it.

    Examples
    --------
    >>> import tempfile
    >>> summary = build_demo_catalog(Path(tempfile.mkdtemp()), count=2, workers=1)
    >>> summary.files_written
    6
    """
    started = time.perf_counter()
    out = Path(out)
    font = Path(soundfont) if soundfont is not None else DEFAULT_SOUNDFONT
    if not font.is_file():
        raise FileNotFoundError(f"SoundFont not found: {font}")
    plan = plan_items(count, seed)
    licences = plan_licences(count, seed)
    out.mkdir(parents=True, exist_ok=True)
    remove_previous_build(out)

    report = progress or (lambda done, total: None)
    report(0, count)
    render = partial(write_item, out=out, seed=seed, soundfont=font)
    processes = min(workers or os.cpu_count() or 1, max(count, 1))
    if processes <= 1:
        for done, spec in enumerate(plan, start=1):
            render(spec)
            report(done, count)
    else:
        # spawn, not fork: the caller may hold threads (a progress bar, torch) that fork would copy
        # mid-lock.
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            for done, _ in enumerate(pool.imap_unordered(render, plan), start=1):
                report(done, count)

    with (out / "licences.jsonl").open("w", encoding="utf-8", newline="\n") as manifest:
        for spec, licence in zip(plan, licences, strict=True):
            for row in manifest_rows(spec, licence, seed):
                manifest.write(json.dumps(row, ensure_ascii=False) + "\n")
    description = catalog_description(plan, licences, seed=seed, soundfont=font)
    (out / "catalog.json").write_text(
        json.dumps(description, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )

    return DemoCatalogSummary(
        out=out,
        count=count,
        files_written=2 * count + 2,
        counts_by_instrument=description["counts"]["instrument"],
        counts_by_genre=description["counts"]["genre"],
        seconds=time.perf_counter() - started,
    )
