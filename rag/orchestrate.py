"""A request in, a delivered take out: guardrails → retrieval → conditioning → render → output.

The :class:`Orchestrator` holds the loaded components (store, CLAP, generator, guardrails,
watermark, provenance log) and runs one request at a time through them. Only items whose
licence allows ``generation-seed`` can seed a take — enforced by the store filter and checked
again on every hit — and every seed is recorded in the take's manifest with its licence, weight
and the alignment applied to it.

Retrieval seeds a *stack*, one item per role (``rag/roles.py`` reads the roles from the request;
``rag/stack.py`` retrieves each role's candidates in one batched store call and picks the best
combination that agrees in tempo and key). The manifest's ``stack`` records each role's choice,
its alignment and the best candidates rejected, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from audio.decode import Limits, UnusableFile, decode_audio
from audio.signal import match_channels, resample
from generation.interface import (
    Cancelled,
    Generator,
    GeneratorLimits,
    RenderInputError,
    RenderLimits,
    RenderSettings,
    checked_settings,
)
from index.analysis import normalise_key
from index.clap import ClapEmbedder
from index.manifest import SEED_USE
from index.payload import ItemPayload
from index.store import VectorStore
from rag.catalogs import CatalogRoots
from rag.conditioning import (
    Seed,
    assign_weights,
    build_init_audio,
    consensus_bpm,
    consensus_key,
    enrich_prompt,
    prompt_mode,
)
from rag.errors import GenerationError
from rag.guardrails import BlockedPrompt, Guardrails, mentions
from rag.roles import UnknownRole, request_roles, role_named
from rag.rules import seed_refusal
from rag.search import SearchError, SearchRequest, build_filter
from rag.stack import STRICT, Candidate, Slot, Stack, depth_for, retrieve_roles, solve
from rag.takes import (
    RetrievalStatus,
    Take,
    TakeManifest,
    TakeMode,
    new_take_id,
    write_take,
)

__all__ = [
    "BlockedPrompt",
    "Cancelled",
    "GenerateRequest",
    "GenerationError",
    "Orchestrator",
    "Take",
]

DEFAULT_STRENGTH = 0.6  # audio-to-audio: enough noise to re-imagine, enough init to keep style
MAX_TOP_K = 16
DEEPER = 2  # a role nothing in its top few fits is looked for this many times deeper


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    negative_prompt: str | None = None
    duration_s: float = 10.0
    bpm: float | None = None
    key: str | None = None
    like: Path | None = None  # reference clip for retrieval
    top_k: int = 4
    strength: float | None = None  # None → 0.6 seeded, 1.0 in-painting; 0 keeps init, 1 ignores it
    steps: int | None = None  # None → the generator's default
    cfg: float | None = None
    seed: int = 0
    catalogs: tuple[str, ...] | None = None  # retrieval restricted to these (tenancy); None = all
    pinned: tuple[str, ...] = ()  # item ids that always seed (sessions)
    retrieval: bool = True
    instrument: str | None = None
    genre: str | None = None
    inpaint: Path | None = None  # a clip to regenerate in [inpaint_from_s, inpaint_to_s)
    inpaint_from_s: float | None = None
    inpaint_to_s: float | None = None
    formats: tuple[str, ...] = ("wav", "flac")
    # Parts to seed, e.g. ("drums", "bass", "pad"); () → the roles the prompt names, else the
    # style's default arrangement (rag/roles.py). Retrieval seeds one item per role.
    roles: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


class Watermarker(Protocol):
    id: str

    def embed(self, audio: np.ndarray, sample_rate: int, payload: int) -> np.ndarray: ...


class Provenance(Protocol):
    def record(self, payload: int, manifest: dict) -> None: ...


ProgressFn = Callable[[int, int], None]


@dataclass
class Orchestrator:
    store: VectorStore
    embedder: ClapEmbedder
    # The loaded generator; or only its limits for a check-only orchestrator (an API replica
    # whose render workers run elsewhere: it refuses bad requests at submit, renders nothing).
    generator: Generator | GeneratorLimits
    guardrails: Guardrails
    catalog_roots: CatalogRoots
    watermarker: Watermarker | None = None
    provenance: Provenance | None = None

    @property
    def limits(self) -> RenderLimits:
        """What requests are checked against: the generator's rate, channels, longest take and
        defaults (a loaded generator and its :class:`GeneratorLimits` both have them)."""
        return self.generator

    def renderer(self) -> Generator:
        """The loaded generator; a check-only orchestrator has none and refuses to render."""
        if isinstance(self.generator, GeneratorLimits):
            raise GenerationError(
                "this process only checks requests (it holds the generator's limits, not its "
                "weights); render workers render them"
            )
        return self.generator

    def generate(
        self,
        request: GenerateRequest,
        out_dir: Path,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> Take:
        """Render ``request`` into ``out_dir/<take id>/``; see the module docstring."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        generator = self.renderer()
        request, settings, inpaint_audio = self._validated(request)
        t0 = time.perf_counter()
        seeds, retrieval, stack = self._seeds(request)
        timings["retrieval_s"] = time.perf_counter() - t0
        # guardrails see the user's words; seeds can only license, never add, a term
        self.guardrails.check(request.prompt, self._licensed_names(request, seeds))

        if stack is not None:  # the targets every item of the stack was chosen to fit
            bpm, key = stack.bpm, stack.key
        else:
            bpm = request.bpm or consensus_bpm(seeds)
            key = request.key or consensus_key(seeds)
        prompt, added = enrich_prompt(
            request.prompt,
            seeds,
            bpm=bpm,
            key=key,
            count_tokens=generator.count_tokens,
            max_tokens=generator.max_prompt_tokens,
        )
        settings = replace(settings, prompt=prompt)
        t0 = time.perf_counter()
        init, mode = self._init_audio(request, settings, seeds, bpm, key, inpaint_audio)
        timings["conditioning_s"] = time.perf_counter() - t0
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before rendering")
        try:
            result = generator.render(settings, init, progress=progress, cancel=cancel)
        except RenderInputError as err:
            raise GenerationError(str(err)) from err

        manifest = self._manifest(
            generator, request, settings, seeds, retrieval, added, bpm, key, mode
        )
        if stack is not None:
            manifest["stack"] = {"roles_from": retrieval.get("roles_from"), **stack.to_json()}
        manifest["sampler"] = {**result.sampler, "seed": settings.seed}
        audio, watermark = self._watermark(result.audio, result.sample_rate, manifest)
        manifest["watermark"] = watermark
        manifest["timings_s"] = {
            **{k: round(v, 4) for k, v in timings.items()},
            "render": result.timings_s,
            "total_s": round(time.perf_counter() - started, 4),
        }
        take_id = new_take_id()
        record = TakeManifest(take_id=take_id, **manifest)
        take = write_take(out_dir, take_id, audio, result.sample_rate, record, request.formats)
        if self.provenance is not None and watermark.get("payload_int") is not None:
            self.provenance.record(int(watermark["payload_int"]), take.manifest)
        return take

    def check(self, request: GenerateRequest) -> None:
        """Refuse now what :meth:`generate` would refuse before rendering (needs only the
        generator's :attr:`limits`, so a check-only orchestrator can).

        Bad fields, unreadable clips and blocked prompt terms raise :class:`GenerationError`
        (or :class:`BlockedPrompt`) — for a service that must answer 422 at submit time rather
        than fail a queued job later.
        """
        request, _, _ = self._validated(request)
        self.guardrails.check(request.prompt, self._licensed_names(request, []))

    # -- steps -------------------------------------------------------------------------------

    def _validated(
        self, request: GenerateRequest
    ) -> tuple[GenerateRequest, RenderSettings, np.ndarray | None]:
        """Check every field before any work, so bad input fails fast with a clear message.

        The request's own fields are checked here; the render settings by the generator's
        :func:`~generation.interface.checked_settings` (the same check it applies before
        rendering), which also makes an in-paint's duration its clip's. Returns the request
        with defaults filled in, the settings, and the in-paint clip (or None).
        """
        gen = self.limits
        if not request.prompt or not request.prompt.strip():
            raise GenerationError("prompt is empty")
        inpainting = request.inpaint is not None
        strength = request.strength
        if strength is None:
            strength = 1.0 if inpainting else DEFAULT_STRENGTH
        if not 0 <= request.top_k <= MAX_TOP_K:
            raise GenerationError(f"top_k {request.top_k} is outside [0, {MAX_TOP_K}]")
        if request.bpm is not None and not 20 <= request.bpm <= 400:
            raise GenerationError(f"bpm {request.bpm:g} is outside [20, 400]")
        key = request.key
        if key:
            try:
                key = normalise_key(key)
            except ValueError as err:
                raise GenerationError(f"key: {err}") from err
        try:
            roles = tuple(role_named(name).name for name in request.roles)
        except UnknownRole as err:
            raise GenerationError(str(err)) from err
        unknown = set(request.formats) - {"wav", "flac"}
        if unknown or not request.formats:
            raise GenerationError(f"formats must be among wav, flac; got {request.formats}")
        if request.like is not None and not Path(request.like).is_file():
            raise GenerationError(f"reference clip not found: {request.like}")
        request = replace(request, strength=strength, key=key, roles=roles)
        clip = self._inpaint_clip(request)
        settings = RenderSettings(
            prompt=request.prompt.strip(),
            negative_prompt=(request.negative_prompt or "").strip() or None,
            duration_s=request.duration_s,
            steps=request.steps or gen.default_steps,
            cfg=gen.default_cfg if request.cfg is None else request.cfg,
            seed=request.seed,
            strength=strength,
            inpaint_range_s=(
                (request.inpaint_from_s or 0.0, request.inpaint_to_s or 0.0) if inpainting else None
            ),
        )
        try:
            settings = checked_settings(settings, clip, gen.sample_rate, gen.max_duration_s)
        except RenderInputError as err:
            raise GenerationError(str(err)) from err
        return request, settings, clip

    def _inpaint_clip(self, request: GenerateRequest) -> np.ndarray | None:
        """The clip to in-paint at the generator's rate and channels (its range is checked
        with the settings)."""
        if request.inpaint is None:
            return None
        if request.inpaint_from_s is None or request.inpaint_to_s is None:
            raise GenerationError("in-painting needs both a start and an end time (--from, --to)")
        clip = _decode(request.inpaint, "in-paint clip")
        audio = resample(clip.samples, clip.sr, self.limits.sample_rate)
        return match_channels(audio, self.limits.channels)

    def _seeds(self, request: GenerateRequest) -> tuple[list[Seed], dict[str, Any], Stack | None]:
        """Pinned items first, then one retrieved item per role (the stack); every one licensed
        for seeding. Returns the seeds, the retrieval record and the stack (None when retrieval
        did not run)."""
        seeds = [self._pinned(item_id, request) for item_id in dict.fromkeys(request.pinned)]
        retrieval: dict[str, Any] = {"status": RetrievalStatus.DISABLED, "top_k": request.top_k}
        stack = None
        if request.retrieval and request.top_k > 0:
            stack, retrieved, retrieval = self._stack(request, seeds)
            seeds += retrieved
        for seed in seeds:
            seed.path = self.catalog_roots.resolve(seed.payload)
        assign_weights(seeds)
        return seeds, retrieval, stack

    def _stack(
        self, request: GenerateRequest, pinned: list[Seed]
    ) -> tuple[Stack, list[Seed], dict[str, Any]]:
        """The roles to seed, their candidates (one batched store query) and the solved stack."""
        roles, source = request_roles(
            request.prompt,
            explicit=request.roles,
            instrument=request.instrument,
            pinned_families=[s.family for s in pinned],
            limit=request.top_k,
        )
        depth = depth_for(len(roles))
        query = SearchRequest(
            text=request.prompt,
            like=request.like,
            catalogs=request.catalogs,
            genre=request.genre,
            uses=(SEED_USE,),
            limit=depth * DEEPER,
        )
        try:
            hits = retrieve_roles(self.store, self.embedder, query, roles, depth=depth * DEEPER)
        except SearchError as err:
            raise GenerationError(str(err)) from err
        taken = {s.id for s in pinned}
        payloads = {hit.id: hit.payload for role_hits in hits for hit in role_hits}
        deep = [
            Slot(
                role,
                tuple(
                    Candidate.of(h.id, h.score, h.payload) for h in role_hits if h.id not in taken
                ),
            )
            for role, role_hits in zip(roles, hits, strict=True)
        ]
        holders = {c.holder for slot in deep for c in slot.candidates if c.holder}
        solve_with = partial(
            solve,
            pinned=[Candidate.of(s.id, s.score, s.payload, pinned=True) for s in pinned],
            bpm=request.bpm,
            key=request.key,
            mode=prompt_mode(request.prompt),
            prefer_holder=self._named_holder(request.prompt, holders),
        )
        fillable = len(pinned) + sum(1 for slot in deep if slot.candidates)
        stack = solve_with([Slot(slot.role, slot.candidates[:depth]) for slot in deep])
        if len(stack.chosen) < fillable:
            # A role left empty: nothing in its top few fits the rest. Look deeper in the same
            # hits (no second store call) before giving it up.
            deeper = solve_with(deep)
            if len(deeper.chosen) > len(stack.chosen):
                stack = deeper
        if (request.bpm or request.key) and len(stack.chosen) < fillable:
            # The user's own tempo/key may lie beyond the catalog's reach: stretch or shift as
            # far as it takes (every seed is still aligned to the one target) before leaving a
            # role empty.
            relaxed = STRICT.relaxed(tempo=bool(request.bpm), key=bool(request.key))
            wider = solve_with(deep, limits=relaxed)
            if len(wider.chosen) > len(stack.chosen):
                stack = wider
        seeds = [Seed(c.id, payloads[c.id], c.score) for c in stack.chosen if not c.pinned]
        retrieval = {
            "status": RetrievalStatus.OK if seeds else RetrievalStatus.EMPTY,
            "top_k": request.top_k,
            "embedder": self.embedder.embedder.id,
            "filters": {
                "uses": [SEED_USE],
                "catalogs": list(request.catalogs) if request.catalogs is not None else None,
                "instrument": request.instrument,
                "genre": request.genre,
            },
            "query": {"text": request.prompt, "like": str(request.like or "") or None},
            "roles": [role.name for role in roles],
            "roles_from": source,
        }
        return stack, seeds, retrieval

    def _named_holder(self, prompt: str, holders: set[str]) -> str | None:
        """The licence holder the prompt names (an artist-scoped request), if any: by its
        name, or by a guarded term it licenses ("like Mira Okafor" → Mira Okafor Productions)."""
        terms = self.guardrails.blocked_in(prompt)
        for holder in sorted(holders):
            if mentions(prompt, holder) or any(mentions(holder, term) for term in terms):
                return holder
        return None

    def _pinned(self, item_id: str, request: GenerateRequest) -> Seed:
        points = self.store.retrieve([item_id])
        refusal = seed_refusal(item_id, points[0].payload if points else None, request.catalogs)
        if refusal is not None:
            raise refusal
        return Seed(item_id, points[0].payload, 1.0, pinned=True)

    def _licensed_names(self, request: GenerateRequest, seeds: list[Seed]) -> set[str]:
        """Licence holders/attributions in scope — only looked up when a blocked term appears."""
        if not self.guardrails.blocked_in(request.prompt):
            return set()
        scope = build_filter(SearchRequest(catalogs=request.catalogs, uses=(SEED_USE,)))
        names: set[str] = set()
        for point in self.store.scroll(scope):
            licence = ItemPayload.read(point.payload).licence
            names.update(name for name in (licence.holder, licence.attribution) if name)
        return names

    def _init_audio(
        self,
        request: GenerateRequest,
        settings: RenderSettings,
        seeds: list[Seed],
        bpm: float | None,
        key: str | None,
        inpaint_audio: np.ndarray | None,
    ) -> tuple[np.ndarray | None, TakeMode]:
        gen = self.limits
        if inpaint_audio is not None:
            return inpaint_audio, TakeMode.IN_PAINT
        if not seeds or settings.strength >= 1.0:
            return None, TakeMode.TEXT_TO_AUDIO
        init = build_init_audio(
            seeds,
            target_bpm=bpm,
            target_key=key,
            sample_rate=gen.sample_rate,
            channels=gen.channels,
            length=round(settings.duration_s * gen.sample_rate),
        )
        if init is None:
            return None, TakeMode.TEXT_TO_AUDIO
        return init, TakeMode.AUDIO_TO_AUDIO

    def _manifest(
        self,
        gen: Generator,
        request: GenerateRequest,
        settings: RenderSettings,
        seeds: list[Seed],
        retrieval: dict[str, Any],
        added: list[str],
        bpm: float | None,
        key: str | None,
        mode: TakeMode,
    ) -> dict[str, Any]:
        """The manifest's fields known before rendering (see :class:`TakeManifest`)."""
        return {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": mode,
            "request": request.to_json(),
            "prompt": {
                "user": request.prompt,
                "enriched": settings.prompt,
                "added": added,
                "negative": settings.negative_prompt,
            },
            "retrieval": retrieval,
            "seeds": [_seed_record(s) for s in seeds],
            "targets": {
                "duration_s": settings.duration_s,
                "bpm": bpm,
                "key": key,
                "sample_rate": gen.sample_rate,
                "channels": gen.channels,
            },
            "model": {
                "id": gen.id,
                "family": gen.family,
                "weights_sha256": gen.weights_sha256,
                "notice": None,  # kept in the schema: no model we load needs a warning today
            },
        }

    def _watermark(
        self, audio: np.ndarray, sample_rate: int, manifest: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if self.watermarker is None:
            return audio, {"scheme": None}
        payload = take_payload(manifest)
        marked = self.watermarker.embed(audio, sample_rate, payload)
        return marked, {
            "scheme": self.watermarker.id,
            "payload": f"{payload:08x}",
            "payload_int": payload,
        }


def take_payload(manifest: dict[str, Any]) -> int:
    """The take's 32-bit watermark payload: a hash of what decides its audio.

    Derived, not random, so the same request and seed give the same file bit for bit; two
    identical renders share a payload — and a provenance record, which is then the same.
    """
    identity = {
        "request": manifest["request"],
        "prompt": manifest["prompt"],
        "seeds": [(s["id"], s["weight"]) for s in manifest["seeds"]],
        "model": manifest["model"]["weights_sha256"],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    return int.from_bytes(digest.digest()[:4], "big")


def _seed_record(seed: Seed) -> dict[str, Any]:
    item = ItemPayload.read(seed.payload)
    licence = item.licence
    return {
        "id": seed.id,
        "catalog": item.catalog,
        "path": item.path,
        "kind": item.kind,
        "instrument": item.instrument,
        "caption": item.caption,
        "score": round(seed.score, 4),
        "weight": seed.weight,
        "pinned": seed.pinned,
        "layered": seed.layered,
        "licence": {
            "id": licence.id,
            "holder": licence.holder,
            "allowed_uses": licence.allowed_uses,
            "attribution": licence.attribution,
        },
        "alignment": seed.alignment,
    }


def _decode(path: Path, what: str):
    if not Path(path).is_file():
        raise GenerationError(f"{what} not found: {path}")
    try:
        return decode_audio(Path(path), Limits())
    except UnusableFile as err:
        raise GenerationError(f"{what} {Path(path).name}: {err}") from err
