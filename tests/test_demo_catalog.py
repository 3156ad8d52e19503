"""The synthetic demo catalog: plan coverage, determinism, manifest, exact loops, keys, captions."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from audiorag.democatalog.captions import (
    CAPTION_TEMPLATES,
    INSTRUMENT_SYNONYMS,
    PROGRAM_DESCRIPTIONS,
    STYLE_SYNONYMS,
    caption_for,
)
from audiorag.democatalog.catalog import (
    FAMILIES,
    FAMILY_PROGRAMS,
    LICENCE_HOLDERS,
    MOODS,
    TEMPO_RANGES,
    build_demo_catalog,
    plan_items,
    plan_licences,
    stream,
)
from audiorag.democatalog.compose import (
    ALL_KEYS,
    BASS_RHYTHMS,
    DRUM_STYLES,
    HARMONIC_MINOR_SCALE,
    Key,
    compose_item,
)
from tests.conftest import DEMO_COUNT

DEMO_SEED = 7  # the seed of the shared demo_catalog fixture

META_FIELDS = [
    "item",
    "kind",
    "instrument",
    "program",
    "is_drum",
    "genre",
    "bpm",
    "key",
    "bars",
    "tags",
    "caption",
]

# General MIDI program ranges each family may use.
GM_RANGES = {
    "bass": range(32, 40),
    "keys": range(0, 8),
    "pad": range(88, 96),
    "lead": range(80, 88),
    "strings": range(40, 52),
    "guitar": range(24, 32),
}

# Krumhansl-Kessler key profiles (C major / C minor), for key estimation from pitch classes.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def best_key(histogram: np.ndarray) -> str:
    """The key whose profile correlates best with a pitch-class histogram."""

    def fit(key):
        profile = MAJOR_PROFILE if key.mode == "major" else MINOR_PROFILE
        return np.corrcoef(histogram, np.roll(profile, key.tonic))[0, 1]

    return max(ALL_KEYS, key=fit).name


def pitch_class_durations(midi: pretty_midi.PrettyMIDI) -> np.ndarray:
    histogram = np.zeros(12)
    for note in (n for track in midi.instruments for n in track.notes):
        histogram[note.pitch % 12] += note.end - note.start
    return histogram


def read_manifest(folder: Path) -> list[dict]:
    lines = (folder / "licences.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def full_plan():
    return plan_items(480, seed=0)


# ---------------------------------------------------------------------------------------------
# The plan (no rendering)


def test_default_plan_covers_every_style_family_and_key_evenly(full_plan):
    families = Counter(spec.instrument for spec in full_plan)
    assert set(families) == set(FAMILIES) and len(FAMILIES) == 9
    assert families["drums"] == 168  # 35 %
    assert {families[f] for f in FAMILIES[1:]} == {39}

    styles = Counter(spec.genre for spec in full_plan if spec.is_drum)
    assert len(DRUM_STYLES) >= 8
    assert set(styles) == set(DRUM_STYLES)
    assert {
        "house",
        "techno",
        "hip-hop",
        "trap",
        "drum-and-bass",
        "funk",
        "rock",
        "reggaeton",
    } <= set(styles)
    assert max(styles.values()) - min(styles.values()) <= 1

    keys = Counter(spec.key.name for spec in full_plan if spec.key is not None)
    assert len(keys) == 24 and max(keys.values()) - min(keys.values()) <= 1
    assert all(spec.key is None for spec in full_plan if spec.is_drum)


def test_default_plan_tempos_bars_programs_and_moods_are_realistic(full_plan):
    for spec in full_plan:
        assert 70 <= spec.bpm <= 175 and spec.bpm == int(spec.bpm)
        assert any(low <= spec.bpm <= high for low, high in TEMPO_RANGES[spec.genre]), spec
        assert spec.bars in (2, 4, 8)
        assert 1 <= len(spec.tags) <= 3 and set(spec.tags) <= set(MOODS)
        assert len(set(spec.tags)) == len(spec.tags)
        if spec.is_drum:
            assert spec.program is None and spec.drum_kit is not None
        else:
            assert spec.drum_kit is None
            assert spec.program in FAMILY_PROGRAMS[spec.instrument][spec.genre]
            assert spec.program in GM_RANGES.get(spec.instrument, range(128))
    drum_tempos = {
        style: [spec.bpm for spec in full_plan if spec.genre == style and spec.is_drum]
        for style in ("drum-and-bass", "hip-hop", "house")
    }
    assert min(drum_tempos["drum-and-bass"]) >= 160
    assert max(drum_tempos["hip-hop"]) <= 100
    assert all(118 <= bpm <= 128 for bpm in drum_tempos["house"])
    swung = {spec.genre for spec in full_plan if spec.swing > 0.5}
    assert {"funk", "hip-hop", "lo-fi"} <= swung


def test_plan_is_deterministic_in_count_and_seed(full_plan):
    assert plan_items(480, seed=0) == full_plan
    assert plan_items(480, seed=1) != full_plan
    assert plan_items(0, seed=0) == []


def test_licences_split_allowed_uses_70_20_10_over_several_holders():
    licences = plan_licences(480, seed=0)
    uses = Counter(licence.allowed_uses for licence in licences)
    assert uses[("search", "generation-seed", "commercial")] == 336
    assert uses[("search", "generation-seed")] == 96
    assert uses[("search",)] == 48
    assert 4 <= len({licence.holder for licence in licences}) == len(LICENCE_HOLDERS) <= 6
    assert len({licence.id for licence in licences}) == 480
    assert plan_licences(480, seed=0) == licences


def test_tonal_patterns_stay_in_key_and_chords_establish_it(full_plan):
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for spec in full_plan:
        midi = compose_item(spec, stream(0, 2, spec.index))
        notes = [note for track in midi.instruments for note in track.notes]
        assert notes and max(note.end for note in notes) <= spec.seconds + 1e-6
        assert min(note.start for note in notes) >= 0.0
        assert midi.instruments[0].is_drum == spec.is_drum
        if spec.key is None:
            continue
        # Scale tones only (minor keys may raise the 7th: the harmonic-minor dominant).
        allowed = set(spec.key.scale)
        if spec.key.mode == "minor":
            allowed |= {(spec.key.tonic + HARMONIC_MINOR_SCALE[6]) % 12}
        assert {note.pitch % 12 for note in notes} <= allowed, spec
        if spec.instrument in ("keys", "pad", "strings"):
            totals[spec.instrument] += 1
            hits[spec.instrument] += best_key(pitch_class_durations(midi)) == spec.key.name
    # Chord parts name their key: almost always the best-correlating key profile.
    for family, total in totals.items():
        assert hits[family] / total >= 0.9, (family, hits[family], total)


def test_bass_rhythms_are_one_bar_long():
    assert all(len(pattern) == 16 for patterns in BASS_RHYTHMS.values() for pattern in patterns)


# ---------------------------------------------------------------------------------------------
# Captions


def test_every_family_and_style_has_synonyms():
    assert set(INSTRUMENT_SYNONYMS) == set(FAMILIES)
    styles = {genre for programs in FAMILY_PROGRAMS.values() for genre in programs} | set(
        DRUM_STYLES
    )
    assert styles <= set(STYLE_SYNONYMS)
    assert all(
        len(words) >= 3 for words in [*INSTRUMENT_SYNONYMS.values(), *STYLE_SYNONYMS.values()]
    )


def test_captions_vary_in_wording_but_keep_the_facts():
    meta = {
        "instrument": "keys",
        "program": 4,
        "genre": "lo-fi",
        "bpm": 82.0,
        "key": "F# minor",
        "bars": 4,
        "tags": ["chill", "nostalgic"],
    }
    captions = [caption_for(meta, np.random.default_rng(i)) for i in range(300)]
    assert len(set(captions)) > 250
    assert len({caption.split()[0] for caption in captions}) >= 8
    # Template shapes: literal words unique to a template show up across draws.
    assert any(" character" in c for c in captions)
    assert any(c.startswith("Loop of") for c in captions)
    assert any(re.search(r"\d-bar", c) for c in captions)
    assert len(CAPTION_TEMPLATES) >= 10
    for spelling in ("82 BPM", "82bpm", "82 bpm", "82 beats per minute"):
        assert any(spelling in c for c in captions), spelling
    for spelling in ("F# minor", "F#m", "F# min", "F sharp minor"):
        assert any(spelling in c for c in captions), spelling
    # Tempo and key are each left out now and then.
    assert any("82" not in c for c in captions)
    assert any("F#" not in c and "F sharp" not in c for c in captions)
    for caption in captions:
        assert not re.search(r"\d+ ?(BPM|bpm|beats)", caption) or "82" in caption
        assert re.search(r"\b(keys|piano|keyboard)", caption.lower()), caption


def test_plan_captions_name_the_instrument_and_the_true_tempo(full_plan):
    captions = []
    for spec in full_plan[:200]:
        meta = {
            "instrument": spec.instrument,
            "program": spec.program,
            "genre": spec.genre,
            "bpm": spec.bpm,
            "key": spec.key.name if spec.key else None,
            "bars": spec.bars,
            "tags": list(spec.tags),
        }
        caption = caption_for(meta, stream(0, 3, spec.index))
        captions.append(caption)
        names = (
            *INSTRUMENT_SYNONYMS[spec.instrument],
            *PROGRAM_DESCRIPTIONS.get(spec.instrument, {}).get(spec.program, ()),
        )
        assert any(name.lower() in caption.lower() for name in names), (spec.instrument, caption)
        for tempo in re.findall(r"(\d+) ?(?:BPM|bpm|beats per minute)", caption):
            assert float(tempo) == spec.bpm
        if spec.key is None:
            assert " minor" not in caption and " major" not in caption
    assert len(set(captions)) == len(captions)


# ---------------------------------------------------------------------------------------------
# A real (small) build: the shared demo_catalog fixture, plus rebuilds


def test_rebuild_is_byte_identical_whatever_the_worker_count(demo_catalog, tmp_path):
    rebuilt = build_demo_catalog(tmp_path / "again", count=DEMO_COUNT, seed=DEMO_SEED, workers=1)
    assert rebuilt.files_written == 2 * DEMO_COUNT + 2
    assert file_hashes(tmp_path / "again") == file_hashes(demo_catalog)


def test_another_seed_gives_other_files(demo_catalog, tmp_path):
    calls = []
    summary = build_demo_catalog(
        tmp_path / "other",
        count=4,
        seed=DEMO_SEED + 1,
        workers=1,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert summary.count == 4 and sum(summary.counts_by_instrument.values()) == 4
    assert summary.seconds > 0
    ours = set(file_hashes(demo_catalog).values())
    assert not ours & set(file_hashes(tmp_path / "other").values())


def test_every_file_has_exactly_one_manifest_row_with_a_full_licence(demo_catalog):
    rows = read_manifest(demo_catalog)
    on_disk = {
        path.relative_to(demo_catalog).as_posix()
        for folder in ("stems", "midi")
        for path in (demo_catalog / folder).rglob("*")
        if path.is_file()
    }
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == 2 * DEMO_COUNT
    assert set(paths) == on_disk

    for row in rows:
        assert list(row) == ["path", "licence", "meta"]
        licence, meta = row["licence"], row["meta"]
        assert list(licence) == ["id", "holder", "allowed_uses", "attribution"]
        assert licence["id"] and licence["holder"] and licence["attribution"]
        assert licence["allowed_uses"][0] == "search"
        assert set(licence["allowed_uses"]) <= {"search", "generation-seed", "commercial"}
        assert list(meta) == META_FIELDS
        assert meta["kind"] == ("stem" if row["path"].endswith(".wav") else "midi")
        assert row["path"].startswith(
            ("stems/" if meta["kind"] == "stem" else "midi/") + meta["instrument"] + "/"
        )
        assert re.fullmatch(r"[a-z0-9_.\-/]+", row["path"]), row["path"]
        assert meta["is_drum"] == (meta["instrument"] == "drums")
        assert (meta["key"] is None) == meta["is_drum"] == (meta["program"] is None)
        assert isinstance(meta["bpm"], float) and meta["caption"]

    # Both files of an item share its licence and metadata.
    by_item: dict[str, list[dict]] = {}
    for row in rows:
        by_item.setdefault(row["meta"]["item"], []).append(row)
    for stem, midi in by_item.values():
        assert stem["licence"] == midi["licence"]
        assert {**stem["meta"], "kind": None} == {**midi["meta"], "kind": None}


def test_stems_are_exact_44k_stereo_16bit_loops_without_clipping(demo_catalog):
    for row in read_manifest(demo_catalog):
        if row["meta"]["kind"] != "stem":
            continue
        meta, path = row["meta"], demo_catalog / row["path"]
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
        assert abs(info.frames - meta["bars"] * 240 / meta["bpm"] * 44100) <= 1, path.name
        audio, _ = sf.read(path, dtype="float32")
        peak = np.abs(audio).max()
        assert 0.85 < peak < 0.9, path.name  # normalised to -1 dBFS
        assert np.sqrt(np.mean(audio**2)) > 0.01, path.name


def test_midi_files_carry_tempo_key_and_program(demo_catalog):
    for row in read_manifest(demo_catalog):
        if row["meta"]["kind"] != "midi":
            continue
        meta = row["meta"]
        midi = pretty_midi.PrettyMIDI(str(demo_catalog / row["path"]))
        assert midi.get_tempo_changes()[1][0] == pytest.approx(meta["bpm"], abs=1e-3)
        assert midi.get_end_time() <= meta["bars"] * 240 / meta["bpm"] + 1e-3
        [track] = midi.instruments
        assert track.is_drum == meta["is_drum"]
        if meta["key"] is None:
            assert midi.key_signature_changes == []
        else:
            assert track.program == meta["program"]
            [signature] = midi.key_signature_changes
            assert signature.key_number == Key.parse(meta["key"]).key_number


def test_catalog_json_records_how_the_catalog_was_made(demo_catalog):
    description = json.loads((demo_catalog / "catalog.json").read_text(encoding="utf-8"))
    assert description["seed"] == DEMO_SEED and description["count"] == DEMO_COUNT
    assert description["version"]
    assert sum(description["counts"]["instrument"].values()) == DEMO_COUNT
    assert description["soundfont"]["file"] == "TimGM6mb.sf2"
    assert "GPL" in description["soundfont"]["licence"]
    assert len(description["soundfont"]["sha256"]) == 64
