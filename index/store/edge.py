"""Qdrant Edge backend: Qdrant's own Rust engine, in-process, one folder on disk.

Folder layout::

    <path>/store.json   which embedder made the vectors (+ dim, schema version); written first
    <path>/store.lock   flock'ed while a process has the store open
    <path>/shard/       the Edge shard (WAL + segments), owned by ``qdrant_edge``

Durability: Edge appends every update to its write-ahead log before ``update`` returns. The WAL
is a memory-mapped file, so once ``upsert`` returns the record lives in the kernel's page cache: a
process killed with SIGKILL loses nothing, and the next open replays the WAL. Surviving a power cut
or kernel crash needs ``flush()`` (which msyncs the WAL and segments); we do not flush per upsert
because it roughly doubles the cost of a batch, and ``close()`` flushes.

Locking: Edge flocks its WAL and fails with an opaque "Can't init WAL: WouldBlock". We take our own
lock first, on ``store.lock``, to raise :class:`StoreInUse` with a message that says what happened.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from index.store import (
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    Condition,
    Embedder,
    EmbedderMismatch,
    Filter,
    Hit,
    Match,
    MatchAny,
    Point,
    Range,
    VectorQuery,
    check_points,
    check_query,
    check_record,
    store_record,
    unit_floats,
    vector_sizes,
)

SIDECAR = "store.json"
LOCK_FILE = "store.lock"
SHARD_DIR = "shard"
SCROLL_PAGE = 256


class StoreInUse(RuntimeError):
    """Another process (or another open store in this one) holds the folder."""


@dataclass(frozen=True)
class HnswParams:
    """Index and search knobs; the defaults are the ones measured in ``bench/search_latency.py``.

    Vectors are also kept as int8 (scalar quantization, in RAM): searches walk the graph on those,
    4x less memory traffic, then rescore ``oversampling`` x ``limit`` candidates on the originals.

    ``full_scan_kb`` and ``indexing_threshold_kb`` are KiB of original vectors per segment (512-d
    float32 is 2 KiB a vector). A filtered search whose matches fit under ``full_scan_kb`` skips
    the graph and scores the matches from the payload index: exact up to quantization, and cheaper
    than a graph walk that the filter has cut into islands. 60 MB is ~30k 512-d vectors (~2 ms).
    A segment under ``indexing_threshold_kb`` gets no graph at all.
    """

    m: int = 16
    ef_construct: int = 100
    ef: int = 256  # candidates kept per search: 128 gave recall 0.96 on tight clusters, 256 0.995
    oversampling: float = 2.0
    acorn: bool = True  # ACORN for filtered graph searches (off only to measure what it buys)
    full_scan_kb: int = 60_000
    indexing_threshold_kb: int = 10_000


class EdgeStore:
    """A :class:`~index.store.VectorStore` on Qdrant Edge. Open it with :meth:`open`."""

    def __init__(
        self, embedder: Embedder, shard: qe.EdgeShard, lock_fd: int, hnsw: HnswParams
    ) -> None:
        self.embedder = embedder
        self.hnsw = hnsw
        self._shard: qe.EdgeShard | None = shard
        self._lock_fd: int | None = lock_fd

    @classmethod
    def open(cls, embedder: Embedder, path: Path, *, hnsw: HnswParams | None = None) -> EdgeStore:
        """Open the store in ``path``, creating it for ``embedder`` if the folder has none.

        Raises :class:`EmbedderMismatch` if the folder was built by another embedder, and
        :class:`StoreInUse` if another process has it open.
        """
        hnsw = hnsw or HnswParams()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(path)
        try:
            _check_or_write_sidecar(path, embedder)
            shard = _open_shard(path / SHARD_DIR, _edge_config(embedder, hnsw))
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(embedder, shard, lock_fd, hnsw)

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("the store is closed")
        return self._shard

    def upsert(self, points: Sequence[Point]) -> None:
        check_points(self.embedder, points)
        if points:
            edge_points = [
                qe.Point(p.id, {k: unit_floats(v) for k, v in p.vectors.items()}, p.payload)
                for p in points
            ]
            self.shard.update(qe.UpdateOperation.upsert_points(edge_points))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]:
        # Edge returns records in request order and skips ids it does not have.
        records = self.shard.retrieve(list(ids), True, with_vectors)
        return [_point(r) for r in records]

    def scroll(
        self, filter: Filter | None = None, *, with_vectors: bool = False
    ) -> Iterator[Point]:
        # Pages are ordered by id; ``offset`` is the first id of the next page (inclusive).
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=SCROLL_PAGE,
                filter=to_edge_filter(filter),
                with_payload=True,
                with_vector=with_vectors,
            )
            records, offset = self.shard.scroll(request)
            yield from (_point(r) for r in records)
            if offset is None:
                return

    def count(self, filter: Filter | None = None) -> int:
        return self.shard.count(qe.CountRequest(exact=True, filter=to_edge_filter(filter)))

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
        vector = check_query(self.embedder, vector_name, query, embedder_id)
        edge_filter = to_edge_filter(filter)
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector, using=vector_name),
            filter=edge_filter,
            params=self._search_params(filtered=edge_filter is not None, exact=exact),
            with_payload=True,
        )
        return [Hit(str(p.id), p.score, p.payload or {}) for p in self.shard.query(request)]

    def search_batch(self, queries: Sequence[VectorQuery], *, embedder_id: str) -> list[list[Hit]]:
        # One QueryBatchRequest: Edge plans the batch as a whole (one pass over the segments).
        requests = []
        for q in queries:
            vector = check_query(self.embedder, q.vector_name, q.query, embedder_id)
            edge_filter = to_edge_filter(q.filter)
            requests.append(
                qe.QueryRequest(
                    limit=q.limit,
                    query=qe.Query.Nearest(vector, using=q.vector_name),
                    filter=edge_filter,
                    params=self._search_params(filtered=edge_filter is not None, exact=q.exact),
                    with_payload=True,
                )
            )
        if not requests:
            return []
        results = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return [[Hit(str(p.id), p.score, p.payload or {}) for p in points] for points in results]

    def _search_params(self, *, filtered: bool, exact: bool) -> qe.SearchParams:
        if exact:
            return qe.SearchParams(exact=True)
        # A filter cuts the HNSW graph into islands (recall fell to 0.3 on clustered data);
        # ACORN walks neighbours of neighbours to bridge them. Edge's default uses it only when
        # the filter keeps < 40 % of points, but without per-value payload links (see
        # _open_shard) a filter keeping half the points still lost recall, so: always.
        acorn = (
            qe.AcornSearchParams(enable=True, max_selectivity=1.0)
            if filtered and self.hnsw.acorn
            else None
        )
        rescore = qe.QuantizationSearchParams(rescore=True, oversampling=self.hnsw.oversampling)
        return qe.SearchParams(hnsw_ef=self.hnsw.ef, acorn=acorn, quantization=rescore)

    def optimize(self) -> None:
        """Merge segments and build the HNSW graphs (blocking); small segments stay plain."""
        self.shard.optimize()
        self.shard.flush()

    def flush(self) -> None:
        self.shard.flush()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(path: Path) -> int:
    """flock ``store.lock`` and write our pid into it, so a refused opener can say who holds it."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        pid = f" (pid {holder})" if holder.isdigit() else ""
        raise StoreInUse(
            f"store folder {path} is in use by another process{pid}: another index run, a "
            "server, or another open store in this one; wait for it to finish, or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _check_or_write_sidecar(path: Path, embedder: Embedder) -> None:
    sidecar = path / SIDECAR
    if not sidecar.exists():
        if (path / SHARD_DIR).exists():
            raise EmbedderMismatch(f"{path / SHARD_DIR} exists but {sidecar} is missing")
        record = store_record(embedder)
        tmp = sidecar.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, sidecar)  # atomic: a crash leaves either no sidecar or a whole one
        return
    check_record(json.loads(sidecar.read_text()), embedder, f"store {path}")


def _edge_config(embedder: Embedder, hnsw: HnswParams) -> qe.EdgeConfig:
    vectors = {
        name: qe.EdgeVectorParams(size=size, distance=qe.Distance.Cosine)
        for name, size in vector_sizes(embedder.dim).items()
    }
    return qe.EdgeConfig(
        vectors=vectors,
        hnsw_config=qe.HnswIndexConfig(
            m=hnsw.m, ef_construct=hnsw.ef_construct, full_scan_threshold=hnsw.full_scan_kb
        ),
        quantization_config=qe.ScalarQuantizationConfig(
            type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned
        ),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=hnsw.indexing_threshold_kb),
    )


def _open_shard(path: Path, config: qe.EdgeConfig) -> qe.EdgeShard:
    if path.exists():
        # Passing the config re-checks vector sizes and stores new HNSW params for later builds.
        return qe.EdgeShard.load(str(path), config)
    shard = qe.EdgeShard.create(str(path), config)
    # enable_hnsw=False: no extra graph links per payload value. They made optimize() 6-12x slower
    # (100k points: 14 min instead of 1-2) and ACORN + full scans already keep filtered recall.
    for field in KEYWORD_FIELDS:
        params = qe.KeywordIndexParams(enable_hnsw=False)
        shard.update(qe.UpdateOperation.create_field_index(field, params))
    for field in FLOAT_FIELDS:
        params = qe.FloatIndexParams(enable_hnsw=False)
        shard.update(qe.UpdateOperation.create_field_index(field, params))
    shard.flush()
    return shard


def _point(record: qe.Record) -> Point:
    vectors = {k: np.asarray(v, dtype=np.float32) for k, v in (record.vector or {}).items()}
    return Point(str(record.id), record.payload or {}, vectors)


def to_edge_filter(filter: Filter | None) -> qe.Filter | None:
    """Our filter → Edge's; ``None`` for no filter (an empty one matches everything anyway)."""
    if filter is None or filter.is_empty():
        return None
    return _edge_filter(filter)


def _edge_filter(filter: Filter) -> qe.Filter:
    def conditions(items: tuple[Condition, ...]) -> list[Any] | None:
        return [_edge_condition(c) for c in items] or None

    return qe.Filter(
        must=conditions(filter.must),
        should=conditions(filter.should),
        must_not=conditions(filter.must_not),
    )


def _edge_condition(c: Condition) -> Any:
    # On array fields (tags, licence.allowed_uses) Qdrant's match means "contains".
    if isinstance(c, Filter):
        return _edge_filter(c)
    if isinstance(c, Match):
        if isinstance(c.value, bool):
            # qdrant-edge-py 0.9 turns MatchValue(True) into the integer 1, which matches nothing.
            raise TypeError(f"Edge cannot match booleans ({c.key}); store the flag as a keyword")
        return qe.FieldCondition(c.key, match=qe.MatchValue(c.value))
    if isinstance(c, MatchAny):
        return qe.FieldCondition(c.key, match=qe.MatchAny(list(c.values)))
    if isinstance(c, Range):
        return qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, lte=c.lte))
    raise TypeError(f"not a filter condition: {c!r}")
