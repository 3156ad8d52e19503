"""A seed stack: one catalog item per role, mutually compatible in tempo and key.

A track is a stack of parts that agree — drums, bass and a harmonic part at one tempo, in one
key. Seeding a take with the k items nearest the whole prompt gives k drum loops as often as
not; a stack gives each role its best item *that fits the others*:

1. **Retrieval** (:func:`retrieve_roles`): the request's text/clip query runs once per role,
   filtered to the role's instrument families under the licence and catalog filters, all in one
   batched store call; each role's rankings are fused (RRF) as :func:`rag.search.search` does.
2. **Solving** (:func:`solve`): choose one candidate (or none) per role to cover as many roles
   as possible, then maximise the summed retrieval score less an alignment cost, subject to
   every chosen item fitting the stack's target tempo and key (:func:`fit`). Exact: every
   combination of the short candidate lists is enumerated, best first, with branch-and-bound.
3. **Targets**: the request's tempo/key, else a pinned item's, else those of the stack's best
   item (the *anchor*) — so a target is always a tempo/key some seed really has.

Pure functions over plain values, except :func:`retrieve_roles` which reads the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from audio.decode import file_sha256
from index.analysis import relative_key
from index.clap import ClapEmbedder
from index.manifest import allowed_uses, may_seed
from index.store import Filter, MatchAny, VectorQuery, VectorStore
from rag.conditioning import UNPITCHED, fold_bpm, semitones_between
from rag.roles import Role
from rag.search import SearchHit, SearchRequest, build_filter, embed_reference, fuse

TEMPO_EQUAL = 0.04  # within 4 % (after half/double time) a tempo counts as the same
MAX_STRETCH = 1.12  # time-stretch beyond ±12 % smears transients: such an item does not fit
MAX_SEMITONES = 2  # pitch-shift beyond a whole tone colours the timbre: no fit
TEMPO_COST = 0.5  # score lost per unit of |ln(stretch ratio)| (a 10 % stretch ≈ 5 ranks)
KEY_COST = 0.02  # score lost per semitone of pitch-shift
HOLDER_BONUS = 0.05  # score gained per item from the licence holder the prompt names
SHOWN_REJECTED = 3  # rejected candidates recorded per role


@dataclass(frozen=True)
class Limits:
    """How far an item may be aligned and still fit: a stretch ratio and a pitch shift."""

    max_stretch: float = MAX_STRETCH
    max_semitones: int = MAX_SEMITONES

    def relaxed(self, *, tempo: bool, key: bool) -> Limits:
        """Any stretch (at most ×√2 after half/double time) and/or any shift (at most a
        tritone): for a tempo or key the user asked for, which the catalog may not hold.

        >>> Limits().relaxed(tempo=True, key=False)
        Limits(max_stretch=1.5, max_semitones=2)
        """
        return Limits(1.5 if tempo else self.max_stretch, 6 if key else self.max_semitones)


STRICT = Limits()


@dataclass(frozen=True)
class Candidate:
    """A catalog item that could fill a role, with what the solver needs to know of it."""

    id: str
    score: float  # fused retrieval score within its role, (0, 1]; 1.0 for a pinned item
    family: str
    bpm: float | None = None
    key: str | None = None
    holder: str | None = None
    path: str | None = None
    pinned: bool = False

    @classmethod
    def of(
        cls, item_id: str, score: float, payload: Mapping[str, Any], *, pinned: bool = False
    ) -> Candidate:
        """A candidate from a stored point's payload."""
        licence = payload.get("licence") or {}
        bpm = payload.get("bpm")
        return cls(
            id=item_id,
            score=float(score),
            family=str(payload.get("instrument") or "unknown"),
            bpm=float(bpm) if bpm else None,
            key=payload.get("key") or None,
            holder=licence.get("holder") or None,
            path=payload.get("path"),
            pinned=pinned,
        )

    @property
    def pitched(self) -> bool:
        return self.family not in UNPITCHED and self.key is not None


@dataclass(frozen=True)
class Fit:
    """How a candidate meets the targets: the stretch and shift it needs, and whether allowed."""

    tempo_ratio: float = 1.0  # target / source tempo after half/double time; >1 plays faster
    tempo: str = "n/a"  # "same" | "half/double time" | "stretched" | "n/a" (no tempo to match)
    semitones: int = 0
    key: str = "n/a"  # "same" | "relative" | "shifted" | "n/a" (unpitched, or no key)
    reason: str | None = None  # why it does not fit; None when it does

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def cost(self) -> float:
        """Score given up for the alignment this fit needs."""
        return TEMPO_COST * abs(math.log(self.tempo_ratio)) + KEY_COST * abs(self.semitones)

    def to_json(self) -> dict[str, Any]:
        return {
            "tempo": self.tempo,
            "tempo_ratio": round(self.tempo_ratio, 4),
            "key": self.key,
            "semitones": self.semitones,
        }


def fit(candidate: Candidate, bpm: float | None, key: str | None, limits: Limits = STRICT) -> Fit:
    """How ``candidate`` fits target tempo ``bpm`` and key ``key`` (None: no target).

    Tempi match after half/double time; a stretch up to ``limits.max_stretch`` (×1.12) fits.
    Keys match when equal or relative; a shift up to ``limits.max_semitones`` (2) fits. Drums
    and fx have no key.

    >>> fit(Candidate("a", 1, "bass", bpm=62.0, key="C major"), 124.0, "A minor")
    Fit(tempo_ratio=1.0, tempo='half/double time', semitones=0, key='relative', reason=None)
    >>> pad = Candidate("b", 1, "pad", bpm=100.0, key="E minor")
    >>> print(fit(pad, 124.0, "A minor").reason.replace("; ", "\\n"))
    tempo 100 BPM needs ×1.24 to reach 124 (limit ×1.12)
    key E minor is 5 semitones from A minor (limit 2)
    """
    ratio, tempo, reasons = 1.0, "n/a", []
    if bpm and candidate.bpm:
        folded = fold_bpm(candidate.bpm, bpm)
        ratio = bpm / folded
        if abs(ratio - 1) > TEMPO_EQUAL:
            tempo = "stretched"
        else:
            tempo = "same" if folded == candidate.bpm else "half/double time"
        if max(ratio, 1 / ratio) > limits.max_stretch:
            reasons.append(
                f"tempo {candidate.bpm:g} BPM needs ×{max(ratio, 1 / ratio):.2f} to reach "
                f"{bpm:g} (limit ×{limits.max_stretch:g})"
            )
    shift, relation = 0, "n/a"
    if key and candidate.pitched:
        shift = semitones_between(str(candidate.key), key)
        relation = "same" if candidate.key == key else ("relative" if shift == 0 else "shifted")
        if abs(shift) > limits.max_semitones:
            reasons.append(
                f"key {candidate.key} is {abs(shift)} semitones from {key} "
                f"(limit {limits.max_semitones})"
            )
    return Fit(ratio, tempo, shift, relation, "; ".join(reasons) or None)


@dataclass
class Choice:
    """One role of the stack: the item chosen (or None, with the reason) and the best rejected."""

    role: Role
    candidate: Candidate | None
    fit: Fit | None = None
    reason: str | None = None  # why the role is empty
    rejected: list[tuple[Candidate, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        chosen = None
        if self.candidate is not None:
            c = self.candidate
            chosen = {
                "id": c.id,
                "path": c.path,
                "instrument": c.family,
                "score": round(c.score, 4),
                "pinned": c.pinned,
                "bpm": c.bpm,
                "key": c.key,
                "alignment": self.fit.to_json() if self.fit else None,
            }
        return {
            "role": self.role.name,
            "families": list(self.role.families),
            "chosen": chosen,
            "reason": self.reason,
            "rejected": [
                {"id": c.id, "path": c.path, "score": round(c.score, 4), "reason": why}
                for c, why in self.rejected
            ],
        }


@dataclass
class Stack:
    """The solved stack: a choice per role, and the targets every chosen item fits."""

    choices: list[Choice]
    bpm: float | None
    key: str | None
    bpm_from: str  # "request" | "pinned" | "stack" | "none"
    key_from: str
    holder: str | None = None  # the preferred licence holder, when the prompt named one
    limits: Limits = STRICT

    @property
    def chosen(self) -> list[Candidate]:
        return [c.candidate for c in self.choices if c.candidate is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": {
                "bpm": self.bpm,
                "key": self.key,
                "bpm_from": self.bpm_from,
                "key_from": self.key_from,
            },
            "preferred_holder": self.holder,
            "limits": {
                "max_stretch": self.limits.max_stretch,
                "max_semitones": self.limits.max_semitones,
            },
            "roles": [c.to_json() for c in self.choices],
        }


@dataclass(frozen=True)
class Slot:
    """A role to fill and its candidates, best first."""

    role: Role
    candidates: tuple[Candidate, ...]


def targets(
    chosen: Sequence[Candidate],
    *,
    bpm: float | None,
    key: str | None,
    mode: str | None = None,
) -> tuple[float | None, str | None, str, str]:
    """The stack's target tempo and key, and where each came from.

    The request's values win; else a pinned item's; else the best-scored chosen item's that
    has one (a key: the best *pitched* item's, turned to its relative when ``mode`` — the
    mode the prompt asked for — differs).

    >>> a = Candidate("a", 0.9, "drums", bpm=174.0)
    >>> b = Candidate("b", 0.8, "bass", bpm=87.0, key="C major")
    >>> targets([a, b], bpm=None, key=None, mode="minor")
    (174.0, 'A minor', 'stack', 'stack')
    """
    ranked = sorted(chosen, key=lambda c: (not c.pinned, -c.score))
    bpm_from, key_from = "request", "request"
    if not bpm:
        anchor = next((c for c in ranked if c.bpm), None)
        bpm = anchor.bpm if anchor else None
        bpm_from = "none" if anchor is None else ("pinned" if anchor.pinned else "stack")
    if not key:
        anchor = next((c for c in ranked if c.pitched), None)
        key = anchor.key if anchor else None
        key_from = "none" if anchor is None else ("pinned" if anchor.pinned else "stack")
        if key and mode and key.split()[1] != mode:
            key = relative_key(key)
    return bpm, key, bpm_from, key_from


def solve(
    slots: Sequence[Slot],
    *,
    pinned: Sequence[Candidate] = (),
    bpm: float | None = None,
    key: str | None = None,
    mode: str | None = None,
    prefer_holder: str | None = None,
    limits: Limits = STRICT,
) -> Stack:
    """The best compatible stack: one candidate (or none) per slot.

    Maximises, in order: the number of roles filled, then the sum over chosen items of
    ``score − fit.cost`` (+ ``HOLDER_BONUS`` for items of ``prefer_holder``), subject to every
    chosen item fitting the targets of :func:`targets`. Pinned items are always in the stack
    (they fill their roles first, anchor the targets, and are never refused). Exhaustive with
    branch-and-bound: candidates best first, a branch cut when even its best completion cannot
    beat the best stack found — exact, and fast for the short lists retrieval gives (8 a role).

    >>> drums = Slot(Role("drums", ("drums",)), (Candidate("d", 0.95, "drums", bpm=174.0),))
    >>> bass = Slot(Role("bass", ("bass",)), (
    ...     Candidate("b1", 0.9, "bass", bpm=120.0, key="A minor"),
    ...     Candidate("b2", 0.8, "bass", bpm=86.0, key="A minor")))
    >>> stack = solve([drums, bass])
    >>> [c.id for c in stack.chosen], stack.bpm, stack.key
    (['d', 'b2'], 174.0, 'A minor')
    >>> stack.choices[1].rejected[0][1]
    'tempo 120 BPM needs ×1.38 to reach 174 (limit ×1.12)'
    """
    fits: dict[tuple[str, float | None, str | None], Fit] = {}

    def fit_of(c: Candidate, t_bpm: float | None, t_key: str | None) -> Fit:
        cache_key = (c.id, t_bpm, t_key)
        if cache_key not in fits:
            fits[cache_key] = fit(c, t_bpm, t_key, limits)
        return fits[cache_key]

    def bonus(c: Candidate) -> float:
        return HOLDER_BONUS if prefer_holder and c.holder == prefer_holder else 0.0

    def evaluate(picks: Sequence[Candidate | None]) -> float | None:
        """The value of a full assignment, or None when an item does not fit."""
        chosen = [c for c in picks if c is not None]
        t_bpm, t_key, _, _ = targets([*pinned, *chosen], bpm=bpm, key=key, mode=mode)
        value = 0.0
        for c in chosen:
            f = fit_of(c, t_bpm, t_key)
            if not f.ok:
                return None
            value += c.score - f.cost + bonus(c)
        return value

    best_rank: tuple[int, float] = (-1, -math.inf)
    best: list[Candidate | None] = [None] * len(slots)
    # Upper bounds of what slots i… can still add (fits only ever cost).
    tail_cover = [0] * (len(slots) + 1)
    tail_value = [0.0] * (len(slots) + 1)
    for i in range(len(slots) - 1, -1, -1):
        cands = slots[i].candidates
        tail_cover[i] = tail_cover[i + 1] + (1 if cands else 0)
        top = max((c.score + bonus(c) for c in cands), default=0.0)
        tail_value[i] = tail_value[i + 1] + max(top, 0.0)

    def visit(i: int, picks: list[Candidate | None], cover: int, value: float) -> None:
        nonlocal best_rank, best
        if (cover + tail_cover[i], value + tail_value[i]) <= best_rank:
            return  # even the best completion cannot win
        if i == len(slots):
            exact = evaluate(picks)
            if exact is not None and (cover, exact) > best_rank:
                best_rank, best = (cover, exact), list(picks)
            return
        taken = {c.id for c in picks if c is not None}
        for c in slots[i].candidates:
            if c.id not in taken:
                visit(i + 1, [*picks, c], cover + 1, value + c.score + bonus(c))
        visit(i + 1, [*picks, None], cover, value)

    visit(0, [], 0, 0.0)
    chosen = [c for c in best if c is not None]
    t_bpm, t_key, bpm_from, key_from = targets([*pinned, *chosen], bpm=bpm, key=key, mode=mode)
    choices = [Choice(Role(c.family, (c.family,)), c, fit_of(c, t_bpm, t_key)) for c in pinned]
    for slot, pick in zip(slots, best, strict=True):
        choices.append(_choice(slot, pick, lambda c: fit_of(c, t_bpm, t_key)))
    return Stack(choices, t_bpm, t_key, bpm_from, key_from, prefer_holder, limits)


def _choice(slot: Slot, pick: Candidate | None, fit_to: Any) -> Choice:
    """The slot's choice, with its best rejected candidates and why each was left out."""
    rejected = []
    for c in slot.candidates:
        if c is pick or len(rejected) >= SHOWN_REJECTED:
            continue
        f = fit_to(c)
        if not f.ok:
            why = f.reason
        elif pick is not None and c.score <= pick.score:
            why = f"ranked below the chosen item ({c.score:.3f} ≤ {pick.score:.3f})"
        else:
            why = "a stack with it scores lower in total (its tempo/key would not suit the rest)"
        rejected.append((c, why))
    if pick is not None:
        return Choice(slot.role, pick, fit_to(pick), rejected=rejected)
    reason = (
        "no candidate fits the stack's tempo and key"
        if slot.candidates
        else "no item licensed for seeding in scope"
    )
    return Choice(slot.role, None, None, reason, rejected)


# -- retrieval -------------------------------------------------------------------------------


def retrieve_roles(
    store: VectorStore,
    embedder: ClapEmbedder,
    request: SearchRequest,
    roles: Sequence[Role],
    *,
    depth: int,
) -> list[list[SearchHit]]:
    """The ``depth`` best seedable items of each role for ``request``, in one store call.

    Every query of ``request`` (text → audio and caption vectors, a reference clip → audio
    and timbre vectors) runs once per role under the request's filters (licence uses, catalog scope,
    genre, …) plus the role's families; each role's rankings are fused as
    :func:`rag.search.search` fuses them. Items whose licence does not allow seeding are
    dropped again here, belt and braces.
    """
    queries: list[tuple[str, str, Any]] = []
    exclude = None
    if request.text and request.text.strip():
        text_vector = embedder.embed_text([request.text.strip()])[0]
        queries += [("text→audio", "audio", text_vector), ("text→caption", "text", text_vector)]
    if request.like is not None:
        clip_vector, clip_timbre = embed_reference(embedder, request.like)
        queries.append(("clip→audio", "audio", clip_vector))
        if clip_timbre is not None:
            queries.append(("clip→timbre", "timbre", clip_timbre))
        if not request.include_reference:
            exclude = file_sha256(request.like)
    if not queries or not roles:
        return [[] for _ in roles]
    base = build_filter(replace(request, instrument=None), exclude_sha256=exclude)
    limit = max(depth * 4, 50)  # fuse over deeper lists than we keep, as search() does
    batch = [
        VectorQuery(
            name,
            vector,
            Filter(must=(base, MatchAny("instrument", role.families))),
            limit=limit,
        )
        for role in roles
        for _, name, vector in queries
    ]
    results = store.search_batch(batch, embedder_id=embedder.embedder.id)
    out = []
    for n, _ in enumerate(roles):
        rankings = {label: results[n * len(queries) + q] for q, (label, _, _) in enumerate(queries)}
        hits = fuse(rankings, depth)
        out.append([h for h in hits if may_seed(allowed_uses(h.payload))])
    return out


def depth_for(roles: int) -> int:
    """Candidates kept per role: 8 for up to three roles, fewer as roles multiply, so the
    exhaustive solver stays in the low milliseconds.

    >>> [depth_for(n) for n in (1, 3, 4, 6, 9)]
    [8, 8, 5, 3, 2]
    """
    if roles <= 3:
        return 8
    return max(2, round(20 / roles))
