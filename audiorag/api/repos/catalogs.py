"""The catalog registry (``catalogs``): which tenant sees which store catalog, under what name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from audiorag.api.db import Database, catalogs, now

T = catalogs.c


def for_tenant(db: Database, tenant: str) -> list[dict[str, Any]]:
    return db.all(sa.select(catalogs).where(T.tenant == tenant).order_by(T.name))


def find(db: Database, tenant: str, name: str) -> dict[str, Any] | None:
    return db.one(sa.select(catalogs).where(T.tenant == tenant, T.name == name))


def add_writable(db: Database, tenant: str, name: str, store_name: str, root: Path) -> None:
    """Register an upload catalog; a concurrent first upload of the same name is a no-op."""
    row = {"tenant": tenant, "name": name, "store_name": store_name, "root": str(root)}
    db.run(db.insert(catalogs).values(**row, writable=1, created=now()).on_conflict_do_nothing())


def put_grant(db: Database, tenant: str, name: str, store_name: str, root: Path | None) -> None:
    """Grant (or re-grant) read-only access to an indexed catalog."""
    values = {
        "store_name": store_name,
        "root": str(root) if root else None,
        "writable": 0,
        "created": now(),
    }
    stmt = db.insert(catalogs).values(tenant=tenant, name=name, **values)
    db.run(stmt.on_conflict_do_update(index_elements=["tenant", "name"], set_=values))


def remove(db: Database, tenant: str, name: str) -> bool:
    return db.run(sa.delete(catalogs).where(T.tenant == tenant, T.name == name)) > 0


def listing(db: Database, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every tenant's catalogs (or one tenant's), for operators."""
    stmt = sa.select(catalogs).order_by(T.tenant, T.name)
    return db.all(stmt if tenant is None else stmt.where(T.tenant == tenant))
