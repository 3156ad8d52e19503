"""The CLAP shipped in the package: loads offline, stays small, and knows drums from pads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audio.decode import decode_audio
from audio.signal import resample
from audiorag.components import BUNDLED_CLAP
from index.clap import SAMPLE_RATE, ClapEmbedder

pytestmark = pytest.mark.skipif(
    not (BUNDLED_CLAP / "model.safetensors").is_file(), reason="bundled CLAP not in this checkout"
)

MAX_BYTES = 20 * 2**20


@pytest.fixture(scope="module")
def bundled() -> ClapEmbedder:
    return ClapEmbedder.from_pretrained(BUNDLED_CLAP)  # a folder: loaded with local_files_only


@pytest.fixture(scope="module")
def fresh_catalog(tmp_path_factory) -> Path:
    """A dozen demo items the model never saw (another seed than its training catalog)."""
    from audiorag.democatalog.catalog import build_demo_catalog

    out = tmp_path_factory.mktemp("unseen") / "demo"
    build_demo_catalog(out, count=12, seed=99, workers=2)
    return out


@pytest.fixture(scope="module")
def fresh_items(fresh_catalog) -> list[dict]:
    out = fresh_catalog
    rows = [json.loads(line) for line in (out / "licences.jsonl").read_text().splitlines()]
    stems = [row for row in rows if row["meta"]["kind"] == "stem"]
    for row in stems:
        audio = decode_audio(out / row["path"])
        row["clip"] = resample(audio.mono(), audio.sr, SAMPLE_RATE)
    return stems


def test_bundled_model_is_small_and_complete():
    files = {p.name: p.stat().st_size for p in BUNDLED_CLAP.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= set(files)
    assert {"processor_config.json", "tokenizer_config.json", "TRAINING.md"} <= set(files)
    assert sum(files.values()) <= MAX_BYTES


def test_bundled_model_loads_offline_and_embeds(bundled):
    assert bundled.embedder.id.startswith("clap-demo@")
    vectors = bundled.embed_text(["house drums", "warm pad"])
    assert vectors.shape == (2, bundled.embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_drum_query_ranks_drum_loops_above_pads(bundled, fresh_items):
    audio = bundled.embed_audio([row["clip"] for row in fresh_items])
    scores = audio @ bundled.embed_text(["drum loop"])[0]
    family = [row["meta"]["instrument"] for row in fresh_items]
    drums = [s for s, f in zip(scores, family, strict=True) if f == "drums"]
    pads = [s for s, f in zip(scores, family, strict=True) if f == "pad"]
    assert drums and pads
    assert min(drums) > max(pads)


@pytest.mark.slow
def test_unrelated_captions_are_not_collapsed(bundled, fresh_items):
    vectors = bundled.embed_text([row["meta"]["caption"] for row in fresh_items])
    family = np.array([row["meta"]["instrument"] for row in fresh_items])
    style = np.array([row["meta"]["genre"] for row in fresh_items])
    unrelated = (family[:, None] != family[None, :]) & (style[:, None] != style[None, :])
    assert unrelated.any()
    assert float((vectors @ vectors.T)[unrelated].mean()) <= 0.8


@pytest.mark.slow
def test_eval_retrieval_reports_every_measure(bundled, fresh_catalog, tmp_path):
    from audiorag.evaluation.eval_retrieval import TARGETS, evaluate_retrieval, markdown_table

    result = evaluate_retrieval(fresh_catalog, bundled, workdir=tmp_path)
    assert result["stems"] == 12 and result["model"] == bundled.embedder.id
    assert result["indexed"]["indexed"] == 12  # stems only; MIDI files are skipped
    assert set(result["measures"]) == set(TARGETS)
    for measure in result["measures"].values():
        assert -1.0 <= measure["value"] <= 1.0 and isinstance(measure["passed"], bool)
    assert set(result["measures"]["text_family_p10"]["per_label"]) == {
        row["meta"]["instrument"]
        for row in map(json.loads, (fresh_catalog / "licences.jsonl").read_text().splitlines())
    }
    table = markdown_table(result)
    assert table.count("\n| ") == 1 + len(TARGETS) and "precision@10" in table
    json.dumps(result)  # JSON-ready
