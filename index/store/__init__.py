"""The vector store: one small interface, two real Qdrant backends.

* ``EdgeStore`` — the embedded default: Qdrant Edge (``qdrant-edge-py``) on disk in the data dir.
* ``ClientStore`` — ``qdrant-client``: a server / cloud / cluster URL, or its local mode
  (``path=`` or ``":memory:"``), which the contract tests use as the server API's stand-in.

Every point has named cosine vectors — ``audio`` and ``text`` (CLAP embeddings) and, for items
with audio, ``timbre`` (:mod:`index.timbre`, a fixed descriptor) — and a payload whose fields
are listed in ``shared/DESIGN.md``. A collection records the embedder that made its
vectors; a store opened with another embedder, an upsert of points made by another embedder, or a
query made by another embedder is refused with :class:`EmbedderMismatch`.

Filters are our own tiny model (:class:`Filter` with :class:`Match`, :class:`MatchAny`,
:class:`Range`) so callers never import a backend's classes; each backend translates it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union

import numpy as np

from index.timbre import TIMBRE_DIM, timbre_id

VECTOR_NAMES: tuple[str, ...] = ("audio", "text", "timbre")


def vector_sizes(dim: int) -> dict[str, int]:
    """Each named vector's length in a store whose CLAP makes ``dim``-d vectors.

    >>> vector_sizes(512)
    {'audio': 512, 'text': 512, 'timbre': 128}
    """
    return {"audio": dim, "text": dim, "timbre": TIMBRE_DIM}


# Payload fields that searches filter on, with the index type each gets.
KEYWORD_FIELDS: tuple[str, ...] = (
    "catalog",
    "kind",
    "path",
    "sha256",
    "instrument",
    "genre",
    "key",
    "tags",
    "named_sound",
    "licence.id",
    "licence.holder",
    "licence.allowed_uses",
)
FLOAT_FIELDS: tuple[str, ...] = ("bpm", "duration_s")

# Namespace for point ids: uuid5(NAMESPACE, f"{catalog}:{sha256}").
POINT_NAMESPACE = uuid.UUID("6f1c2a4e-0b7d-4c55-9d1e-5a7f3c2b8e10")


def point_id(catalog: str, sha256: str) -> str:
    """Deterministic point id from catalog + content hash, so re-indexing is idempotent.

    >>> point_id("demo", "ab" * 32) == point_id("demo", "ab" * 32)
    True
    """
    return str(uuid.uuid5(POINT_NAMESPACE, f"{catalog}:{sha256}"))


def unit_floats(vector: np.ndarray) -> list[float]:
    """The vector scaled to unit length, as floats for a backend.

    Cosine collections keep unit vectors; normalising here makes what comes back identical on
    every backend (qdrant-client local mode on disk persists the raw vector and returns it raw
    after a reopen).

    >>> unit_floats(np.array([3.0, 4.0]))
    [0.6000000238418579, 0.800000011920929]
    """
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).tolist()


class StoreUnavailable(RuntimeError):
    """A store server could not be reached, even after retrying; the message names its URL."""


@dataclass(frozen=True)
class Retry:
    """How hard to try a store server that does not answer: exponential backoff from
    ``first_delay_s``, doubling up to ``max_delay_s``, at most ``attempts`` tries and
    ``max_total_s`` seconds in all. A restart of the server within that window goes unnoticed."""

    attempts: int = 5
    first_delay_s: float = 0.25
    max_delay_s: float = 4.0
    max_total_s: float = 30.0

    def delays(self) -> list[float]:
        """The waits between tries.

        >>> Retry(attempts=5, first_delay_s=0.25, max_delay_s=1.0).delays()
        [0.25, 0.5, 1.0, 1.0]
        """
        return [min(self.first_delay_s * 2**i, self.max_delay_s) for i in range(self.attempts - 1)]


@dataclass(frozen=True)
class ServerCollection:
    """How a new collection is laid out on a Qdrant server or cluster; the embedded engines
    (one process, one machine) ignore it. Unset fields keep the server's defaults. Applied when
    the collection is created: an existing collection keeps its layout.

    ``shard_number`` spreads the points over nodes (a few per node lets a cluster grow by
    moving shards), ``replication_factor`` keeps that many copies of each shard,
    ``write_consistency_factor`` is how many of them confirm a write; ``on_disk_vectors`` memory-
    maps the float vectors and ``quantization="int8"`` keeps an int8 copy in RAM for searching
    (results rescored on the originals), about a quarter of the float vectors' memory.
    """

    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    on_disk_vectors: bool = False
    quantization: str = "none"  # "none" | "int8"


class EmbedderMismatch(RuntimeError):
    """Vectors or a query from one embedder met a collection built by another."""


@dataclass(frozen=True)
class Embedder:
    """Identity of the model that made a collection's vectors."""

    id: str  # e.g. "laion/larger_clap_general@<revision>" or "tiny-clap@sha256:<12 hex>"
    dim: int


@dataclass
class Point:
    id: str
    payload: dict[str, Any]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class Match:
    """``key`` equals ``value`` (for array fields: contains it)."""

    key: str
    value: str | int | bool


@dataclass(frozen=True)
class MatchAny:
    """``key`` equals any of ``values`` (for array fields: contains any)."""

    key: str
    values: tuple[str | int, ...]


@dataclass(frozen=True)
class Range:
    """``gte <= key <= lte``; either bound may be open."""

    key: str
    gte: float | None = None
    lte: float | None = None


Condition = Union[Match, MatchAny, Range, "Filter"]


@dataclass(frozen=True)
class Filter:
    """All of ``must``, at least one of ``should`` (if any), none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def is_empty(self) -> bool:
        return not (self.must or self.should or self.must_not)


@dataclass(frozen=True)
class VectorQuery:
    """One nearest-neighbour search of a batch: ``limit`` points by cosine on ``vector_name``
    under ``filter`` (see :meth:`VectorStore.search_batch`)."""

    vector_name: str
    query: np.ndarray
    filter: Filter | None = None
    limit: int = 10
    exact: bool = False


# Bumped when the way a store records itself (sidecar / collection metadata) or its vectors
# change. 2: ``timbre`` vectors (index.timbre, TIMBRE_VERSION timbre-v1). 3: timbre vectors are
# the timbre net's embedding (timbre-v2, 128 numbers instead of 105 statistics).
STORE_SCHEMA_VERSION = 3


class StaleSchema(EmbedderMismatch):
    """A store laid out by other (older or newer) code: its vectors cannot be reused."""


def check_schema(recorded: object, where: str) -> None:
    """Refuse a store laid out by other code; the message says what to do."""
    if recorded != STORE_SCHEMA_VERSION:
        raise StaleSchema(
            f"{where} has store schema {recorded}, this code reads {STORE_SCHEMA_VERSION} "
            "(schema 3 hears timbre with the timbre net); re-index into a new store"
        )


def store_record(embedder: Embedder) -> dict[str, object]:
    """What a new store records about the code that fills it."""
    return {
        "embedder": embedder.id,
        "dim": embedder.dim,
        "schema": STORE_SCHEMA_VERSION,
        "timbre": timbre_id(),
    }


def check_record(record: dict, wanted: Embedder, where: str) -> None:
    """Refuse a store whose schema, embedder or timbre vectors are not this code's."""
    check_schema(record.get("schema"), where)
    check_embedder(Embedder(record["embedder"], record["dim"]), wanted, where)
    if record.get("timbre") != timbre_id():
        raise StaleSchema(
            f"{where} holds timbre vectors of {record.get('timbre')!r}, this code makes "
            f"{timbre_id()!r} (another timbre net or scale); re-index into a new store"
        )


def check_embedder(recorded: Embedder, wanted: Embedder, where: str) -> None:
    """Refuse to open a collection built by another embedder (or the same id at another dim)."""
    if recorded != wanted:
        raise EmbedderMismatch(
            f"{where} was built by embedder {recorded.id!r} (dim {recorded.dim}), "
            f"but it was opened with {wanted.id!r} (dim {wanted.dim}); re-index into a new store"
        )


def check_points(embedder: Embedder, points: Sequence[Point]) -> None:
    """Validate a whole batch before any of it is written, so a bad point writes nothing."""
    for p in points:
        if p.payload.get("embedder") != embedder.id:
            raise EmbedderMismatch(
                f"point {p.id} was embedded by {p.payload.get('embedder')!r}, "
                f"but this store holds {embedder.id!r} vectors"
            )
        unknown = set(p.vectors) - set(VECTOR_NAMES)
        if unknown or not p.vectors:
            raise ValueError(f"point {p.id} has vectors {sorted(p.vectors)}; use {VECTOR_NAMES}")
        sizes = vector_sizes(embedder.dim)
        for name, vec in p.vectors.items():
            if np.shape(vec) != (sizes[name],):
                raise EmbedderMismatch(
                    f"point {p.id} vector {name!r} has shape {np.shape(vec)}, "
                    f"this store's {name!r} vectors are ({sizes[name]},)"
                )


def check_query(
    embedder: Embedder, vector_name: str, query: np.ndarray, embedder_id: str
) -> list[float]:
    """Validate a search and return the query as a plain float list for the backend."""
    if embedder_id != embedder.id:
        raise EmbedderMismatch(
            f"query embedded by {embedder_id!r} cannot search a store of {embedder.id!r} vectors"
        )
    if vector_name not in VECTOR_NAMES:
        raise ValueError(f"unknown vector {vector_name!r}; use one of {VECTOR_NAMES}")
    size = vector_sizes(embedder.dim)[vector_name]
    if np.shape(query) != (size,):
        raise EmbedderMismatch(f"{vector_name} query shape {np.shape(query)} != ({size},)")
    return np.asarray(query, dtype=np.float32).tolist()


class VectorStore(Protocol):
    """What the rest of the system may do with a store."""

    embedder: Embedder

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points. Each payload's ``embedder`` must equal ``self.embedder.id``."""

    def delete(self, ids: Sequence[str]) -> None: ...

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]: ...

    def scroll(
        self, filter: Filter | None = None, *, with_vectors: bool = False
    ) -> Iterator[Point]: ...

    def count(self, filter: Filter | None = None) -> int: ...

    def search(
        self,
        vector_name: str,
        query: np.ndarray,
        *,
        embedder_id: str,
        filter: Filter | None = None,
        limit: int = 10,
        exact: bool = False,
    ) -> list[Hit]:
        """Top ``limit`` points by cosine on ``vector_name``; refuses another embedder's query."""

    def search_batch(self, queries: Sequence[VectorQuery], *, embedder_id: str) -> list[list[Hit]]:
        """Several searches in one call (one planned batch where the backend has one): the
        hits of each query, in the order given, each as :meth:`search` would return them."""

    def optimize(self) -> None:
        """Build or refresh the ANN index (no-op where the backend does it by itself)."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


def open_store(
    embedder: Embedder,
    *,
    path: Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    backend: str = "edge",
    collection: str = "audiorag",
    retry: Retry | None = None,
    layout: ServerCollection | None = None,
) -> VectorStore:
    """Open (creating if needed) the collection for ``embedder``.

    ``url`` set → qdrant-client against that server. Otherwise ``backend`` picks the embedded
    engine: ``"edge"`` (default, Qdrant Edge in ``path``) or ``"local"`` (qdrant-client local mode
    in ``path``, or in memory when ``path`` is None). A server that does not answer is retried
    as ``retry`` says, then refused with :class:`StoreUnavailable`. ``layout`` (shards,
    replicas, on-disk vectors, quantisation) applies to a collection created on a server only.
    """
    if url:
        from index.store.client import ClientStore

        return ClientStore.connect(
            embedder,
            url=url,
            api_key=api_key,
            collection=collection,
            retry=retry or Retry(),
            layout=layout,
        )
    if backend == "edge":
        if path is None:
            raise ValueError("the Edge backend needs a folder (path)")
        from index.store.edge import EdgeStore

        return EdgeStore.open(embedder, Path(path))
    if backend == "local":
        from index.store.client import ClientStore

        return ClientStore.local(embedder, path=path, collection=collection)
    raise ValueError(f"unknown store backend {backend!r}: use 'edge' or 'local', or set a URL")
