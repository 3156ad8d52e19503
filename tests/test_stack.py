"""Seed stacks: roles from the request, the exact compatible-stack solver, enrichment that
never contradicts the prompt, and the orchestrator seeding one item per role from a real store."""

from __future__ import annotations

import itertools
import json
import math
import random
import shutil

import pytest

from generation.loading import load_generator
from index.ingest import Indexer
from index.manifest import load_manifest
from index.store import open_store
from rag.catalogs import CatalogRoots
from rag.conditioning import Seed, contradiction, enrich_prompt
from rag.guardrails import Guardrails
from rag.orchestrate import GenerateRequest, GenerationError, Orchestrator
from rag.roles import HARMONIC, Role, UnknownRole, request_roles, role_named, roles_in
from rag.stack import Candidate, Slot, fit, solve, targets

KEYS = ("A minor", "C major", "E minor", "G major", "D minor", "F# minor", "B minor")


# -- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "want"),
    [
        ("dark minor bass groove with tight drums", ["bass", "drums"]),
        ("a boom bap beat with dusty piano chords", ["drums", "keys"]),
        ("808 sub under a trap groove and a saw lead", ["bass", "drums", "lead"]),
        ("drum and bass roller with a warm pad", ["pad"]),
        ("DnB: amen break, reese bass, lush strings", ["drums", "bass", "strings"]),
        ("pad chords over a kick and hats", ["pad", "drums"]),
        ("warm chords and a bassline, no drums", ["harmonic", "bass"]),
        ("guitar riff without drums", ["guitar"]),
        ("something nice", []),
    ],
)
def test_roles_named_by_the_prompt(prompt, want):
    assert [r.name for r in roles_in(prompt)[0]] == want


def test_request_roles_sources_and_limits():
    assert request_roles("warm house vibes", limit=4)[1] == "default"
    roles, source = request_roles("warm house vibes", limit=4)
    assert [r.name for r in roles] == ["drums", "bass", "harmonic"] and source == "default"
    assert [r.name for r in request_roles("lofi study", limit=4)[0]] == ["drums", "bass", "keys"]
    roles, source = request_roles("anything", explicit=["beat", "sub", "chords"], limit=2)
    assert [r.name for r in roles] == ["drums", "bass"] and source == "explicit"
    # a harmonic group never repeats a family named on its own
    roles, _ = request_roles("pad and chords", limit=4)
    assert roles == [Role("pad", ("pad",)), Role("harmonic", ("keys", "strings", "guitar"))]
    bass_only = ([Role("bass", ("bass",))], "instrument")
    assert request_roles("x", instrument="bass", limit=4) == bass_only
    assert role_named("Chords") == HARMONIC
    with pytest.raises(UnknownRole, match="kazoo"):
        role_named("kazoo")


# -- the solver --------------------------------------------------------------------------------


def _random_slots(rng: random.Random, roles: int, per_role: int) -> list[Slot]:
    families = ["drums", "bass", "keys", "pad", "lead"]
    slots = []
    for r in range(roles):
        family = families[r]
        cands = [
            Candidate(
                f"{family}{i}",
                round(rng.uniform(0.6, 1.0), 3),
                family,
                bpm=rng.choice([None, *[float(rng.randint(70, 175)) for _ in range(6)]]),
                key=None if family == "drums" else rng.choice(KEYS),
                holder=rng.choice(["H1", "H2", "H3"]),
            )
            for i in range(per_role)
        ]
        slots.append(Slot(Role(family, (family,)), tuple(sorted(cands, key=lambda c: -c.score))))
    return slots


def _brute_force(slots, **kw):
    """Every combination (None allowed), ranked as solve() defines it: (cover, value)."""
    best = (-1, -math.inf)
    for picks in itertools.product(*[(*s.candidates, None) for s in slots]):
        chosen = [c for c in picks if c is not None]
        bpm, key, _, _ = targets(chosen, bpm=kw.get("bpm"), key=kw.get("key"), mode=kw.get("mode"))
        fits = [fit(c, bpm, key) for c in chosen]
        if all(f.ok for f in fits):
            bonus = sum(0.05 for c in chosen if c.holder == kw.get("prefer_holder"))
            value = sum(c.score - f.cost for c, f in zip(chosen, fits, strict=True)) + bonus
            best = max(best, (len(chosen), value))
    return best


@pytest.mark.parametrize("trial", range(40))
def test_solver_is_exact_and_every_chosen_item_fits(trial):
    rng = random.Random(trial)
    slots = _random_slots(rng, rng.randint(1, 3), rng.randint(1, 6))
    kw = {
        "bpm": rng.choice([None, None, 120.0]),
        "key": rng.choice([None, None, "A minor"]),
        "mode": rng.choice([None, "minor", "major"]),
        "prefer_holder": rng.choice([None, "H2"]),
    }
    stack = solve(slots, **kw)
    chosen = stack.chosen
    bonus = sum(0.05 for c in chosen if c.holder == kw["prefer_holder"])
    value = sum(c.score - fit(c, stack.bpm, stack.key).cost for c in chosen) + bonus
    cover, best_value = _brute_force(slots, **kw)
    assert len(chosen) == cover
    assert value == pytest.approx(best_value, abs=1e-9)
    for c in chosen:
        assert fit(c, stack.bpm, stack.key).ok
    # targets come from the request, else from a chosen item
    if kw["bpm"] is None and stack.bpm is not None:
        assert any(c.bpm == stack.bpm for c in chosen)
    for choice in stack.choices:
        assert choice.candidate is not None or choice.reason
        for rejected, why in choice.rejected:
            assert rejected is not choice.candidate and why


def test_solver_prefers_a_compatible_bass_over_the_best_one():
    drums = Slot(Role("drums", ("drums",)), (Candidate("d", 1.0, "drums", bpm=124.0),))
    bass = Slot(
        Role("bass", ("bass",)),
        (
            Candidate("far", 0.99, "bass", bpm=172.0, key="A minor"),
            Candidate("near", 0.9, "bass", bpm=62.0, key="C major"),
        ),
    )
    stack = solve([drums, bass], mode="minor")
    assert [c.id for c in stack.chosen] == ["d", "near"]
    assert stack.bpm == 124.0 and stack.key == "A minor"  # C major's relative: the minor asked
    assert stack.choices[1].fit.tempo == "half/double time"
    rejected = stack.to_json()["roles"][1]["rejected"]
    assert rejected[0]["id"] == "far" and "×1.39" in rejected[0]["reason"]


def test_pinned_items_anchor_the_targets_and_an_unfillable_role_says_why():
    pinned = Candidate("p", 1.0, "keys", bpm=90.0, key="D minor", pinned=True)
    bass = Slot(Role("bass", ("bass",)), (Candidate("b", 0.9, "bass", bpm=140.0, key="D minor"),))
    empty = Slot(Role("pad", ("pad",)), ())
    stack = solve([bass, empty], pinned=[pinned])
    assert (stack.bpm, stack.key, stack.bpm_from) == (90.0, "D minor", "pinned")
    assert [c.id for c in stack.chosen] == ["p"]
    assert stack.choices[1].reason == "no candidate fits the stack's tempo and key"
    assert stack.choices[2].reason == "no item licensed for seeding in scope"


def test_solver_prefers_the_named_holder():
    bass = Slot(
        Role("bass", ("bass",)),
        (Candidate("x", 0.92, "bass", holder="Other"), Candidate("m", 0.9, "bass", holder="Mira")),
    )
    assert solve([bass]).chosen[0].id == "x"
    assert solve([bass], prefer_holder="Mira").chosen[0].id == "m"


# -- enrichment --------------------------------------------------------------------------------


def test_enrichment_adds_only_what_seeds_agree_on_and_the_prompt_allows():
    seeds = [
        Seed("d", {"instrument": "drums", "genre": "techno", "tags": ["dark", "driving"]}, 1, 0.4),
        Seed("b", {"instrument": "bass", "genre": "techno", "tags": ["dark", "hypnotic"]}, 1, 0.3),
        Seed("k", {"instrument": "keys", "genre": "house", "tags": ["bright", "driving"]}, 1, 0.3),
    ]
    _, added = enrich_prompt(
        "dark minor groove", seeds, bpm=128.0, key="C major", count_tokens=len, max_tokens=999
    )
    assert "techno" not in added  # agreed, but a genre the prompt does not imply
    assert "driving" in added and "hypnotic" not in added and "bright" not in added
    assert "C major" not in added  # the prompt asked for minor
    assert {"drums", "bass", "keys", "128 BPM"} <= set(added)
    _, added = enrich_prompt(
        "dark techno groove", seeds, bpm=None, key=None, count_tokens=len, max_tokens=999
    )
    assert "techno" not in added  # already there
    assert all(contradiction(p, "dark techno groove") is None for p in added)


# -- the orchestrator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_catalog, embedder, tiny_generator_folder):
    root = tmp_path_factory.mktemp("stack")
    catalog = root / "demo"
    shutil.copytree(demo_catalog, catalog)
    store = open_store(embedder.embedder, path=root / "store")
    Indexer(store, embedder, workers=0).run(
        catalog, catalog="demo", manifest=load_manifest(catalog / "licences.jsonl")
    )
    roots = CatalogRoots(root / "data")
    roots.set("demo", catalog)
    orchestrator = Orchestrator(
        store=store,
        embedder=embedder,
        generator=load_generator(tiny_generator_folder),
        guardrails=Guardrails(()),
        catalog_roots=roots,
    )
    yield orchestrator
    store.close()


def _request(**changes) -> GenerateRequest:
    base = {"prompt": "dark minor bass groove with tight drums", "duration_s": 1.0, "steps": 2}
    return GenerateRequest(**{**base, **changes})


def test_a_take_is_seeded_by_one_compatible_item_per_named_role(world, tmp_path):
    take = world.generate(_request(), tmp_path)
    manifest = json.loads((take.folder / "manifest.json").read_text())
    stack = manifest["stack"]
    assert [r["role"] for r in stack["roles"]] == ["bass", "drums"]
    assert manifest["retrieval"]["roles"] == ["bass", "drums"]
    chosen = [r["chosen"] for r in stack["roles"]]
    assert all(chosen), stack
    assert [c["instrument"] for c in chosen] == ["bass", "drums"]
    seeds = manifest["seeds"]
    assert [s["id"] for s in seeds] == [c["id"] for c in chosen]
    assert all(s["layered"] for s in seeds)  # one per role: nothing skipped
    target = stack["target"]
    assert (manifest["targets"]["bpm"], manifest["targets"]["key"]) == (
        target["bpm"],
        target["key"],
    )
    for c in chosen:
        cand = Candidate(c["id"], c["score"], c["instrument"], bpm=c["bpm"], key=c["key"])
        assert fit(cand, target["bpm"], target["key"]).ok
    for phrase in manifest["prompt"]["added"]:
        assert contradiction(phrase, manifest["prompt"]["user"]) is None


def test_explicit_roles_pins_and_no_retrieval(world, tmp_path):
    take = world.generate(_request(prompt="something for a film", roles=("pad", "drums")), tmp_path)
    assert [r["role"] for r in take.manifest["stack"]["roles"]] == ["pad", "drums"]
    point = next(
        p
        for p in world.store.scroll()
        if p.payload["instrument"] == "bass"
        and "generation-seed" in p.payload["licence"]["allowed_uses"]
    )
    pinned = world.generate(_request(pinned=(point.id,)), tmp_path)
    roles = pinned.manifest["stack"]["roles"]
    assert roles[0]["chosen"]["id"] == point.id and roles[0]["chosen"]["pinned"]
    assert [r["role"] for r in roles] == ["bass", "drums"]  # the pin fills bass; drums retrieved
    assert pinned.manifest["seeds"][0]["id"] == point.id
    off = world.generate(_request(retrieval=False, pinned=(point.id,)), tmp_path)
    assert [s["id"] for s in off.manifest["seeds"]] == [point.id]
    assert "stack" not in off.manifest
    with pytest.raises(GenerationError, match="unknown role"):
        world.generate(_request(roles=("kazoo",)), tmp_path)
