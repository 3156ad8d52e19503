"""Sound-design sessions (``sessions``) and their pinned items (``pins``)."""

from __future__ import annotations

import json
from typing import Any

from audiorag.api.db import Database, now


def create(
    db: Database,
    session_id: str,
    tenant: str,
    name: str,
    catalogs: list[str],
    defaults_json: str,
    pins: list[str],
) -> None:
    """The session and its first pins in one transaction (pins keep their given order)."""
    created = now()
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO sessions (id, tenant, name, catalogs, defaults, created) "
            "VALUES (?, ?, ?, json(?), json(?), ?)",
            (session_id, tenant, name, json.dumps(catalogs), defaults_json, created),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO pins (session_id, item_id, created) VALUES (?, ?, ?)",
            [(session_id, p, created + n * 1e-6) for n, p in enumerate(pins)],
        )


def get(db: Database, tenant: str, session_id: str) -> dict[str, Any] | None:
    return db.one("SELECT * FROM sessions WHERE id = ? AND tenant = ?", session_id, tenant)


def for_tenant(db: Database, tenant: str) -> list[dict[str, Any]]:
    return db.all("SELECT * FROM sessions WHERE tenant = ? ORDER BY created DESC", tenant)


def pins(db: Database, session_id: str) -> list[str]:
    rows = db.all(
        "SELECT item_id FROM pins WHERE session_id = ? ORDER BY created, item_id", session_id
    )
    return [r["item_id"] for r in rows]


def add_pin(db: Database, session_id: str, item_id: str) -> None:
    db.run(
        "INSERT OR IGNORE INTO pins (session_id, item_id, created) VALUES (?, ?, ?)",
        session_id,
        item_id,
        now(),
    )


def remove_pin(db: Database, session_id: str, item_id: str) -> bool:
    return db.run("DELETE FROM pins WHERE session_id = ? AND item_id = ?", session_id, item_id) > 0
