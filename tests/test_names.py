"""What file names say (index.names), and that a plain sample folder is indexed by them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from index.ingest import Indexer
from index.manifest import load_manifest
from index.names import NameLabel, name_label
from index.store import open_store
from rag.search import SearchRequest, search


@pytest.mark.parametrize(
    ("path", "family", "sound"),
    [
        ("Drums/Kicks/BD_Hard_03.wav", "drums", "kick"),
        ("808 Kick.wav", "drums", "kick"),
        ("one shots/Bass Drum 2.flac", "drums", "kick"),
        ("SD_Tight-01.wav", "drums", "snare"),
        ("HiHat Closed 4.wav", "drums", "hi-hat"),
        ("hats/OHH_long.wav", "drums", "hi-hat"),
        ("drum_cymbal_closed.flac", "drums", "hi-hat"),
        ("crash_16in.ogg", "drums", "cymbal"),
        ("Percussion/Shaker 1.wav", "drums", "percussion"),
        ("Toms/FloorTom.wav", "drums", "tom"),
        ("HandClap_02.wav", "drums", "clap"),
        ("Bass/Sub 808 C.wav", "bass", "bass"),
        ("Keys/Rhodes Chord Am.wav", "keys", "electric piano"),
        ("Strings/Cello Sustain C3.flac", "strings", "cello"),
        ("Gtr_Strat_Clean.wav", "guitar", "guitar"),
        ("brass/Tpt stab.wav", "brass", "trumpet"),
        ("Loops/Breakbeat 170.wav", "drums", "drums"),
    ],
)
def test_names_and_abbreviations_of_sample_libraries(path, family, sound):
    assert name_label(path) == NameLabel(family, sound)


def test_the_file_name_wins_over_its_folders():
    assert name_label("Bass/Kick under bass.wav") == NameLabel("drums", "kick")
    assert name_label("Drums/Snares/take 1.wav") == NameLabel("drums", "snare")
    assert name_label("Strings/untitled.wav") == NameLabel("strings", "strings")
    assert name_label("misc/untitled_01.wav") is None
    assert name_label("Downloads/0001.wav") is None


def test_what_users_type_for_a_family_names_it_and_only_it():
    """Words a user types for a family ("wind instrument", "sound effect") name it, and words
    that say which kind of instrument ("orchestral", "low-end", "kit") ask for no more than
    the sound, so such a prompt can search by how the sound sounds; a genre word still does."""
    from index.names import label_words, names_only_a_sound, words

    assert label_words(words("wind instrument")) == NameLabel("woodwind", "woodwind")
    assert label_words(words("sound effects")) == NameLabel("fx", "sound effect")
    for prompt in ("orchestral strings", "low-end bass", "drum kit", "wind instrument sample"):
        assert names_only_a_sound(prompt), prompt
    assert not names_only_a_sound("techno drum kit")
    assert not names_only_a_sound("cinematic orchestral strings")


def _hit(freq: float, noise: float, seed: int, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 44100)) / 44100
    tone = np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)
    return (0.5 * tone * np.exp(-t * 8)).astype(np.float32)


@pytest.fixture
def sample_folder(tmp_path) -> Path:
    """A user's folder: no metadata, only names (and licences, which the indexer requires)."""
    folder = tmp_path / "library"
    files = {
        "Drums/Kicks/BD_01.wav": _hit(55, 0.05, 1),
        "Drums/Kicks/BD_02.wav": _hit(60, 0.05, 2),
        "Drums/Snares/SD_01.wav": _hit(200, 0.8, 3),
        "Drums/Snares/SD_02.wav": _hit(220, 0.8, 4),
        "Strings/Cello C2.wav": _hit(65, 0.0, 5, seconds=0.9),
        "misc/0001.wav": _hit(440, 0.2, 6),
    }
    rows = []
    for relative, audio in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / relative, audio, 44100)
        rows.append({"path": relative, "licence": {"id": "L", "holder": "Me",
                                                   "allowed_uses": ["search"]}})  # fmt: skip
    (folder / "licences.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def _index(folder: Path, store, embedder):
    indexer = Indexer(store, embedder, workers=0, batch_size=4)
    return indexer.run(folder, catalog="lib", manifest=load_manifest(folder / "licences.jsonl"))


def test_a_plain_sample_folder_is_searchable_by_its_names(sample_folder, tmp_path, embedder):
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        report = _index(sample_folder, store, embedder)
        assert len(report.indexed) == 6
        payloads = {p.payload["path"]: p.payload for p in store.scroll()}
        kick = payloads["Drums/Kicks/BD_01.wav"]
        assert (kick["instrument"], kick["named_sound"]) == ("drums", "kick")
        assert kick["caption"] == "kick drums one-shot"
        assert payloads["Strings/Cello C2.wav"]["caption"] == "cello strings one-shot"
        assert payloads["misc/0001.wav"]["instrument"] is None
        assert "named_sound" not in payloads["misc/0001.wav"]
        # the instrument filter now works on a folder no manifest describes
        hits = search(store, embedder, SearchRequest(text="drum hit", instrument="drums", limit=10))
        assert {h.payload["path"] for h in hits} == {p for p in payloads if p.startswith("Drums")}
    finally:
        store.close()


def test_a_renamed_file_gets_a_new_caption_vector_and_keeps_its_audio_vector(
    sample_folder, tmp_path, embedder
):
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        _index(sample_folder, store, embedder)
        (before,) = [
            p for p in store.scroll(with_vectors=True) if p.payload["path"] == "misc/0001.wav"
        ]
        (sample_folder / "misc/0001.wav").rename(sample_folder / "misc/Clap 0001.wav")
        rows = (
            (sample_folder / "licences.jsonl")
            .read_text()
            .replace("misc/0001.wav", "misc/Clap 0001.wav")
        )
        (sample_folder / "licences.jsonl").write_text(rows)

        report = _index(sample_folder, store, embedder)

        assert report.updated == ["misc/Clap 0001.wav"] and not report.indexed
        (after,) = store.retrieve([before.id], with_vectors=True)
        assert after.payload["caption"] == "clap drums one-shot"
        np.testing.assert_allclose(after.vectors["audio"], before.vectors["audio"], atol=1e-6)
        expected = embedder.embed_text(["clap drums one-shot"])[0]
        expected = expected / np.linalg.norm(expected)
        np.testing.assert_allclose(after.vectors["text"], expected, atol=1e-5)
    finally:
        store.close()
