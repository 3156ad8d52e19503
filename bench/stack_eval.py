"""Seed stacks vs today's top-k: role coverage, tempo/key compatibility, enrichment, retrieval
time, and how much each render sounds like the parts the prompt named (CLAP).

    audiorag catalog demo --out /tmp/stackbench/catalog --count 160 --seed 7   # held out
    AUDIORAG_DATA_DIR=/tmp/stackbench/data audiorag index /tmp/stackbench/catalog
    AUDIORAG_DATA_DIR=/tmp/stackbench/data python bench/stack_eval.py

60 prompts written for this test name two or three parts each, in varied wording; each is
rendered twice on the bundled generator and CLAP with the same seed: seeded by a stack
(``rag.stack``, the orchestrator as shipped) and seeded as before the stack (top-k by the whole
prompt, ``pick_by_role``, consensus tempo/key, the old enrichment — reproduced here).

- **coverage**: every named part has a seed of its family that is layered into the init audio.
- **compatible**: every layered seed is within ×1.12 of the take's tempo after half/double time,
  and every pitched one within 2 semitones of its key (relative keys are 0) — checked here.
- **no contradiction**: no added phrase is a genre the prompt does not name, a mood opposed to
  one it says, or a key in the other mode than the one it asks for — with this file's own tables.
- **retrieval ms**: the retrieval step alone (embedding the text + store queries + solving),
  median of three back-to-back runs per prompt, so a render's load does not colour it.
- **CLAP to roles**: mean cosine between the render's CLAP audio vector and the text vector of
  each named part ("bass loop", …), averaged over the prompt's parts.

Writes ``bench/results/stack_eval.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audio.signal import resample
from audiorag.components import load_orchestrator
from audiorag.settings import get_settings
from index.clap import SAMPLE_RATE as CLAP_SR
from index.manifest import SEED_USE, allowed_uses, may_seed
from rag import orchestrate
from rag.conditioning import Seed, fold_bpm, pick_by_role, semitones_between
from rag.orchestrate import GenerateRequest, Orchestrator
from rag.search import SearchRequest, search
from rag.takes import RetrievalStatus

OUT = Path(__file__).resolve().parent / "results"
HARMONIC = ("keys", "pad", "strings", "guitar")

# (prompt, the parts it names) — written for this test: two or three parts, varied wording.
PROMPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dark minor bass groove with tight drums", ("bass", "drums")),
    ("punchy drums and a rolling bassline", ("drums", "bass")),
    ("boom bap beat with dusty piano chords", ("drums", "keys")),
    ("808 sub bass under crisp trap hats", ("bass", "drums")),
    ("warm pad over a deep house bass", ("pad", "bass")),
    ("sawtooth lead riding a four on the floor kick", ("lead", "drums")),
    ("lush strings with a soft pad bed", ("strings", "pad")),
    ("funky guitar riff and slap bass", ("guitar", "bass")),
    ("arpeggiated synth over a driving techno beat", ("arp", "drums")),
    ("mellow rhodes keys, upright bass and brushed drums", ("keys", "bass", "drums")),
    ("kalimba plucks with a laid-back groove", ("pluck", "drums")),
    ("moody piano and cinematic strings", ("keys", "strings")),
    ("trance lead, pumping bass, big drums", ("lead", "bass", "drums")),
    ("hazy pad and a slow arpeggio", ("pad", "arp")),
    ("gritty bass line with breakbeat drums and a stab of keys", ("bass", "drums", "keys")),
    ("chill lofi beat with jazzy piano", ("drums", "keys")),
    ("energetic drum break and a bright lead melody", ("drums", "lead")),
    ("clean electric guitar chords over a hip hop beat", ("guitar", "drums")),
    ("synth bass and arps, uplifting", ("bass", "arp")),
    ("tense strings, pulsing sub and a dark pad", ("strings", "bass", "pad")),
    ("reggaeton dembow drums with plucked marimba", ("drums", "pluck")),
    ("deep sub bass, warm pads", ("bass", "pad")),
    ("a groovy bassline and a clav keyboard part", ("bass", "keys")),
    ("hypnotic percussion with an arpeggio line", ("drums", "arp")),
    ("nostalgic guitar and a soft piano", ("guitar", "keys")),
    ("aggressive trap drums, distorted 808 and a dark lead", ("drums", "bass", "lead")),
    ("dreamy harp plucks over an ambient pad", ("pluck", "pad")),
    ("pop piano chords with a punchy kick and snare", ("keys", "drums")),
    ("string ensemble and a pizzicato motif", ("strings", "pluck")),
    ("driving bass and a synth lead hook", ("bass", "lead")),
    ("warm keys and a picked bass groove", ("keys", "bass")),
    ("melancholic piano with strings and a gentle pad", ("keys", "strings", "pad")),
    ("uplifting pluck melody over a house beat", ("pluck", "drums")),
    ("minimal techno kick pattern and a metallic pad", ("drums", "pad")),
    ("rock drums with an overdriven guitar", ("drums", "guitar")),
    ("slow bass and sad strings", ("bass", "strings")),
    ("bouncy beat, fingered electric bass, bright plucks", ("drums", "bass", "pluck")),
    ("a fantasia pad and a square wave lead", ("pad", "lead")),
    ("groove for a funk track: drums and guitar", ("drums", "guitar")),
    ("glassy arpeggio, choir pad, soft kit", ("arp", "pad", "drums")),
    ("resonant synth bass with a celesta arpeggio", ("bass", "arp")),
    ("cosy lo-fi keys and hazy drums", ("keys", "drums")),
    ("legato strings over a brooding bassline", ("strings", "bass")),
    ("a hip hop beat, a jazz guitar, an upright bass", ("drums", "guitar", "bass")),
    ("playful pluck riff and piano", ("pluck", "keys")),
    ("euphoric lead and a filter-sweep pad", ("lead", "pad")),
    ("heavy drums plus reese-style synth bass", ("drums", "bass")),
    ("electric piano chords with a saw arp", ("keys", "arp")),
    ("acoustic guitar and warm strings", ("guitar", "strings")),
    ("a marimba pluck and a deep bass", ("pluck", "bass")),
    ("percussion loop, e-piano, sub", ("drums", "keys", "bass")),
    ("sweeping strings and a lead line", ("strings", "lead")),
    ("gentle pad chords with a rhodes", ("pad", "keys")),
    ("tight hats and kick with a slap bass riff", ("drums", "bass")),
    ("vintage keyboard and a muted guitar", ("keys", "guitar")),
    ("ominous cinematic drums and bowed strings", ("drums", "strings")),
    ("bright synth arp, sunny lead, light beat", ("arp", "lead", "drums")),
    ("moody bass, crunchy guitar, and drums", ("bass", "guitar", "drums")),
    ("an atmospheric pad with a plucked harp", ("pad", "pluck")),
    ("grand piano over a trip-hop groove with a bass line", ("keys", "drums", "bass")),
)
ROLE_TEXT = {
    "drums": "drum loop",
    "bass": "bass line",
    "keys": "piano keys",
    "pad": "synth pad",
    "lead": "synth lead melody",
    "arp": "arpeggio",
    "pluck": "plucked melody",
    "strings": "string section",
    "guitar": "guitar",
}

# This file's own idea of a contradiction (deliberately not rag.conditioning's tables).
GENRE_SPELLINGS = {
    "house": ("house",), "techno": ("techno",), "trance": ("trance",),
    "hip-hop": ("hip hop", "boom bap", "trip-hop", "trip hop"), "lo-fi": ("lo-fi", "lofi"),
    "trap": ("trap",), "drum-and-bass": ("drum and bass", "dnb"), "funk": ("funk",),
    "rock": ("rock",), "reggaeton": ("reggaeton", "dembow"), "breakbeat": ("breakbeat",),
    "pop": ("pop",), "cinematic": ("cinematic",), "ambient": ("ambient",),
}  # fmt: skip
MOOD_OPPOSITES = {
    "dark": {"bright", "uplifting", "playful", "dreamy"},
    "moody": {"bright", "uplifting", "playful", "dreamy"},
    "brooding": {"bright", "uplifting", "playful"},
    "ominous": {"bright", "uplifting", "playful", "chill"},
    "bright": {"dark", "melancholic", "tense"},
    "sunny": {"dark", "melancholic", "tense"},
    "uplifting": {"dark", "melancholic", "tense"},
    "euphoric": {"dark", "melancholic"},
    "sad": {"bright", "uplifting", "playful"},
    "melancholic": {"bright", "uplifting", "playful"},
    "chill": {"aggressive", "energetic", "tense"},
    "laid-back": {"aggressive", "energetic", "tense"},
    "aggressive": {"chill", "dreamy"},
    "gentle": {"aggressive", "gritty"},
    "tense": {"chill", "playful", "uplifting"},
    "dreamy": {"aggressive", "gritty"},
    "hazy": {"aggressive", "gritty"},
    "mellow": {"aggressive"},
    "cosy": {"aggressive", "tense"},
    "playful": {"dark", "tense"},
    "energetic": {"chill"},
}
MODES = {"minor": "major", "major": "minor"}


def contradictions(prompt: str, added: Sequence[str]) -> list[str]:
    """Added phrases that contradict the prompt, by this bench's tables."""
    text = f" {prompt.lower().replace(',', ' ')} "
    moods = {w for w in MOOD_OPPOSITES if f" {w} " in text}
    asked = [m for m in MODES if f" {m} " in text]
    wrong = []
    for phrase in added:
        unnamed_genre = phrase in GENRE_SPELLINGS and not any(
            s in text for s in GENRE_SPELLINGS[phrase]
        )
        opposed_mood = any(phrase in MOOD_OPPOSITES[m] for m in moods)
        other_mode = bool(asked) and phrase.endswith(f" {MODES[asked[0]]}")
        if unnamed_genre or opposed_mood or other_mode:
            wrong.append(phrase)
    return wrong


def compatible(manifest: dict[str, Any]) -> bool:
    """Every layered seed fits the take's tempo (×1.12) and key (2 semitones), checked here."""
    bpm, key = manifest["targets"]["bpm"], manifest["targets"]["key"]
    for seed in manifest["seeds"]:
        if not seed["layered"]:
            continue
        align = seed["alignment"]
        source_bpm, source_key = align.get("source_bpm"), align.get("source_key")
        if bpm and source_bpm:
            ratio = bpm / fold_bpm(float(source_bpm), bpm)
            if max(ratio, 1 / ratio) > 1.12 + 1e-9:
                return False
        pitched = seed["instrument"] not in ("drums", "fx")
        if key and source_key and pitched and abs(semitones_between(source_key, key)) > 2:
            return False
    return True


def covered(manifest: dict[str, Any], roles: Sequence[str]) -> bool:
    layered = {s["instrument"] for s in manifest["seeds"] if s["layered"]}
    return all((layered & set(HARMONIC)) if r == "harmonic" else r in layered for r in roles)


# -- today's top-k, reproduced -----------------------------------------------------------------


class TopK(Orchestrator):
    """Seeds as before the stack: top-k by the whole prompt, at most half from one role."""

    def _stack(self, request: GenerateRequest, pinned: list[Seed]):
        query = SearchRequest(
            text=request.prompt,
            catalogs=request.catalogs,
            uses=(SEED_USE,),
            limit=(request.top_k + len(pinned)) * 3,
        )
        hits = search(self.store, self.embedder, query)
        candidates = [
            Seed(h.id, h.payload, h.score) for h in hits if may_seed(allowed_uses(h.payload))
        ]
        seeds = pick_by_role(candidates, request.top_k)
        return None, seeds, {"status": RetrievalStatus.OK, "top_k": request.top_k}


def legacy_enrich_prompt(
    prompt: str,
    seeds: Sequence[Seed],
    *,
    bpm: float | None,
    key: str | None,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> tuple[str, list[str]]:
    """The enrichment before the stack: every seed's genre, family and tags, by weight."""
    votes: dict[str, float] = defaultdict(float)
    for seed in seeds:
        for phrase in (seed.payload.get("genre"), seed.payload.get("instrument")):
            if phrase:
                votes[str(phrase)] += seed.weight
        for tag in seed.payload.get("tags") or ():
            votes[str(tag)] += seed.weight * 0.5
    ranked = sorted(votes, key=lambda p: (-votes[p], p))
    if bpm:
        ranked.append(f"{bpm:.0f} BPM")
    if key:
        ranked.append(key)
    seen = set(_words(prompt))
    added: list[str] = []
    for phrase in ranked:
        phrase_words = _words(phrase)
        if phrase_words and not set(phrase_words) <= seen:
            added.append(phrase)
            seen.update(phrase_words)
    while added and count_tokens(_join(prompt, added)) > max_tokens:
        tags = [i for i, p in enumerate(added) if p in votes]
        added.pop(tags[-1] if tags else len(added) - 1)
    return _join(prompt, added), added


def _words(text: str) -> list[str]:
    return [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if w]


def _join(prompt: str, added: Sequence[str]) -> str:
    return ", ".join([prompt.strip(), *added]) if added else prompt.strip()


# -- the run -----------------------------------------------------------------------------------


def clap_to_roles(orchestrator: Orchestrator, wav: Path, roles: Sequence[str]) -> float:
    audio, sr = sf.read(wav, always_2d=True, dtype="float32")
    mono = resample(audio.mean(axis=1)[None], sr, CLAP_SR)[0]
    embedder = orchestrator.embedder
    a = embedder.embed_audio([mono])[0]
    texts = [ROLE_TEXT.get(r, "chords") for r in roles]
    t = embedder.embed_text(texts)
    a = a / np.linalg.norm(a)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    return float(np.mean(t @ a))


def retrieval_ms(orchestrator: Orchestrator, request: GenerateRequest, repeats: int = 3) -> float:
    """Median wall time of the orchestrator's retrieval step alone (text embedding, store
    queries, solving), repeated back to back so a render's load does not colour it."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        orchestrator._seeds(request)
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def run_one(orchestrator: Orchestrator, prompt: str, roles: Sequence[str], out: Path, args):
    request = GenerateRequest(
        prompt=prompt,
        duration_s=args.duration,
        top_k=args.top_k,
        strength=args.strength,
        steps=args.steps,
        seed=0,
        formats=("wav",),
    )
    ms = retrieval_ms(orchestrator, request)
    take = orchestrator.generate(request, out)
    manifest = take.manifest
    return {
        "prompt": prompt,
        "roles": list(roles),
        "seeds": [(s["instrument"], s["layered"]) for s in manifest["seeds"]],
        "added": manifest["prompt"]["added"],
        "covered": covered(manifest, roles),
        "compatible": compatible(manifest),
        "contradictions": contradictions(prompt, manifest["prompt"]["added"]),
        "retrieval_ms": ms,
        "clap": clap_to_roles(orchestrator, take.audio["wav"], roles),
        "target": [manifest["targets"]["bpm"], manifest["targets"]["key"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=len(PROMPTS), help="prompts to run")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=8, help="sampler steps (× strength run)")
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--strength", type=float, default=0.5)
    args = parser.parse_args()

    settings = get_settings()
    stack_orch = load_orchestrator(settings)
    topk_orch = TopK(**{f: getattr(stack_orch, f) for f in stack_orch.__dataclass_fields__})
    rows: dict[str, list[dict[str, Any]]] = {"stack": [], "top-k": []}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n, (prompt, roles) in enumerate(PROMPTS[: args.count]):
            rows["stack"].append(run_one(stack_orch, prompt, roles, Path(tmp) / "s", args))
            legacy, orchestrate.enrich_prompt = orchestrate.enrich_prompt, legacy_enrich_prompt
            try:
                rows["top-k"].append(run_one(topk_orch, prompt, roles, Path(tmp) / "t", args))
            finally:
                orchestrate.enrich_prompt = legacy
            print(f"{n + 1}/{args.count} {prompt!r}: stack {rows['stack'][-1]['seeds']}")
    stack_orch.store.close()

    def summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "coverage": sum(r["covered"] for r in rs) / len(rs),
            "compatible": sum(r["compatible"] for r in rs) / len(rs),
            "no_contradiction": sum(not r["contradictions"] for r in rs) / len(rs),
            "retrieval_ms_median": statistics.median(r["retrieval_ms"] for r in rs),
            "retrieval_ms_p95": float(np.percentile([r["retrieval_ms"] for r in rs], 95)),
            "clap_to_roles": statistics.mean(r["clap"] for r in rs),
        }

    result = {
        "prompts": len(rows["stack"]),
        "catalog": os.environ.get("AUDIORAG_DATA_DIR"),
        "settings": vars(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "wall_s": round(time.perf_counter() - started, 1),
        "summary": {name: summary(rs) for name, rs in rows.items()},
        "rows": rows,
    }
    diffs = [s["clap"] - t["clap"] for s, t in zip(rows["stack"], rows["top-k"], strict=True)]
    result["clap_difference"] = {
        "mean": statistics.mean(diffs),
        "stack_higher": sum(d > 0 for d in diffs),
        "top_k_higher": sum(d < 0 for d in diffs),
    }
    added_ms = [
        s["retrieval_ms"] - t["retrieval_ms"]
        for s, t in zip(rows["stack"], rows["top-k"], strict=True)
    ]
    result["added_retrieval_ms"] = {
        "median": statistics.median(added_ms),
        "p95": float(np.percentile(added_ms, 95)),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "stack_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "stack_eval.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        f"# Seed stacks vs top-k: {result['prompts']} multi-role prompts, held-out demo catalog",
        "",
        f"{result['machine']}; bundled CLAP and generator; {result['settings']['duration']:g} s "
        f"renders, {result['settings']['steps']} steps at strength "
        f"{result['settings']['strength']}, top-k {result['settings']['top_k']}, seed 0; "
        f"{result['wall_s']} s in all. Retrieval ms: the retrieval step alone (text embedding, "
        "store queries, solving), median of 3 back-to-back runs per prompt.",
        "",
        "| seeded by | role coverage | tempo/key compatible | no contradicting tag "
        "| retrieval ms (median / p95) | CLAP render ↔ named roles |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in s.items():
        lines.append(
            f"| {name} | {row['coverage']:.1%} | {row['compatible']:.1%} | "
            f"{row['no_contradiction']:.1%} | {row['retrieval_ms_median']:.1f} / "
            f"{row['retrieval_ms_p95']:.1f} | {row['clap_to_roles']:.4f} |"
        )
    d, added = result["clap_difference"], result["added_retrieval_ms"]
    lines += [
        "",
        f"CLAP similarity of the render to the named roles: stack − top-k = {d['mean']:+.4f} "
        f"on average; the stack's render is closer on {d['stack_higher']} prompts, top-k's on "
        f"{d['top_k_higher']}.",
        f"Added retrieval time per request (stack − top-k): median {added['median']:.1f} ms, "
        f"p95 {added['p95']:.1f} ms.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
