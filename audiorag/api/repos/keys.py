"""API keys (``api_keys``): rows hold the key's sha256, never the key."""

from __future__ import annotations

from typing import Any

from audiorag.api.db import Database, now


def insert(db: Database, key_id: str, tenant: str, name: str, digest: str) -> None:
    db.run(
        "INSERT INTO api_keys (id, tenant, name, hash, created) VALUES (?, ?, ?, ?, ?)",
        key_id,
        tenant,
        name,
        digest,
        now(),
    )


def revoke(db: Database, key_id: str) -> bool:
    """Revoke a live key; False when there is none with that id."""
    return (
        db.run("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", now(), key_id)
        > 0
    )


def all_keys(db: Database) -> list[dict[str, Any]]:
    return db.all("SELECT id, tenant, name, created, revoked FROM api_keys ORDER BY created")


def get(db: Database, key_id: str) -> dict[str, Any] | None:
    """``tenant``, ``hash`` and ``revoked`` of one key."""
    return db.one("SELECT tenant, hash, revoked FROM api_keys WHERE id = ?", key_id)
