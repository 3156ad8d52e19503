"""Indexing end to end over a real demo catalog, the Edge store and a tiny real CLAP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio.decode import Limits
from index.ingest import Indexer
from index.manifest import load_manifest
from index.store import Filter, Match, open_store, point_id
from tests.conftest import DEMO_COUNT


def _copy(demo_catalog: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo_catalog, tmp_path / "catalog"))


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "licences.jsonl").read_text().splitlines()]


def _write_rows(folder: Path, rows: list[dict]) -> None:
    (folder / "licences.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def _licence(path: str) -> dict:
    return {"path": path, "licence": {"id": "L-X", "holder": "Test", "allowed_uses": ["search"]}}


def _index(folder: Path, store, embedder, *, prune: bool = False, workers: int = 0, **kwargs):
    indexer = Indexer(store, embedder, workers=workers, batch_size=4, **kwargs)
    manifest = load_manifest(folder / "licences.jsonl")
    return indexer.run(folder, catalog="demo", manifest=manifest, prune=prune)


@pytest.fixture
def store(tmp_path, embedder):
    s = open_store(embedder.embedder, path=tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def catalog(demo_catalog, tmp_path) -> Path:
    return _copy(demo_catalog, tmp_path)


def test_index_demo_catalog_with_hostile_files(catalog, store, embedder):
    stem = next(iter(sorted((catalog / "stems").rglob("*.wav"))))
    data = stem.read_bytes()
    (catalog / "bad").mkdir()
    (catalog / "bad" / "empty.wav").write_bytes(b"")
    (catalog / "bad" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 50)
    (catalog / "bad" / "truncated.wav").write_bytes(data[: len(data) // 3])
    (catalog / "bad" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (catalog / "bad" / "session.logicx").write_text("not audio")
    rng = np.random.default_rng(0)
    sf.write(catalog / "bad" / "huge.wav", rng.standard_normal((44_100 * 40, 2)) * 0.1, 44_100)
    sf.write(catalog / "bad" / "unlicensed.wav", rng.standard_normal((44_100, 2)) * 0.1, 44_100)
    shutil.copy(stem, catalog / "bad" / "copy_of_first.wav")
    rows = _rows(catalog) + [
        _licence(f"bad/{n}")
        for n in (
            "empty.wav",
            "corrupt.wav",
            "truncated.wav",
            "broken.mid",
            "huge.wav",
            "session.logicx",
            "copy_of_first.wav",
            "missing.wav",  # listed, but never written
        )
    ]
    _write_rows(catalog, rows)

    report = _index(catalog, store, embedder, limits=Limits(max_seconds=30), workers=2)

    reasons = {p.path: p.reason for p in report.skipped + report.failed}
    assert "empty file" in reasons["bad/empty.wav"]
    assert "not decodable" in reasons["bad/corrupt.wav"]
    assert "truncated" in reasons["bad/truncated.wav"]
    assert "not a readable MIDI" in reasons["bad/broken.mid"]
    assert "too long" in reasons["bad/huge.wav"]
    assert "unsupported file type" in reasons["bad/session.logicx"]
    assert "no licence entry" in reasons["bad/unlicensed.wav"]
    assert "duplicate content" in reasons.get("bad/copy_of_first.wav", "") + reasons.get(
        stem.relative_to(catalog).as_posix(), ""
    )
    assert len(report.indexed) == 2 * DEMO_COUNT
    assert store.count() == 2 * DEMO_COUNT
    assert any("bad/missing.wav: listed in the manifest" in e for e in report.manifest_errors)
    json.dumps(report.to_json())  # the report is plain JSON

    point = store.retrieve([point_id("demo", _sha(stem))], with_vectors=True)[0]
    payload = point.payload
    for name in (
        "catalog",
        "kind",
        "path",
        "sha256",
        "duration_s",
        "bpm",
        "key",
        "instrument",
        "genre",
        "tags",
        "caption",
        "licence",
        "analysis_version",
        "embedder",
    ):
        assert name in payload, name
    assert set(payload["licence"]) >= {"id", "holder", "allowed_uses", "attribution"}
    assert payload["embedder"] == embedder.embedder.id
    assert set(point.vectors) == {"audio", "text", "timbre"}
    bpm = report.accuracy["bpm_drum_loops"]
    key = report.accuracy["key_tonal_stems"]
    assert bpm["items"] > 0 and key["items"] > 0
    assert 0 <= bpm["rate"] <= 1 and 0 <= key["rate_exact_or_relative"] <= 1
    midi_points = list(store.scroll(Filter(must=(Match("kind", "midi"),))))
    assert len(midi_points) == DEMO_COUNT
    assert all(p.payload["analysis"]["note_count"] > 0 for p in midi_points)


def test_reindex_is_idempotent_and_changes_are_picked_up(catalog, store, embedder):
    first = _index(catalog, store, embedder)
    ids = {p.id for p in store.scroll()}
    again = _index(catalog, store, embedder)
    assert again.counts["unchanged"] == len(first.indexed) and not again.indexed
    assert {p.id for p in store.scroll()} == ids

    # A changed file replaces its point; a licence change refreshes the payload only.
    stems = sorted((catalog / "stems").rglob("*.wav"))
    changed, relicensed, unlicensed = stems[0], stems[1], stems[2]
    old_id = point_id("demo", _sha(changed))
    audio, sr = sf.read(changed)
    sf.write(changed, audio[::-1].copy(), sr)
    rows = _rows(catalog)
    for row in rows:
        if row["path"] == relicensed.relative_to(catalog).as_posix():
            row["licence"]["allowed_uses"] = ["search"]
    rows = [r for r in rows if r["path"] != unlicensed.relative_to(catalog).as_posix()]
    _write_rows(catalog, rows)
    before = store.retrieve([point_id("demo", _sha(relicensed))], with_vectors=True)[0]

    report = _index(catalog, store, embedder)

    assert report.indexed == [changed.relative_to(catalog).as_posix()]
    assert report.updated == [relicensed.relative_to(catalog).as_posix()]
    removed = {p.path: p.reason for p in report.removed}
    assert "replaced" in removed[changed.relative_to(catalog).as_posix()]
    assert "licence" in removed[unlicensed.relative_to(catalog).as_posix()]
    assert not store.retrieve([old_id])
    after = store.retrieve([before.id], with_vectors=True)[0]
    assert after.payload["licence"]["allowed_uses"] == ["search"]
    # same vectors (the engine re-normalises cosine vectors on upsert: equal up to rounding)
    np.testing.assert_allclose(after.vectors["audio"], before.vectors["audio"], atol=1e-6)
    assert store.count() == len(ids) - 1


def test_prune_removes_points_of_deleted_files(catalog, store, embedder):
    _index(catalog, store, embedder)
    gone = sorted((catalog / "midi").rglob("*.mid"))[0]
    gone.unlink()
    kept = _index(catalog, store, embedder)
    assert not kept.removed  # without --prune nothing is deleted
    pruned = _index(catalog, store, embedder, prune=True)
    assert [p.path for p in pruned.removed] == [gone.relative_to(catalog).as_posix()]
    assert store.count() == 2 * DEMO_COUNT - 1


def _sha(path: Path) -> str:
    from index.ingest import file_sha256

    return file_sha256(path)
