"""Tenant isolation over one shared vector store.

A tenant owns catalog *names*; the registry (SQLite) maps each (tenant, name) to the value the
store's payload ``catalog`` field holds. Catalogs created through the API are stored as
``<tenant>/<name>``, so two tenants never collide and no name a client sends can reach another
tenant's points. Catalogs indexed by the CLI are handed to a tenant by an operator
(``audiorag catalogs grant``), read-only.

Every read a request makes goes through :class:`ScopedStore`, which ANDs
``MatchAny("catalog", <the tenant's catalogs>)`` into every search, scroll and count and drops
other catalogs' points from ``retrieve``: search code cannot see past it whatever filter it
builds, and an id from another tenant is simply not there (→ 404).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiorag.api.db import Database
from audiorag.api.repos import catalogs as repo
from index.store import Filter, Hit, Point, VectorQuery, VectorStore
from rag.search import catalog_scope, in_catalog_scope

CATALOG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Catalog:
    tenant: str
    name: str
    store_name: str
    root: Path | None
    writable: bool


def _catalog(row: dict[str, Any]) -> Catalog:
    return Catalog(
        row["tenant"],
        row["name"],
        row["store_name"],
        Path(row["root"]) if row["root"] else None,
        bool(row["writable"]),
    )


def tenant_catalogs(db: Database, tenant: str) -> list[Catalog]:
    return [_catalog(r) for r in repo.for_tenant(db, tenant)]


def find_catalog(db: Database, tenant: str, name: str) -> Catalog | None:
    row = repo.find(db, tenant, name)
    return _catalog(row) if row else None


def upload_catalog(db: Database, tenant: str, name: str, uploads_dir: Path) -> Catalog:
    """The tenant's writable catalog ``name``, registered on first upload."""
    if not CATALOG_PATTERN.match(name):
        raise ValueError(
            "catalog names are 1-64 characters of letters, digits, '.', '_' or '-', starting "
            "with a letter or digit"
        )
    existing = find_catalog(db, tenant, name)
    if existing is not None:
        return existing
    repo.add_writable(db, tenant, name, f"{tenant}/{name}", uploads_dir / tenant / name)
    found = find_catalog(db, tenant, name)
    assert found is not None
    return found


def grant_catalog(
    db: Database,
    tenant: str,
    store_name: str,
    *,
    name: str | None = None,
    root: Path | None = None,
) -> Catalog:
    """Give ``tenant`` read access to an indexed catalog (operator action, e.g. the CLI's
    catalogs). ``root`` is the folder it was indexed from, for audio previews."""
    name = name or store_name
    if not CATALOG_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a valid catalog name; pass --as NAME")
    repo.put_grant(db, tenant, name, store_name, root.resolve() if root else None)
    found = find_catalog(db, tenant, name)
    assert found is not None
    return found


def revoke_catalog(db: Database, tenant: str, name: str) -> bool:
    return repo.remove(db, tenant, name)


class LockedStore:
    """Serialises calls into one store shared by request threads and generation workers: the
    embedded engines make no promise about concurrent callers, and every call is short."""

    def __init__(self, store: VectorStore) -> None:
        self.inner = store
        self.embedder = store.embedder
        self._lock = threading.RLock()

    def upsert(self, points: Sequence[Point]) -> None:
        with self._lock:
            self.inner.upsert(points)

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            self.inner.delete(ids)

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]:
        with self._lock:
            return self.inner.retrieve(ids, with_vectors=with_vectors)

    def scroll(
        self, filter: Filter | None = None, *, with_vectors: bool = False
    ) -> Iterator[Point]:
        # Lock page by page (each next()), never across a yield, so a slow consumer blocks nobody.
        with self._lock:
            it = iter(self.inner.scroll(filter, with_vectors=with_vectors))
        while True:
            with self._lock:
                point = next(it, None)
            if point is None:
                return
            yield point

    def count(self, filter: Filter | None = None) -> int:
        with self._lock:
            return self.inner.count(filter)

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
        with self._lock:
            return self.inner.search(
                vector_name,
                query,
                embedder_id=embedder_id,
                filter=filter,
                limit=limit,
                exact=exact,
            )

    def search_batch(self, queries: Sequence[VectorQuery], *, embedder_id: str) -> list[list[Hit]]:
        with self._lock:
            return self.inner.search_batch(queries, embedder_id=embedder_id)

    def optimize(self) -> None:
        with self._lock:
            self.inner.optimize()

    def flush(self) -> None:
        with self._lock:
            self.inner.flush()

    def close(self) -> None:
        with self._lock:
            self.inner.close()


class ScopedStore:
    """A read-only view of ``store`` holding only the points of ``store_names``."""

    def __init__(self, store: VectorStore, store_names: Sequence[str]) -> None:
        self.inner = store
        self.embedder = store.embedder
        self.names = tuple(dict.fromkeys(store_names))

    def _scoped(self, filter: Filter | None) -> Filter:
        scope = catalog_scope(self.names)
        if filter is None or filter.is_empty():
            return Filter(must=(scope,))
        return Filter(must=(scope, filter))

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Point]:
        if not self.names or not ids:
            return []
        points = self.inner.retrieve(ids, with_vectors=with_vectors)
        return [p for p in points if in_catalog_scope(p.payload.get("catalog"), self.names)]

    def scroll(
        self, filter: Filter | None = None, *, with_vectors: bool = False
    ) -> Iterator[Point]:
        if not self.names:
            return iter(())
        return self.inner.scroll(self._scoped(filter), with_vectors=with_vectors)

    def count(self, filter: Filter | None = None) -> int:
        return self.inner.count(self._scoped(filter)) if self.names else 0

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
        if not self.names:
            return []
        return self.inner.search(
            vector_name,
            query,
            embedder_id=embedder_id,
            filter=self._scoped(filter),
            limit=limit,
            exact=exact,
        )

    def upsert(self, points: Sequence[Point]) -> None:
        raise PermissionError("a tenant's view of the store is read-only")

    def delete(self, ids: Sequence[str]) -> None:
        raise PermissionError("a tenant's view of the store is read-only")

    def optimize(self) -> None:  # owned by the service, not by a request
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:  # the shared store outlives every request
        pass


@dataclass(frozen=True)
class TenantScope:
    """What one tenant may see: its catalogs, and the translation of store names to its names."""

    tenant: str
    catalogs: tuple[Catalog, ...]

    @property
    def store_names(self) -> tuple[str, ...]:
        return tuple(c.store_name for c in self.catalogs)

    def by_name(self, name: str) -> Catalog | None:
        return next((c for c in self.catalogs if c.name == name), None)

    def by_store_name(self, store_name: str) -> Catalog | None:
        return next((c for c in self.catalogs if c.store_name == store_name), None)

    def view(self, store: VectorStore, names: Sequence[str] | None = None) -> ScopedStore:
        """The store as this tenant sees it, optionally narrowed to some of its catalogs."""
        if names is None:
            return ScopedStore(store, self.store_names)
        chosen = [self.by_name(n) for n in names]
        return ScopedStore(store, [c.store_name for c in chosen if c is not None])

    def public_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload with the catalog under the tenant's own name."""
        out = dict(payload)
        catalog = self.by_store_name(str(payload.get("catalog")))
        if catalog is not None:
            out["catalog"] = catalog.name
        return out


def scope_for(db: Database, tenant: str) -> TenantScope:
    return TenantScope(tenant, tuple(tenant_catalogs(db, tenant)))
