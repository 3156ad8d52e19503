"""qdrant-client backend: a Qdrant server / cloud / cluster, or qdrant-client's local mode.

Local mode (``path=`` or ``":memory:"``) is brute force in numpy with filters in a Python loop:
fine for tests and a few thousand points, slow beyond (see ``bench/search_latency.py``).

The collection records its embedder in the collection's own ``metadata`` (one JSON object,
``{"audiorag": {"embedder", "dim", "schema"}}``), set by ``create_collection``. qdrant-client 1.20
supports ``metadata`` in local mode (kept in its sqlite/pickle storage) and on servers from Qdrant
1.16. Keeping the record inside the collection means it travels with snapshots and is seen by every
client, unlike a side file. A collection without the record (made by something else, or by a
server older than 1.16, which drops the field) is refused rather than guessed at.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

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
    Retry,
    ServerCollection,
    StoreUnavailable,
    VectorQuery,
    check_points,
    check_query,
    check_record,
    store_record,
    unit_floats,
    vector_sizes,
)

METADATA_KEY = "audiorag"
COSINE = models.Distance.COSINE
SCROLL_PAGE = 256
# What a server that is down, restarting or unreachable looks like from qdrant-client.
TRANSIENT = (ResponseHandlingException, httpx.TransportError, ConnectionError)


class ClientStore:
    """A :class:`~index.store.VectorStore` on qdrant-client; see :meth:`connect`, :meth:`local`."""

    def __init__(
        self,
        client: QdrantClient,
        embedder: Embedder,
        collection: str,
        *,
        is_local: bool,
        url: str = "",
        retry: Retry | None = None,
        layout: ServerCollection | None = None,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.collection = collection
        self.is_local = is_local
        self.url = url
        self.layout = layout
        self.retry = retry or Retry(attempts=1)  # local mode: nothing to wait for
        self._call(self._ensure_collection)

    def _call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, retried with exponential backoff while the server does not
        answer; every call is idempotent (upserts by id, deletes by id, reads)."""
        started = time.monotonic()
        delays = self.retry.delays()
        for attempt in range(len(delays) + 1):
            try:
                return fn(*args, **kwargs)
            except TRANSIENT as err:
                spent = time.monotonic() - started
                if attempt == len(delays) or spent + delays[attempt] > self.retry.max_total_s:
                    raise StoreUnavailable(
                        f"Qdrant at {self.url or 'local mode'} is unreachable: {err or type(err)}"
                        f" ({attempt + 1} tries over {spent:.1f} s); is the server running?"
                    ) from err
                time.sleep(delays[attempt])
        raise AssertionError("unreachable")

    @classmethod
    def connect(
        cls,
        embedder: Embedder,
        *,
        url: str,
        api_key: str | None = None,
        collection: str = "audiorag",
        retry: Retry | None = None,
        layout: ServerCollection | None = None,
    ) -> ClientStore:
        """Open (creating if needed, laid out as ``layout`` says) ``collection`` on the Qdrant
        server at ``url``; retried as ``retry`` says, then :class:`StoreUnavailable` naming
        the URL."""
        client = QdrantClient(url=url, api_key=api_key, check_compatibility=False)
        return cls._open(
            client, embedder, collection, is_local=False, url=url, retry=retry, layout=layout
        )

    @classmethod
    def local(
        cls,
        embedder: Embedder,
        *,
        path: Path | None = None,
        collection: str = "audiorag",
        layout: ServerCollection | None = None,
    ) -> ClientStore:
        """qdrant-client local mode in folder ``path``, or in memory when ``path`` is None
        (``layout`` is passed on to it; local mode keeps on-disk flags and drops the rest)."""
        client = QdrantClient(path=str(path)) if path else QdrantClient(location=":memory:")
        return cls._open(client, embedder, collection, is_local=True, layout=layout)

    @classmethod
    def _open(
        cls,
        client: QdrantClient,
        embedder: Embedder,
        collection: str,
        *,
        is_local: bool,
        url: str = "",
        retry: Retry | None = None,
        layout: ServerCollection | None = None,
    ) -> ClientStore:
        try:
            return cls(
                client,
                embedder,
                collection,
                is_local=is_local,
                url=url,
                retry=retry,
                layout=layout,
            )
        except BaseException:
            client.close()  # a refused open must not keep local mode's folder lock
            raise

    def _ensure_collection(self) -> None:
        if self.client.collection_exists(self.collection):
            self._check_recorded_embedder()
        else:
            self.client.create_collection(
                self.collection,
                metadata={METADATA_KEY: store_record(self.embedder)},
                **create_collection_kwargs(self.embedder.dim, self.layout),
            )
        self._ensure_payload_indexes()

    def _check_recorded_embedder(self) -> None:
        where = f"collection {self.collection!r}"
        record = (self.client.get_collection(self.collection).config.metadata or {}).get(
            METADATA_KEY
        )
        if not record:
            raise EmbedderMismatch(f"{where} records no embedder (not made by audiorag?)")
        check_record(record, self.embedder, where)

    def _ensure_payload_indexes(self) -> None:
        # Idempotent on a server, so done on every open: fields added to KEYWORD_FIELDS later
        # get indexed too. Local mode ignores payload indexes and warns each time; hush that.
        schema = {f: models.PayloadSchemaType.KEYWORD for f in KEYWORD_FIELDS}
        schema |= {f: models.PayloadSchemaType.FLOAT for f in FLOAT_FIELDS}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field_name, field_schema in schema.items():
                self.client.create_payload_index(self.collection, field_name, field_schema)

    def upsert(self, points: Sequence[Point]) -> None:
        check_points(self.embedder, points)
        if points:
            structs = [
                models.PointStruct(
                    id=p.id,
                    vector={k: unit_floats(v) for k, v in p.vectors.items()},
                    payload=p.payload,
                )
                for p in points
            ]
            self._call(self.client.upsert, self.collection, points=structs, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            selector = models.PointIdsList(points=list(ids))
            self._call(self.client.delete, self.collection, points_selector=selector, wait=True)

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]:
        records = self._call(
            self.client.retrieve,
            self.collection,
            list(ids),
            with_payload=True,
            with_vectors=with_vectors,
        )
        # Servers do not promise request order; give it back in the order asked.
        by_id = {str(r.id): _point(r) for r in records}
        return [by_id[str(i)] for i in ids if str(i) in by_id]

    def scroll(
        self, filter: Filter | None = None, *, with_vectors: bool = False
    ) -> Iterator[Point]:
        offset: Any = None
        while True:
            records, offset = self._call(
                self.client.scroll,
                self.collection,
                scroll_filter=to_client_filter(filter),
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            yield from (_point(r) for r in records)
            if offset is None:
                return

    def count(self, filter: Filter | None = None) -> int:
        return self._call(
            self.client.count, self.collection, count_filter=to_client_filter(filter), exact=True
        ).count

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
        client_filter = to_client_filter(filter)
        params = (
            None if self.is_local else _search_params(filtered=bool(client_filter), exact=exact)
        )
        response = self._call(
            self.client.query_points,
            self.collection,
            query=vector,
            using=vector_name,
            query_filter=client_filter,
            search_params=params,
            limit=limit,
            with_payload=True,
        )
        return [Hit(str(p.id), p.score, p.payload or {}) for p in response.points]

    def search_batch(self, queries: Sequence[VectorQuery], *, embedder_id: str) -> list[list[Hit]]:
        # query_batch_points: one round trip to a server for the whole batch.
        requests = []
        for q in queries:
            vector = check_query(self.embedder, q.vector_name, q.query, embedder_id)
            client_filter = to_client_filter(q.filter)
            params = (
                None
                if self.is_local
                else _search_params(filtered=bool(client_filter), exact=q.exact)
            )
            requests.append(
                models.QueryRequest(
                    query=vector,
                    using=q.vector_name,
                    filter=client_filter,
                    params=params,
                    limit=q.limit,
                    with_payload=True,
                )
            )
        if not requests:
            return []
        responses = self._call(self.client.query_batch_points, self.collection, requests=requests)
        return [
            [Hit(str(p.id), p.score, p.payload or {}) for p in response.points]
            for response in responses
        ]

    def optimize(self) -> None:
        """No-op: a server builds its indexes by itself, local mode has none."""

    def flush(self) -> None:
        """No-op: a server persists through its WAL; local mode writes each update through."""

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ClientStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_collection_kwargs(dim: int, layout: ServerCollection | None) -> dict[str, Any]:
    """The layout of a new collection as ``create_collection`` arguments: the cosine vectors
    of :func:`index.store.vector_sizes` for a CLAP of ``dim``, and from ``layout`` shards,
    replicas, write consistency, on-disk vectors and int8 scalar quantisation kept in RAM
    (unset fields: the server's defaults).

    >>> sorted(create_collection_kwargs(4, ServerCollection(shard_number=6)))
    ['shard_number', 'vectors_config']
    """
    layout = layout or ServerCollection()
    on_disk = True if layout.on_disk_vectors else None
    kwargs: dict[str, Any] = {
        "vectors_config": {
            name: models.VectorParams(size=size, distance=COSINE, on_disk=on_disk)
            for name, size in vector_sizes(dim).items()
        }
    }
    for name in ("shard_number", "replication_factor", "write_consistency_factor"):
        if getattr(layout, name) is not None:
            kwargs[name] = getattr(layout, name)
    if layout.quantization == "int8":
        kwargs["quantization_config"] = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
        )
    elif layout.quantization != "none":
        raise ValueError(f"unknown quantization {layout.quantization!r}: use 'none' or 'int8'")
    return kwargs


def _search_params(*, filtered: bool, exact: bool) -> models.SearchParams:
    # Servers: ACORN keeps filtered HNSW recall up (see edge.py). Local mode is always exact
    # and warns on every query that gets params, so it gets none.
    acorn = models.AcornSearchParams(enable=True) if filtered and not exact else None
    return models.SearchParams(exact=exact, acorn=acorn)


def _point(record: models.Record) -> Point:
    raw = record.vector if isinstance(record.vector, dict) else {}
    vectors = {k: np.asarray(v, dtype=np.float32) for k, v in raw.items()}
    return Point(str(record.id), record.payload or {}, vectors)


def to_client_filter(filter: Filter | None) -> models.Filter | None:
    """Our filter → qdrant-client's; ``None`` for no filter."""
    if filter is None or filter.is_empty():
        return None
    return _client_filter(filter)


def _client_filter(filter: Filter) -> models.Filter:
    def conditions(items: tuple[Condition, ...]) -> list[Any] | None:
        return [_client_condition(c) for c in items] or None

    return models.Filter(
        must=conditions(filter.must),
        should=conditions(filter.should),
        must_not=conditions(filter.must_not),
    )


def _client_condition(c: Condition) -> Any:
    # On array fields (tags, licence.allowed_uses) Qdrant's match means "contains".
    if isinstance(c, Filter):
        return _client_filter(c)
    if isinstance(c, Match):
        return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
    if isinstance(c, MatchAny):
        return models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.values)))
    if isinstance(c, Range):
        return models.FieldCondition(key=c.key, range=models.Range(gte=c.gte, lte=c.lte))
    raise TypeError(f"not a filter condition: {c!r}")
