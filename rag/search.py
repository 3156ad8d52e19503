"""Searching the catalog: by text, by an example clip, or both, under filters.

Each query vector runs as its own nearest-neighbour search (a text prompt against the items'
audio vectors — CLAP's cross-modal match — and against their caption vectors; a reference clip
against the audio vectors and against the timbre vectors of :mod:`index.timbre`, a fixed
descriptor that needs no model), and the rankings are fused with reciprocal-rank fusion. RRF
needs no calibration between cross-modal and same-modal cosines, whose scales differ a lot.

A prompt that names a sound the way file names do ("kick", "hi-hat", "cello": the vocabulary of
:mod:`index.names`) adds two rankings: a lexical one, the items whose names say that sound (or
whose instrument is that family), in the order the other rankings give them — a model that has
never heard a word still finds the files named with it; and the items' timbre vectors against
that sound's timbre prototype — a kick is found by how it sounds even where nothing names it.
A reference clip adds the lexical ranking of what its name (or, when it is in the catalog, its
indexed item) says it is: other files named as that sound first, then others of its family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audio.decode import Limits, decode_audio, file_sha256
from audio.signal import resample
from index.analysis import ONE_SHOT_MAX_SECONDS, normalise_key, relative_key
from index.clap import SAMPLE_RATE as CLAP_SR
from index.clap import ClapEmbedder
from index.names import NameLabel, label_words, name_label, names_only_a_sound, words
from index.payload import caption_says_what_it_is
from index.prepare import padded_hit
from index.store import Filter, Hit, Match, MatchAny, Range, VectorStore
from index.timbre import shipped_model, timbre_vector

RRF_K = 60  # the usual constant: damps the weight of the very top ranks
# Weight of the lexical name ranking in the fusion. At 3, an item whose name says what the
# prompt asks for and that ranks in the name list's top 10 (3/70) outscores any item the two
# model rankings put first together (2/61): a file named "kick" answers "kick" before the
# model's guesses, and the model rankings order the named files among themselves.
NAME_WEIGHT = 3.0
# The timbre ranking of a prompt that names only a sound weighs 2 (as much as the prompt's two
# CLAP rankings) where files are named (or catalogued) as asked, and 6 where none is: then how
# a file sounds is the best evidence left. A reference clip's weighs 1 beside items named as
# it is, 3 where none is. Chosen on a development split (real sample packs, timbre net and
# prototypes trained without them: bench/fusion_weights_dev.py, bench/README.md), with two
# CLAPs bounding ours: one that never heard those files (the loops-only model) and the bundled
# one, which did. Names hidden, the prompt weight 3 → 6 moved family P@10 0.50 → 0.57 and
# 0.74 → 0.71, one-shot type 0.67 → 0.74 and 0.70 → 0.77; with names the weight beside named
# files fell from 2 on (family 0.97 → 0.94 at 3). The clip weight 1 → 3 moved by example
# 0.60 → 0.63 and 0.65 → 0.65 unnamed, but 0.93 → 0.89 beside named items.
TEXT_TIMBRE_WEIGHT = 2.0
TEXT_TIMBRE_WEIGHT_UNNAMED = 6.0
CLIP_TIMBRE_WEIGHT_UNNAMED = 3.0
RANKING_WEIGHTS: dict[str, float] = {
    "text→name": NAME_WEIGHT,
    "clip→name": NAME_WEIGHT,
    "text→timbre": TEXT_TIMBRE_WEIGHT,
}
# No catalog is named this (catalog names are printable), so an empty scope matches nothing.
NO_CATALOG = "\x00none"


@dataclass(frozen=True)
class SearchRequest:
    text: str | None = None
    like: Path | None = None  # a reference clip (any supported stem format)
    catalog: str | None = None
    catalogs: tuple[str, ...] | None = None  # restrict to these (tenancy); () matches nothing
    kind: str | None = None  # "stem" | "midi"
    instrument: str | None = None
    genre: str | None = None
    bpm: float | None = None
    bpm_tolerance: float = 4.0
    half_double: bool = True  # also match half- and double-time
    key: str | None = None
    compatible_key: bool = False  # also match the relative major/minor
    one_shot: bool | None = None  # True: hits only; False: loops only; None: both
    uses: tuple[str, ...] = ("search",)  # licence uses every hit must allow
    limit: int = 10
    include_reference: bool = False  # keep the reference clip itself when it is indexed


@dataclass
class SearchHit:
    id: str
    score: float  # fused rank score in (0, 1]; 1 = ranked first by every query
    payload: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)  # cosine per query

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": round(self.score, 4),
            "scores": self.scores,
            "payload": self.payload,
        }


class SearchError(ValueError):
    """A request that cannot be run; the message says what to change."""


def catalog_scope(catalogs: Sequence[str] | None) -> MatchAny | None:
    """The store condition keeping ``catalogs`` only; None (no condition) for every catalog.

    An empty scope must match nothing, not everything — a tenant with no catalogs sees none:

    >>> catalog_scope(()).values == (NO_CATALOG,), catalog_scope(None)
    (True, None)
    """
    if catalogs is None:
        return None
    return MatchAny("catalog", tuple(catalogs) or (NO_CATALOG,))


def in_catalog_scope(catalog: str | None, catalogs: Sequence[str] | None) -> bool:
    """Whether an item of ``catalog`` lies in the scope :func:`catalog_scope` filters on."""
    return catalogs is None or (catalog is not None and catalog in catalogs)


def build_filter(request: SearchRequest, exclude_sha256: str | None = None) -> Filter:
    """Translate the request's filters into the store's filter model.

    >>> f = build_filter(SearchRequest(bpm=120, bpm_tolerance=4))
    >>> [c.should[0] for c in f.must if isinstance(c, Filter)]
    [Range(key='bpm', gte=116.0, lte=124.0)]
    """
    must: list = [Match("licence.allowed_uses", use) for use in request.uses]
    scope = catalog_scope(request.catalogs)
    if scope is not None:
        must.append(scope)
    for key in ("catalog", "kind", "instrument", "genre"):
        value = getattr(request, key)
        if value:
            must.append(Match(key, value))
    if request.bpm is not None:
        if request.bpm <= 0 or request.bpm_tolerance < 0:
            raise SearchError("bpm must be positive and bpm tolerance not negative")
        factors = (1.0, 0.5, 2.0) if request.half_double else (1.0,)
        tol = request.bpm_tolerance
        must.append(
            Filter(
                should=tuple(
                    Range("bpm", gte=request.bpm * f - tol * f, lte=request.bpm * f + tol * f)
                    for f in factors
                )
            )
        )
    if request.key:
        try:
            key = normalise_key(request.key)
        except ValueError as err:
            raise SearchError(str(err)) from err
        keys = (key, relative_key(key)) if request.compatible_key else (key,)
        must.append(MatchAny("key", keys) if len(keys) > 1 else Match("key", key))
    if request.one_shot is not None:
        must.append(one_shot_condition(request.one_shot))
    must_not = (Match("sha256", exclude_sha256),) if exclude_sha256 else ()
    return Filter(must=tuple(must), must_not=must_not)


def one_shot_condition(one_shot: bool) -> Range:
    """Hits (``payload.one_shot``) or loops only, as a range on the indexed ``duration_s``.

    The flag is a function of the duration (``duration_s < ONE_SHOT_MAX_SECONDS``), and Qdrant
    Edge cannot match booleans, so the filter is the same rule on the duration.

    >>> one_shot_condition(False)
    Range(key='duration_s', gte=1.0, lte=None)
    """
    if one_shot:
        return Range("duration_s", lte=math.nextafter(ONE_SHOT_MAX_SECONDS, 0.0))
    return Range("duration_s", gte=ONE_SHOT_MAX_SECONDS)


def search(store: VectorStore, embedder: ClapEmbedder, request: SearchRequest) -> list[SearchHit]:
    """Run a search; with neither text nor a reference clip, list filtered items."""
    if request.limit < 1:
        raise SearchError("limit must be at least 1")
    # (label, vector name, query vector, extra condition)
    queries: list[tuple[str, str, Any, Filter | None]] = []
    exclude = None
    if request.text and request.text.strip():
        text_vector = embedder.embed_text([request.text.strip()])[0]
        queries += [
            ("text→audio", "audio", text_vector, None),
            ("text→caption", "text", text_vector, None),
        ]
        named = name_condition(request.text)
        if named is not None:
            queries.append(("text→name", "audio", text_vector, named))
        sounds_like = text_timbre(request.text)
        if sounds_like is not None:
            queries.append(("text→timbre", "timbre", sounds_like, None))
    reference = None
    if request.like is not None:
        clip_vector, clip_timbre = embed_reference(embedder, request.like)
        queries.append(("clip→audio", "audio", clip_vector, None))
        if clip_timbre is not None:
            queries.append(("clip→timbre", "timbre", clip_timbre, None))
        sha256 = file_sha256(request.like)
        reference = reference_label(store, request.like, sha256, request.catalogs)
        if reference is not None:
            queries.append(("clip→name", "audio", clip_vector, reference_condition(reference)))
        if not request.include_reference:
            exclude = sha256
    flt = build_filter(request, exclude_sha256=exclude)
    if not queries:
        return [SearchHit(p.id, 1.0, p.payload) for p in _first(store, flt, request.limit)]
    depth = max(request.limit * 4, 50)  # fuse over deeper lists than we return
    rankings = {
        label: store.search(
            name, vector, embedder_id=embedder.embedder.id, limit=depth,
            filter=flt if extra is None else Filter(must=(flt, extra)),
        )
        for label, name, vector, extra in queries
    }  # fmt: skip
    if "text→caption" in rankings:  # a caption of measures alone is no evidence for a prompt
        rankings["text→caption"] = [
            hit for hit in rankings["text→caption"] if caption_says_what_it_is(hit.payload)
        ]
    if "text→name" in rankings:
        rankings["text→name"] = in_model_order(rankings, "text→name")
    if reference is not None:
        rankings["clip→name"] = same_sound_first(in_model_order(rankings, "clip→name"), reference)
    return fuse(rankings, request.limit)


def in_model_order(rankings: dict[str, list[Hit]], label: str) -> list[Hit]:
    """The hits of ranking ``label`` re-ordered as the other rankings fused order them (hits
    they do not hold last, in their own order). The name ranking says which items are named as
    asked, not which of them fit best: "techno drums" must still put techno loops first
    among all the drums, as the captions and audio say."""
    others = {key: hits for key, hits in rankings.items() if key != label}
    place = {hit.id: n for n, hit in enumerate(fuse(others, limit=sum(map(len, others.values()))))}
    own = {hit.id: n for n, hit in enumerate(rankings[label])}
    return sorted(rankings[label], key=lambda hit: place.get(hit.id, len(place) + own[hit.id]))


def text_timbre(text: str) -> np.ndarray | None:
    """What the sound a prompt names sounds like: the shipped timbre prototype of that sound
    or its family (:class:`index.timbre.TimbrePrototypes`). It finds a kick by its sound in a
    folder where nothing is named or captioned. None when the prompt names nothing known, or
    asks more than the sound (:func:`index.names.names_only_a_sound`): a prototype knows
    nothing of genre or mood, and ranking by it would bury "techno" among all drums.

    >>> text_timbre("kick sample").shape, text_timbre("techno drums"), text_timbre("nice")
    ((128,), None, None)
    """
    label = label_words(words(text))
    if label is None or not names_only_a_sound(text):
        return None
    return shipped_model().prototypes.for_label(label.family, label.sound)


def name_condition(text: str) -> Filter | None:
    """The items a prompt names the way file names do: their ``named_sound`` is the sound the
    prompt states, or, for a family word, their instrument is that family. None when the prompt
    names nothing :mod:`index.names` knows.

    >>> name_condition("punchy kick drum")
    Filter(must=(), should=(Match(key='named_sound', value='kick'),), must_not=())
    >>> name_condition("warm strings")
    Filter(must=(), should=(Match(key='named_sound', value='strings'), \
Match(key='instrument', value='strings')), must_not=())
    >>> name_condition("something nice") is None
    True
    """
    label = label_words(words(text))
    if label is None:
        return None
    conditions: tuple[Match, ...] = (Match("named_sound", label.sound),)
    if label.sound == label.family:
        conditions += (Match("instrument", label.family),)
    return Filter(should=conditions)


def reference_label(
    store: VectorStore, path: Path, sha256: str, catalogs: Sequence[str] | None
) -> NameLabel | None:
    """What a reference clip is, as names tell: its indexed item's ``named_sound`` and
    ``instrument`` when the clip is in the catalog (its folders and manifest were read at
    indexing), else what its file name states; None when neither says anything.

    Only items in ``catalogs`` (the request's scope) are looked up: no other tenant's
    metadata leaks in.
    """
    scope = catalog_scope(catalogs)
    must = (Match("sha256", sha256),) + ((scope,) if scope is not None else ())
    for point in _first(store, Filter(must=must), 1):
        family, sound = point.payload.get("instrument"), point.payload.get("named_sound")
        if family:
            return NameLabel(family, sound or family)
    return name_label(path.name)


def reference_condition(label: NameLabel) -> Filter:
    """The items named as the reference's sound or of its family.

    >>> reference_condition(NameLabel("drums", "kick")).should
    (Match(key='named_sound', value='kick'), Match(key='instrument', value='drums'))
    """
    return Filter(should=(Match("named_sound", label.sound), Match("instrument", label.family)))


def same_sound_first(hits: list[Hit], label: NameLabel) -> list[Hit]:
    """``hits`` with those named as ``label``'s sound before the rest of its family (a kick
    asks for kicks before snares), each group keeping its order."""
    return sorted(hits, key=lambda hit: hit.payload.get("named_sound") != label.sound)


def fuse(rankings: dict[str, list[Hit]], limit: int) -> list[SearchHit]:
    """Reciprocal-rank fusion of several rankings of the same collection, each weighted as
    :func:`ranking_weights` says; scores are scaled so 1.0 means first everywhere."""
    fused: dict[str, SearchHit] = {}
    weights = ranking_weights(rankings)
    best = sum(weights.values()) / (RRF_K + 1)
    for label, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.id, SearchHit(hit.id, 0.0, hit.payload))
            entry.score += weights[label] / (RRF_K + rank) / best
            entry.scores[label] = round(hit.score, 4)
    ordered = sorted(fused.values(), key=lambda h: (-h.score, h.id))
    return ordered[:limit]


def ranking_weights(rankings: dict[str, list[Hit]]) -> dict[str, float]:
    """Each non-empty ranking's weight: :data:`RANKING_WEIGHTS`, 1 unless listed, and a prompt's
    timbre ranking at :data:`TEXT_TIMBRE_WEIGHT_UNNAMED` when no file is named as asked (a
    reference clip's at :data:`CLIP_TIMBRE_WEIGHT_UNNAMED` when none is named as it is). An
    empty ranking (no file named as asked) gets none, so it cannot lower everyone's score.

    >>> hit = [Hit("a", 0.5, {})]
    >>> ranking_weights({"text→audio": hit, "text→timbre": hit, "text→name": hit})
    {'text→audio': 1.0, 'text→timbre': 2.0, 'text→name': 3.0}
    >>> ranking_weights({"text→audio": hit, "text→timbre": hit, "text→name": []})
    {'text→audio': 1.0, 'text→timbre': 6.0}
    >>> ranking_weights({"clip→audio": hit, "clip→timbre": hit})
    {'clip→audio': 1.0, 'clip→timbre': 3.0}
    """
    weights = {label: RANKING_WEIGHTS.get(label, 1.0) for label, hits in rankings.items() if hits}
    if "text→timbre" in weights and "text→name" not in weights:
        weights["text→timbre"] = TEXT_TIMBRE_WEIGHT_UNNAMED
    if "clip→timbre" in weights and "clip→name" not in weights:
        weights["clip→timbre"] = CLIP_TIMBRE_WEIGHT_UNNAMED
    return weights


def embed_reference(embedder: ClapEmbedder, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The query vectors of a reference clip: its CLAP audio vector, made as the indexer makes
    it, and its timbre vector through the shipped query metric
    (:meth:`index.timbre.TimbreModel.example_query`; None if it cannot be made); or a
    SearchError naming what is wrong."""
    if not path.is_file():
        raise SearchError(f"reference clip not found: {path}")
    try:
        audio = decode_audio(path, Limits())
    except ValueError as err:
        raise SearchError(f"reference clip {path.name}: {err}") from err
    clip = resample(audio.mono(), audio.sr, CLAP_SR)
    try:
        timbre = shipped_model().example_query(timbre_vector(clip, CLAP_SR))
    except Exception:  # the CLAP ranking alone still answers
        timbre = None
    # a hit is padded as the indexer pads it, so an indexed clip finds itself at cosine 1
    return embedder.embed_audio([padded_hit(clip, CLAP_SR)])[0], timbre


def _first(store: VectorStore, flt: Filter, limit: int):
    for n, point in enumerate(store.scroll(flt)):
        if n >= limit:
            return
        yield point
