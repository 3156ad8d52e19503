"""Sound-design sessions (``sessions``) and their pinned items (``pins``)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from audiorag.api.db import Database, now
from audiorag.api.db import pins as pin_table
from audiorag.api.db import sessions as session_table

S, P = session_table.c, pin_table.c


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
    session = {"id": session_id, "tenant": tenant, "name": name, "created": created}
    defaults = json.loads(defaults_json)
    with db.tx() as conn:
        conn.execute(
            sa.insert(session_table).values(**session, catalogs=catalogs, defaults=defaults)
        )
        rows = [
            {"session_id": session_id, "item_id": p, "created": created + n * 1e-6}
            for n, p in enumerate(dict.fromkeys(pins))
        ]
        if rows:
            conn.execute(db.insert(pin_table).values(rows).on_conflict_do_nothing())


def get(db: Database, tenant: str, session_id: str) -> dict[str, Any] | None:
    return db.one(sa.select(session_table).where(S.id == session_id, S.tenant == tenant))


def for_tenant(db: Database, tenant: str) -> list[dict[str, Any]]:
    stmt = sa.select(session_table).where(S.tenant == tenant).order_by(S.created.desc())
    return db.all(stmt)


def pins(db: Database, session_id: str) -> list[str]:
    stmt = sa.select(P.item_id).where(P.session_id == session_id).order_by(P.created, P.item_id)
    return [r["item_id"] for r in db.all(stmt)]


def add_pin(db: Database, session_id: str, item_id: str) -> None:
    stmt = db.insert(pin_table).values(session_id=session_id, item_id=item_id, created=now())
    db.run(stmt.on_conflict_do_nothing())


def remove_pin(db: Database, session_id: str, item_id: str) -> bool:
    stmt = sa.delete(pin_table).where(P.session_id == session_id, P.item_id == item_id)
    return db.run(stmt) > 0
