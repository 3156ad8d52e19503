"""Retrieval-conditioned rendering end to end: real embedded store, tiny CLAP, tiny generator."""

from __future__ import annotations

import json
import random
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation.loading import load_generator
from index.ingest import Indexer
from index.manifest import load_manifest
from index.store import open_store
from rag.catalogs import CatalogRoots
from rag.guardrails import Guardrails
from rag.orchestrate import (
    BlockedPrompt,
    Cancelled,
    GenerateRequest,
    GenerationError,
    Orchestrator,
    take_payload,
)

USES = ("search", "generation-seed", "commercial", "preview")


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_catalog, embedder, tiny_generator_folder):
    """A copy of the demo catalog, indexed; its licences can be reshuffled per test."""
    root = tmp_path_factory.mktemp("orch")
    catalog = root / "demo"
    shutil.copytree(demo_catalog, catalog)
    store = open_store(embedder.embedder, path=root / "store")
    indexer = Indexer(store, embedder, workers=0)
    indexer.run(catalog, catalog="demo", manifest=load_manifest(catalog / "licences.jsonl"))
    roots = CatalogRoots(root / "data")
    roots.set("demo", catalog)
    orchestrator = Orchestrator(
        store=store,
        embedder=embedder,
        generator=load_generator(tiny_generator_folder),
        guardrails=Guardrails(("Daft Punk", "Mira Okafor")),
        catalog_roots=roots,
    )
    yield {"orchestrator": orchestrator, "catalog": catalog, "indexer": indexer, "root": root}
    store.close()


def request(**changes) -> GenerateRequest:
    base = {"prompt": "punchy drums with a warm bass", "duration_s": 1.5, "steps": 6, "top_k": 3}
    return GenerateRequest(**{**base, **changes})


def _entries(catalog: Path) -> list[dict]:
    return [json.loads(line) for line in (catalog / "licences.jsonl").read_text().splitlines()]


def test_seeded_take_is_written_with_a_full_manifest(world, tmp_path):
    take = world["orchestrator"].generate(request(formats=("wav", "flac")), tmp_path)
    assert take.folder == tmp_path / take.id
    assert {p.name for p in take.folder.iterdir()} == {
        "audio.wav",
        "audio.flac",
        "manifest.json",
        "spectrogram.png",
    }
    audio, sr = sf.read(take.audio["wav"], always_2d=True)
    assert sr == 16000 and audio.shape == (24000, 2)
    manifest = json.loads((take.folder / "manifest.json").read_text())
    assert manifest["take_id"] == take.id and manifest["mode"] == "audio-to-audio"
    assert manifest["prompt"]["user"] == "punchy drums with a warm bass"
    assert manifest["prompt"]["enriched"].startswith("punchy drums with a warm bass")
    seeds = manifest["seeds"]
    assert 0 < len(seeds) <= 3
    assert sum(s["weight"] for s in seeds) == pytest.approx(1.0, abs=1e-5)
    for seed in seeds:
        assert "generation-seed" in seed["licence"]["allowed_uses"]
        assert seed["licence"]["holder"] and seed["path"] and seed["id"]
    assert any(s["layered"] and s["alignment"].get("method") for s in seeds)
    assert manifest["model"]["weights_sha256"] and manifest["sampler"]["seed"] == 0
    assert manifest["sampler"]["steps_run"] == round(6 * 0.6)
    assert manifest["timings_s"]["total_s"] > 0


def test_same_request_same_audio_bit_for_bit(world, tmp_path):
    first = world["orchestrator"].generate(request(seed=5), tmp_path / "a")
    second = world["orchestrator"].generate(request(seed=5), tmp_path / "b")
    third = world["orchestrator"].generate(request(seed=6), tmp_path / "c")
    assert first.audio["wav"].read_bytes() == second.audio["wav"].read_bytes()
    assert first.audio["wav"].read_bytes() != third.audio["wav"].read_bytes()
    assert take_payload(first.manifest) == take_payload(second.manifest)


def test_unlicensed_items_never_seed(world, tmp_path):
    """Reshuffle every item's licence at random; no non-seedable item may ever seed a take."""
    rng = random.Random(0)
    catalog, orchestrator = world["catalog"], world["orchestrator"]
    original = (catalog / "licences.jsonl").read_text()
    prompts = ["drums", "dark bass", "warm pad", "bright lead", "anything at all", "guitar"]
    try:
        for round_ in range(3):
            entries = _entries(catalog)
            for entry in entries:
                entry["licence"]["allowed_uses"] = rng.sample(USES, rng.randint(1, len(USES)))
            (catalog / "licences.jsonl").write_text("\n".join(json.dumps(e) for e in entries))
            world["indexer"].run(
                catalog, catalog="demo", manifest=load_manifest(catalog / "licences.jsonl")
            )
            seedable = {
                e["path"] for e in entries if "generation-seed" in e["licence"]["allowed_uses"]
            }
            for n in range(4):
                take = orchestrator.generate(
                    request(prompt=rng.choice(prompts), top_k=rng.randint(1, 8), strength=1.0),
                    tmp_path / f"{round_}-{n}",
                )
                paths = {s["path"] for s in take.manifest["seeds"]}
                assert paths <= seedable, paths - seedable
    finally:
        (catalog / "licences.jsonl").write_text(original)
        world["indexer"].run(
            catalog, catalog="demo", manifest=load_manifest(catalog / "licences.jsonl")
        )


def test_pinned_items_seed_first_and_must_be_licensed(world, tmp_path):
    orchestrator = world["orchestrator"]
    points = list(orchestrator.store.scroll())
    seedable = next(p for p in points if "generation-seed" in p.payload["licence"]["allowed_uses"])
    take = orchestrator.generate(request(pinned=(seedable.id,), top_k=1), tmp_path)
    assert take.manifest["seeds"][0]["id"] == seedable.id
    assert take.manifest["seeds"][0]["pinned"] is True
    unseedable = [
        p for p in points if "generation-seed" not in p.payload["licence"]["allowed_uses"]
    ]
    if unseedable:
        with pytest.raises(GenerationError, match="not licensed for generation-seed"):
            orchestrator.generate(request(pinned=(unseedable[0].id,)), tmp_path)
    with pytest.raises(GenerationError, match="not found"):
        orchestrator.generate(request(pinned=(seedable.id,), catalogs=("other",)), tmp_path)


@pytest.mark.parametrize(
    "prompt",
    [
        "in the style of Daft Punk",
        "like daft-punk",
        "DAFTPUNK vibes",
        "Dáft  Pünk house",
        "a d.a.f.t. p.u.n.k groove",
    ],
)
def test_blocked_terms_in_any_spelling(world, tmp_path, prompt):
    with pytest.raises(BlockedPrompt, match="Daft Punk") as caught:
        world["orchestrator"].generate(request(prompt=prompt), tmp_path)
    assert caught.value.term == "Daft Punk"
    assert list(tmp_path.iterdir()) == []


def test_blocked_term_allowed_where_the_catalog_holds_the_artists_licence(world, tmp_path):
    """Mira Okafor Productions licenses seeds in the demo catalog: naming her is fine there."""
    take = world["orchestrator"].generate(request(prompt="bass like Mira Okafor"), tmp_path)
    assert take.manifest["prompt"]["user"] == "bass like Mira Okafor"
    with pytest.raises(BlockedPrompt):  # …but not when rendering from a catalog without it
        world["orchestrator"].generate(
            request(prompt="bass like Mira Okafor", catalogs=("elsewhere",)), tmp_path
        )


def test_guardrails_do_not_fire_inside_words():
    guard = Guardrails(("Abba", "Daft Punk"))
    assert guard.blocked_in("an Abbado recording, daft punks") == []
    assert guard.blocked_in("ABBA-style pop") == ["Abba"]


def test_no_retrieval_and_empty_retrieval_render_text_only(world, tmp_path):
    off = world["orchestrator"].generate(request(retrieval=False), tmp_path)
    assert off.manifest["mode"] == "text-to-audio" and off.manifest["seeds"] == []
    assert off.manifest["retrieval"]["status"] == "disabled"
    empty = world["orchestrator"].generate(request(catalogs=("no-such-catalog",)), tmp_path)
    assert empty.manifest["mode"] == "text-to-audio"
    assert empty.manifest["retrieval"]["status"] == "empty"


def test_alignment_to_requested_tempo_and_key(world, tmp_path):
    take = world["orchestrator"].generate(
        request(prompt="bass line", bpm=97.0, key="D minor", instrument="bass", top_k=2),
        tmp_path,
    )
    assert take.manifest["targets"]["bpm"] == 97.0
    assert take.manifest["targets"]["key"] == "D minor"
    layered = [s for s in take.manifest["seeds"] if s["layered"]]
    assert layered
    for seed in layered:
        assert seed["alignment"]["target_bpm"] == 97.0
        source = seed["alignment"]["source_bpm"]
        assert seed["alignment"]["tempo_ratio"] == pytest.approx(
            97.0 / min((source / 2, source, source * 2), key=lambda b: abs(np.log(b / 97))),
            rel=1e-3,
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"duration_s": 30.0}, "maximum"),
        ({"strength": 1.5}, "strength"),
        ({"prompt": ""}, "prompt is empty"),
        ({"key": "H major"}, "not a key"),
        ({"top_k": 99}, "top_k"),
        ({"formats": ("mp3",)}, "formats"),
        ({"like": Path("/no/such/clip.wav")}, "not found"),
        (
            {"inpaint": Path("/no/such/clip.wav"), "inpaint_from_s": 0, "inpaint_to_s": 1},
            "not found",
        ),
    ],
)
def test_bad_requests_fail_clearly_and_leave_nothing(world, tmp_path, changes, message):
    with pytest.raises(GenerationError, match=message):
        world["orchestrator"].generate(request(**changes), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_reference_clip(world, tmp_path):
    bad = tmp_path / "ref.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path / "out"
    with pytest.raises(GenerationError, match=r"ref\.wav"):
        world["orchestrator"].generate(request(like=bad), out)
    assert not out.exists() or list(out.iterdir()) == []


def test_cancel_leaves_nothing_behind(world, tmp_path):
    cancel = threading.Event()

    def stop(done: int, total: int) -> None:
        cancel.set()

    with pytest.raises(Cancelled):
        world["orchestrator"].generate(
            request(strength=1.0), tmp_path, progress=stop, cancel=cancel
        )
    assert list(tmp_path.iterdir()) == []


def test_inpainting_keeps_the_rest_of_the_clip(world, tmp_path):
    t = np.arange(32000) / 16000
    clip = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    path = tmp_path / "clip.wav"
    sf.write(path, np.stack([clip, clip]).T, 16000, subtype="FLOAT")
    take = world["orchestrator"].generate(
        request(inpaint=path, inpaint_from_s=0.5, inpaint_to_s=1.0, retrieval=False),
        tmp_path / "out",
    )
    assert take.manifest["mode"] == "in-paint"
    out, _ = sf.read(take.audio["wav"], always_2d=True)
    assert out.shape == (32000, 2)
    np.testing.assert_allclose(out[:8000, 0], clip[:8000], atol=1e-5)  # 24-bit quantisation
    np.testing.assert_allclose(out[16000:, 0], clip[16000:], atol=1e-5)
    with pytest.raises(GenerationError, match="inside the clip"):
        world["orchestrator"].generate(
            request(inpaint=path, inpaint_from_s=1.0, inpaint_to_s=3.0), tmp_path / "x"
        )


def test_takes_are_watermarked_and_traceable(world, tmp_path):
    from dataclasses import replace as with_fields

    from generation.watermark import StftWatermark
    from rag.provenance import ProvenanceLog

    plain = world["orchestrator"]
    marked_orchestrator = with_fields(
        plain,
        watermarker=StftWatermark(b"k" * 32),
        provenance=ProvenanceLog(tmp_path / "provenance.sqlite"),
    )
    take = marked_orchestrator.generate(request(formats=("wav",)), tmp_path / "marked")
    unmarked = plain.generate(request(formats=("wav",)), tmp_path / "plain")
    mark = take.manifest["watermark"]
    assert mark["scheme"] == "stft-patchwork-v1" and len(mark["payload"]) == 8
    payload = int(mark["payload"], 16)
    audio, sr = sf.read(take.audio["wav"], always_2d=True, dtype="float32")
    clean, _ = sf.read(unmarked.audio["wav"], always_2d=True, dtype="float32")
    expected = marked_orchestrator.watermarker.embed(clean.T, sr, payload)
    np.testing.assert_allclose(audio.T, expected, atol=2e-6)  # 24-bit WAV quantisation
    assert not np.allclose(audio, clean, atol=1e-6)
    recorded = marked_orchestrator.provenance.find(payload)
    assert recorded["take_id"] == take.id
    assert recorded["seeds"] == take.manifest["seeds"]


def test_seeds_are_picked_across_roles():
    from rag.conditioning import Seed, pick_by_role

    ranked = [Seed(f"d{i}", {"instrument": "drums"}, 1 - i / 10) for i in range(5)]
    ranked.insert(4, Seed("b", {"instrument": "bass"}, 0.55))
    picked = [s.id for s in pick_by_role(ranked, 4)]
    assert picked == ["d0", "d1", "d2", "b"]  # two drums capped, then filled in rank order
    assert [s.id for s in pick_by_role(ranked, 2)] == ["d0", "b"]
    assert [s.id for s in pick_by_role(ranked[:2], 4)] == ["d0", "d1"]  # fewer than k: all


def test_manifest_json_is_the_take_manifest_model_dumped(world, tmp_path):
    """manifest.json reads back through TakeManifest to the same text; ints stay ints."""
    from rag.takes import TakeManifest, TakeMode

    take = world["orchestrator"].generate(request(bpm=97, duration_s=1, steps=2), tmp_path)
    text = (take.folder / "manifest.json").read_text()
    assert text == json.dumps(take.manifest, indent=2, default=str)
    record = TakeManifest.model_validate_json(text)
    assert json.dumps(record.to_json(), indent=2, default=str) == text
    assert record.mode is TakeMode.AUDIO_TO_AUDIO and record.targets.bpm == 97
    assert '"bpm": 97,' in text and '"duration_s": 1,' in text  # not 97.0 / 1.0
    for seed in record.seeds:
        assert "generation-seed" in (seed.licence.allowed_uses or [])
    assert take.manifest["retrieval"]["status"] == "ok"
