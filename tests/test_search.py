"""Search: filters (licence use, BPM with half/double time, key), fusion, query by example."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from index.analysis import relative_key
from index.ingest import Indexer
from index.manifest import load_manifest
from index.names import NameLabel, name_label
from index.store import open_store
from rag.search import (
    SearchError,
    SearchRequest,
    build_filter,
    fuse,
    reference_label,
    search,
)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, demo_catalog, embedder):
    store = open_store(embedder.embedder, path=tmp_path_factory.mktemp("search") / "store")
    Indexer(store, embedder, workers=0).run(
        demo_catalog, catalog="demo", manifest=load_manifest(demo_catalog / "licences.jsonl")
    )
    yield store
    store.close()


def _all(store):
    return [p.payload for p in store.scroll()]


def test_text_search_returns_licensed_hits_with_payload(indexed, embedder):
    hits = search(indexed, embedder, SearchRequest(text="punchy drums", limit=5))
    assert 0 < len(hits) <= 5
    assert all("search" in h.payload["licence"]["allowed_uses"] for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    first = hits[0].to_json()
    assert set(first) >= {"id", "score", "payload"}
    # "drums" is a word file names use: a third, lexical ranking joins (index.names)
    assert set(first["scores"]) <= {"text→audio", "text→caption", "text→name"}
    assert all(h.payload["instrument"] == "drums" for h in hits)
    json.dumps([h.to_json() for h in hits])


def test_a_prompt_naming_a_sound_ranks_the_items_named_so_first(indexed, embedder):
    """The tiny test model knows no words; the names alone put bass stems on top."""
    basses = sum(p["instrument"] == "bass" for p in _all(indexed))
    assert 0 < basses < 10
    hits = search(indexed, embedder, SearchRequest(text="bass", limit=10))
    found = [(h.payload["path"], h.payload.get("named_sound"), h.scores) for h in hits]
    assert all(h.payload["instrument"] == "bass" for h in hits[:basses]), found
    assert all("text→name" in h.scores for h in hits[:basses])
    assert all("text→timbre" in h.scores for h in hits)  # "bass" names only a sound
    unnamed = search(indexed, embedder, SearchRequest(text="something warm", limit=5))
    assert not any("text→name" in h.scores for h in unnamed)


def test_licence_use_filter_never_leaks(indexed, embedder):
    payloads = _all(indexed)
    seedable = {p["path"] for p in payloads if "generation-seed" in p["licence"]["allowed_uses"]}
    assert 0 < len(seedable) < len(payloads), "the demo catalog should mix licence uses"
    hits = search(
        indexed,
        embedder,
        SearchRequest(text="anything", uses=("search", "generation-seed"), limit=100),
    )
    assert hits and {h.payload["path"] for h in hits} <= seedable


def test_bpm_filter_accepts_half_and_double_time(indexed, embedder):
    payloads = [p for p in _all(indexed) if p.get("bpm")]
    target = payloads[0]["bpm"]
    hits = search(
        indexed, embedder, SearchRequest(text="loop", bpm=target * 2, bpm_tolerance=1, limit=200)
    )
    assert hits
    for h in hits:
        b = h.payload["bpm"]
        assert any(abs(b - target * 2 * f) <= 1 * f + 1e-9 for f in (1, 0.5, 2))
    strict = search(
        indexed,
        embedder,
        SearchRequest(text="loop", bpm=target * 2, bpm_tolerance=1, half_double=False, limit=200),
    )
    assert all(abs(h.payload["bpm"] - target * 2) <= 1 for h in strict)
    assert len(strict) < len(hits)


def test_key_filter_with_relative_key(indexed, embedder):
    key = next(p["key"] for p in _all(indexed) if p.get("key"))
    exact = search(indexed, embedder, SearchRequest(key=key, limit=200))
    assert exact and all(h.payload["key"] == key for h in exact)
    loose = search(indexed, embedder, SearchRequest(key=key, compatible_key=True, limit=200))
    assert {h.payload["key"] for h in loose} <= {key, relative_key(key)}
    assert len(loose) >= len(exact)


def test_query_by_example_excludes_the_reference_itself(indexed, embedder, demo_catalog):
    reference = sorted((demo_catalog / "stems").rglob("*.wav"))[0]
    hits = search(indexed, embedder, SearchRequest(like=reference, limit=5))
    assert hits and all(
        h.payload["path"] != reference.relative_to(demo_catalog).as_posix() for h in hits
    )
    with_self = search(
        indexed, embedder, SearchRequest(like=reference, include_reference=True, limit=1)
    )
    assert with_self[0].payload["path"] == reference.relative_to(demo_catalog).as_posix()
    assert with_self[0].scores["clip→audio"] == pytest.approx(1.0, abs=1e-4)


def test_query_by_example_puts_what_the_reference_is_first(indexed, embedder, demo_catalog):
    """The tiny test model hears nothing; the reference's indexed metadata ranks its family
    first ("more like this" on a catalog bass stem gives bass stems)."""
    payloads = _all(indexed)
    basses = sorted(p["path"] for p in payloads if p["instrument"] == "bass")
    reference = demo_catalog / next(path for path in basses if path.endswith(".wav"))
    hits = search(indexed, embedder, SearchRequest(like=reference, limit=len(basses) - 1))
    assert [h.payload["instrument"] for h in hits] == ["bass"] * (len(basses) - 1)
    assert all("clip→name" in h.scores for h in hits)


def test_an_uploaded_clip_is_known_by_its_file_name(indexed, embedder, tmp_path):
    tone = 0.3 * np.sin(2 * np.pi * 55 * np.arange(44100) / 44100)
    sf.write(tmp_path / "Sub Bass take 2.wav", tone, 44100)
    sf.write(tmp_path / "take 2.wav", tone, 44100)
    assert reference_label(indexed, tmp_path / "Sub Bass take 2.wav", "0" * 64, None) == (
        NameLabel("bass", "bass")
    )
    named = search(indexed, embedder, SearchRequest(like=tmp_path / "Sub Bass take 2.wav"))
    assert named[0].payload["instrument"] == "bass" and "clip→name" in named[0].scores
    unnamed = search(indexed, embedder, SearchRequest(like=tmp_path / "take 2.wav"))
    assert unnamed and not any("clip→name" in h.scores for h in unnamed)


def test_reference_metadata_is_read_only_within_the_requests_catalogs(indexed, demo_catalog):
    payload = next(p for p in _all(indexed) if p["instrument"] == "bass" and p["kind"] == "stem")
    path = demo_catalog / payload["path"]
    assert reference_label(indexed, path, payload["sha256"], ("demo",)) == NameLabel(
        "bass", payload.get("named_sound") or "bass"
    )
    # out of scope, only the file name speaks
    assert reference_label(indexed, path, payload["sha256"], ()) == name_label(path.name)


def test_text_and_clip_fused(indexed, embedder, demo_catalog):
    reference = sorted((demo_catalog / "stems").rglob("*.wav"))[1]
    hits = search(indexed, embedder, SearchRequest(text="bass", like=reference, limit=5))
    assert any(len(h.scores) >= 2 for h in hits)


def test_bad_requests_are_clear(indexed, embedder, tmp_path):
    with pytest.raises(SearchError, match="not a key"):
        search(indexed, embedder, SearchRequest(key="Z minor"))
    with pytest.raises(SearchError, match="not found"):
        search(indexed, embedder, SearchRequest(like=tmp_path / "missing.wav"))
    (tmp_path / "junk.wav").write_bytes(b"junk")
    with pytest.raises(SearchError, match=r"junk\.wav"):
        search(indexed, embedder, SearchRequest(like=tmp_path / "junk.wav"))


def test_fuse_is_reciprocal_rank():
    from index.store import Hit

    a = [Hit("x", 0.9, {}), Hit("y", 0.8, {})]
    b = [Hit("y", 0.7, {}), Hit("z", 0.6, {})]
    fused = fuse({"a": a, "b": b}, limit=3)
    assert [h.id for h in fused] == ["y", "x", "z"]
    assert fused[0].scores == {"a": 0.8, "b": 0.7}
    assert build_filter(SearchRequest()).must  # "search" use is always required


def test_the_name_ranking_lifts_named_items_but_keeps_the_models_order_among_them():
    """ "techno drums": every drum loop is named "drums"; the captions still decide which
    drums come first, and an item named otherwise never beats a named one."""
    from index.store import Hit
    from rag.search import in_model_order

    caption = [Hit("techno", 0.9, {}), Hit("house", 0.8, {}), Hit("bass", 0.7, {})]
    audio = [Hit("bass", 0.5, {}), Hit("house", 0.4, {}), Hit("techno", 0.3, {})]
    named = [Hit("house", 0.5, {}), Hit("techno", 0.4, {}), Hit("trap", 0.1, {})]
    rankings = {"text→caption": caption, "text→audio": audio, "text→name": named}
    reordered = in_model_order(rankings, "text→name")
    assert [h.id for h in reordered] == ["techno", "house", "trap"]  # trap: in no model list
    rankings["text→name"] = reordered
    assert [h.id for h in fuse(rankings, limit=4)] == ["techno", "house", "trap", "bass"]
    # nothing named as asked: the scale stays that of the model rankings (1.0 = first in both)
    assert fuse({"a": caption[:1], "b": caption[:1], "text→name": []}, 1)[0].score == 1.0


def test_one_shot_and_loop_filters(tmp_path, demo_catalog, embedder):
    """A 40 ms hit is indexed as a one-shot and found by --one-shot, never by --loop."""
    import shutil

    import numpy as np
    import soundfile as sf

    folder = tmp_path / "kit"
    loop = sorted((demo_catalog / "stems").rglob("*.wav"))[0]
    (folder / "loops").mkdir(parents=True)
    shutil.copy(loop, folder / "loops" / loop.name)
    (folder / "hits").mkdir()
    rng = np.random.default_rng(0)
    burst = rng.standard_normal(1764) * np.exp(-np.linspace(0, 8, 1764))  # 40 ms at 44.1 kHz
    sf.write(folder / "hits" / "hat.wav", (0.5 * burst).astype(np.float32), 44100)
    licence = {"id": "L1", "holder": "Kit Co", "allowed_uses": ["search"], "attribution": "Kit"}
    lines = [
        {"path": f"loops/{loop.name}", "licence": licence, "meta": {"instrument": "drums"}},
        {"path": "hits/hat.wav", "licence": licence, "meta": {"instrument": "drums"}},
    ]
    (folder / "licences.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        report = Indexer(store, embedder, workers=0).run(
            folder, catalog="kit", manifest=load_manifest(folder / "licences.jsonl")
        )
        assert sorted(report.indexed) == ["hits/hat.wav", f"loops/{loop.name}"], report
        hits = search(store, embedder, SearchRequest(text="hi-hat", one_shot=True))
        assert [h.payload["path"] for h in hits] == ["hits/hat.wav"]
        assert hits[0].payload["one_shot"] is True
        assert hits[0].payload["caption"].endswith("one-shot")
        loops = search(store, embedder, SearchRequest(text="hi-hat", one_shot=False))
        assert [h.payload["path"] for h in loops] == [f"loops/{loop.name}"]
        assert loops[0].payload["one_shot"] is False
    finally:
        store.close()
