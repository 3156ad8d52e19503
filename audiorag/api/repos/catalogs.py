"""The catalog registry (``catalogs``): which tenant sees which store catalog, under what name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiorag.api.db import Database, now


def for_tenant(db: Database, tenant: str) -> list[dict[str, Any]]:
    return db.all("SELECT * FROM catalogs WHERE tenant = ? ORDER BY name", tenant)


def find(db: Database, tenant: str, name: str) -> dict[str, Any] | None:
    return db.one("SELECT * FROM catalogs WHERE tenant = ? AND name = ?", tenant, name)


def add_writable(db: Database, tenant: str, name: str, store_name: str, root: Path) -> None:
    """Register an upload catalog; a concurrent first upload of the same name is a no-op."""
    db.run(
        "INSERT OR IGNORE INTO catalogs (tenant, name, store_name, root, writable, created) "
        "VALUES (?, ?, ?, ?, 1, ?)",
        tenant,
        name,
        store_name,
        str(root),
        now(),
    )


def put_grant(db: Database, tenant: str, name: str, store_name: str, root: Path | None) -> None:
    """Grant (or re-grant) read-only access to an indexed catalog."""
    db.run(
        "INSERT OR REPLACE INTO catalogs (tenant, name, store_name, root, writable, created) "
        "VALUES (?, ?, ?, ?, 0, ?)",
        tenant,
        name,
        store_name,
        str(root) if root else None,
        now(),
    )


def remove(db: Database, tenant: str, name: str) -> bool:
    return db.run("DELETE FROM catalogs WHERE tenant = ? AND name = ?", tenant, name) > 0


def listing(db: Database, tenant: str | None = None) -> list[dict[str, Any]]:
    """Every tenant's catalogs (or one tenant's), for operators."""
    return db.all(
        "SELECT * FROM catalogs WHERE ? IS NULL OR tenant = ? ORDER BY tenant, name",
        tenant,
        tenant,
    )
