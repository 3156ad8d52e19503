"""Timbre descriptors (index.timbre), the fitted timbre model (audiorag.training.fit_timbre) and
their use: every indexed item gets a ``timbre`` vector, search ranks by it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from index.ingest import Indexer
from index.manifest import load_manifest
from index.store import open_store
from index.timbre import (
    MODEL_FILE,
    TIMBRE_DIM,
    TimbreModel,
    TimbrePrototypes,
    TimbreScale,
    shipped_model,
    timbre_features,
    timbre_vector,
)
from rag.search import SearchRequest, search

SR = 44100


def hit(kind: str, seconds: float = 0.4, seed: int = 0) -> np.ndarray:
    """A synthetic kick (decaying low sine) or hat (decaying noise)."""
    t = np.arange(int(seconds * SR)) / SR
    if kind == "kick":
        return (np.sin(2 * np.pi * 55 * t) * np.exp(-t * 10)).astype(np.float32)
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (noise * np.exp(-t * 30)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_features_ignore_loudness_and_leading_silence_and_tell_a_kick_from_a_hat():
    kick, hat = timbre_features(hit("kick"), SR), timbre_features(hit("hat"), SR)
    assert kick.shape == hat.shape == (TIMBRE_DIM,)
    loud, quiet = timbre_vector(hit("kick"), SR), timbre_vector(0.1 * hit("kick"), SR)
    assert cosine(loud, quiet) > 0.999
    late = timbre_vector(np.concatenate([np.zeros(SR // 2, np.float32), hit("kick")]), SR)
    assert cosine(loud, late) > 0.99
    other_kick = timbre_vector(hit("kick", seconds=0.6), SR)
    assert cosine(loud, other_kick) > cosine(loud, timbre_vector(hit("hat"), SR))


def test_features_of_silence_and_of_a_few_samples_are_finite():
    for clip in (np.zeros(SR, np.float32), np.full(10, 0.5, np.float32), np.zeros(0, np.float32)):
        assert np.isfinite(timbre_features(clip, SR)).all()


def test_the_shipped_model_knows_the_sounds_users_type():
    model = shipped_model()
    assert {"kick", "snare", "hi-hat", "clap", "tom", "cymbal", "violin", "piano"} <= set(
        model.prototypes.sounds
    )
    assert {"drums", "bass", "keys", "strings", "brass", "woodwind"} <= set(
        model.prototypes.families
    )
    assert {"demo", "oneshots", "samples", "instruments"} == set(model.fitted_on)  # no held-out set
    vector = timbre_vector(hit("kick"), SR)
    assert vector.shape == (TIMBRE_DIM,) and vector.dtype == np.float32
    # a synthetic kick sits nearer the kick prototype than the hi-hat one
    unit = vector / np.linalg.norm(vector)
    assert unit @ model.prototypes.sounds["kick"] > unit @ model.prototypes.sounds["hi-hat"]
    # the net's embedding needs no query metric (fit_timbre): a clip queries with its vector
    assert model.query_metric is None
    np.testing.assert_array_equal(model.example_query(vector), vector)


def test_model_file_round_trip_and_refuses_another_version(tmp_path):
    rng = np.random.default_rng(0)
    scale = TimbreScale.fit(rng.standard_normal((20, TIMBRE_DIM)))
    protos = TimbrePrototypes({"drums": np.ones(TIMBRE_DIM)}, {"kick": np.zeros(TIMBRE_DIM)})
    TimbreModel(scale, protos, ("train",)).save(tmp_path / "timbre.json")
    loaded = TimbreModel.load(tmp_path / "timbre.json")
    np.testing.assert_allclose(loaded.scale.mean, scale.mean, atol=1e-5)
    assert set(loaded.prototypes.sounds) == {"kick"} and loaded.fitted_on == ("train",)
    assert loaded.query_metric is None  # a model without a metric queries with the vector
    np.testing.assert_array_equal(loaded.example_query(np.ones(TIMBRE_DIM)), np.ones(TIMBRE_DIM))
    metric = rng.standard_normal((TIMBRE_DIM, 3)).astype(np.float32)
    TimbreModel(scale, protos, ("train",), metric).save(tmp_path / "metric.json")
    loaded = TimbreModel.load(tmp_path / "metric.json")
    np.testing.assert_allclose(loaded.query_metric, metric, atol=1e-4)
    record = json.loads((tmp_path / "timbre.json").read_text())
    (tmp_path / "old.json").write_text(json.dumps({**record, "version": "timbre-v0"}))
    with pytest.raises(ValueError, match="timbre-v0"):
        TimbreModel.load(tmp_path / "old.json")


def test_a_model_fitted_on_another_timbre_net_is_refused(tmp_path):
    from index.timbre import on_shipped_net
    from index.timbre_net import net_fingerprint

    shipped = shipped_model()
    assert shipped.net == net_fingerprint()  # the bundled model was fitted on the bundled net
    stale = TimbreModel(shipped.scale, shipped.prototypes, shipped.fitted_on, None, "0123456789ab")
    stale.save(tmp_path / "timbre.json")
    with pytest.raises(ValueError, match=r"0123456789ab.*audiorag train timbre"):
        on_shipped_net(TimbreModel.load(tmp_path / "timbre.json"), tmp_path / "timbre.json")


def test_another_net_and_its_model_are_used_from_the_environment(
    demo_catalog, tmp_path, monkeypatch
):
    """A user trains a net on their own catalog (`train timbre-net --out`), fits prototypes on
    it (`train timbre --net`) and indexes with both named in the environment."""
    import torch
    from typer.testing import CliRunner

    from audiorag.cli.app import app
    from index.timbre import MODEL_ENV, timbre_id
    from index.timbre_net import NET_ENV, TimbreNet, net_fingerprint, shipped_net

    bundled_id = timbre_id()
    torch.manual_seed(1)
    TimbreNet(shipped_net().config).save(tmp_path / "net")
    monkeypatch.setenv(NET_ENV, "")  # restored after the test: `--net` sets it in-process
    result = CliRunner().invoke(
        app, ["train", "timbre", "--net", str(tmp_path / "net"), "--catalog",
              str(demo_catalog), "--out", str(tmp_path / "timbre.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert TimbreModel.load(tmp_path / "timbre.json").net == net_fingerprint(tmp_path / "net")

    monkeypatch.setenv(NET_ENV, str(tmp_path / "net"))
    with pytest.raises(ValueError, match="AUDIORAG_TIMBRE_MODEL"):  # the bundled prototypes
        shipped_model()
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "timbre.json"))
    assert shipped_model().net == net_fingerprint()
    assert timbre_id() != bundled_id  # a store of the bundled net's vectors refuses these
    clip = hit("kick")
    np.testing.assert_allclose(
        timbre_features(clip, SR), TimbreNet.load(tmp_path / "net").embed_clip(clip, SR)
    )
    monkeypatch.setenv(NET_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"AUDIORAG_TIMBRE_NET=.*missing"):
        net_fingerprint()


def test_fit_on_a_catalog_names_what_it_skips(demo_catalog, tmp_path):
    from audiorag.training.fit_timbre import fit_timbre_model

    catalog = tmp_path / "catalog"
    shutil.copytree(demo_catalog, catalog)
    (catalog / "stems" / "broken.wav").write_bytes(b"RIFF not really")
    seen: dict[str, str | None] = {}
    model, count = fit_timbre_model(
        [catalog], tmp_path / "timbre.json", on_file=lambda p, e: seen.setdefault(p.name, e)
    )
    stems = load_manifest(catalog / "licences.jsonl").entries
    wavs = [p for p in stems if p.endswith(".wav")]
    assert count == len(wavs)
    assert seen["broken.wav"] and all(seen[p.rsplit("/", 1)[-1]] is None for p in wavs)
    families = {stems[p].meta.instrument for p in wavs}
    # families with at least MIN_EXAMPLES stems get a prototype, of unit length
    assert set(model.prototypes.families) <= families and "drums" in model.prototypes.families
    for vector in model.prototypes.families.values():
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert TimbreModel.load(tmp_path / "timbre.json").fitted_on == ("catalog",)


def test_a_failing_recording_chain_leaves_the_file_as_it_is(demo_catalog, tmp_path, monkeypatch):
    from audiorag.training import fit_timbre

    def broken_chain(clip, sr, rng):
        raise RuntimeError("codec refused the clip")

    monkeypatch.setattr(fit_timbre, "recording_chain", broken_chain)
    skipped: list[str] = []
    model, count = fit_timbre.fit_timbre_model(
        [demo_catalog], tmp_path / "timbre.json", on_file=lambda p, e: e and skipped.append(e)
    )
    stems = load_manifest(demo_catalog / "licences.jsonl").entries
    assert count == sum(p.endswith(".wav") for p in stems) and not skipped
    assert "drums" in model.prototypes.families


def test_train_timbre_command_writes_a_loadable_model(demo_catalog, tmp_path):
    from typer.testing import CliRunner

    from audiorag.cli.app import app

    out = tmp_path / "timbre.json"
    result = CliRunner().invoke(
        app, ["train", "timbre", "--catalog", str(demo_catalog), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "timbre model fitted on" in result.output
    fitted = TimbreModel.load(out)
    assert "drums" in fitted.prototypes.families
    shipped = TimbreModel.load()  # --scale-from keeps a scale: stored vectors stay valid
    kept = tmp_path / "kept.json"
    result = CliRunner().invoke(
        app, ["train", "timbre", "--catalog", str(demo_catalog), "--out", str(kept),
              "--scale-from", str(MODEL_FILE)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    refit = TimbreModel.load(kept)
    np.testing.assert_allclose(refit.scale.mean, shipped.scale.mean)
    assert not np.allclose(fitted.scale.mean, shipped.scale.mean)
    assert set(refit.prototypes.families) == set(fitted.prototypes.families)


def test_indexed_items_get_timbre_vectors_and_a_prompt_finds_an_unnamed_drum_loop(
    demo_catalog, embedder, tmp_path
):
    """Files named by number, no instrument anywhere: the tiny test CLAP hears nothing and no
    name or caption says "drums"; the drum prototype still ranks the drum loop first."""
    manifest = load_manifest(demo_catalog / "licences.jsonl").entries
    stems = sorted(p for p in manifest if p.startswith("stems/"))
    drums = next(p for p in stems if manifest[p].meta.instrument == "drums")
    tonal = [p for p in stems if manifest[p].meta.instrument in ("pad", "keys", "bass")][:4]
    folder = tmp_path / "unnamed"
    folder.mkdir()
    rows = []
    for n, path in enumerate([drums, *tonal]):
        shutil.copyfile(demo_catalog / path, folder / f"{n:04d}.wav")
        licence = manifest[path].licence.model_dump()
        rows.append(json.dumps({"path": f"{n:04d}.wav", "licence": licence}))
    (folder / "licences.jsonl").write_text("\n".join(rows) + "\n")
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        Indexer(store, embedder, workers=0).run(
            folder, catalog="mine", manifest=load_manifest(folder / "licences.jsonl")
        )
        points = list(store.scroll(with_vectors=True))
        assert len(points) == 5 and all(p.vectors["timbre"].shape == (TIMBRE_DIM,) for p in points)
        hits = search(store, embedder, SearchRequest(text="drums", limit=5))
        assert hits[0].payload["path"] == "0000.wav" and "text→timbre" in hits[0].scores
        # captions of measures alone ("loop at 120 BPM in A minor") are no evidence: no ranking
        assert not any("text→caption" in h.scores for h in hits)
        styled = search(store, embedder, SearchRequest(text="techno drums", limit=5))
        assert not any("text→timbre" in h.scores for h in styled)
        like = search(store, embedder, SearchRequest(like=folder / "0001.wav", limit=4))
        assert all("clip→timbre" in h.scores for h in like)
    finally:
        store.close()


def test_a_clip_too_odd_to_describe_is_still_indexed(tmp_path, embedder, monkeypatch):
    """A descriptor failure costs the item its timbre vector only, with a note in the report."""
    import index.prepare

    def broken(samples, sr):
        raise RuntimeError("descriptor exploded")

    monkeypatch.setattr(index.prepare, "timbre_vector", broken)
    folder = tmp_path / "cat"
    folder.mkdir()
    sf.write(folder / "kick.wav", hit("kick"), SR)
    licence = {"id": "L", "holder": "me", "allowed_uses": ["search"]}
    (folder / "licences.jsonl").write_text(json.dumps({"path": "kick.wav", "licence": licence}))
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        report = Indexer(store, embedder, workers=0).run(
            folder, catalog="c", manifest=load_manifest(folder / "licences.jsonl")
        )
        (point,) = store.scroll(with_vectors=True)
        assert set(point.vectors) == {"audio", "text"}
        notes = json.dumps(report.to_json())
        assert "no_timbre" in notes and "descriptor exploded" in notes and "kick.wav" in notes
    finally:
        store.close()
