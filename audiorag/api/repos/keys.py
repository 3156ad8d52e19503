"""API keys (``api_keys``): rows hold the key's sha256, never the key."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from audiorag.api.db import Database, api_keys, now

T = api_keys.c


def insert(db: Database, key_id: str, tenant: str, name: str, digest: str) -> None:
    db.run(
        sa.insert(api_keys).values(id=key_id, tenant=tenant, name=name, hash=digest, created=now())
    )


def revoke(db: Database, key_id: str) -> bool:
    """Revoke a live key; False when there is none with that id."""
    stmt = sa.update(api_keys).where(T.id == key_id, T.revoked.is_(None)).values(revoked=now())
    return db.run(stmt) > 0


def all_keys(db: Database) -> list[dict[str, Any]]:
    return db.all(sa.select(T.id, T.tenant, T.name, T.created, T.revoked).order_by(T.created))


def get(db: Database, key_id: str) -> dict[str, Any] | None:
    """``tenant``, ``hash`` and ``revoked`` of one key."""
    return db.one(sa.select(T.tenant, T.hash, T.revoked).where(T.id == key_id))
