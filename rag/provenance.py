"""Provenance: the registry of rendered takes, and what a take's manifest says about its seeds.

Every rendered take carries a watermark whose 32-bit payload is a key into :class:`ProvenanceLog`,
a table holding a full copy of the take's manifest (request, seeding items, licences), so
``audiorag watermark detect`` can trace a file back even after its output folder is gone.

The table lives in a SQLite file in ``data_dir`` (WAL mode and a busy timeout let a CLI and a
service process share it), or — for API replicas on several machines — in the deployment's
shared PostgreSQL database, so a take made by any replica is found from any other.

Which watermarker and which log a deployment uses is decided from settings in
:mod:`audiorag.components`; this module takes explicit paths or URLs.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from generation.watermark import PAYLOAD_BITS

LOG_FILE = "provenance.sqlite"  # the log's name inside a deployment's data_dir
CREATE_LOCK = 0x70726F76  # PostgreSQL advisory lock id: replicas starting at once create it once

metadata = sa.MetaData()
takes = sa.Table(
    "takes",
    metadata,
    # 32-bit unsigned payloads need PostgreSQL's BIGINT; SQLite keeps its INTEGER PRIMARY KEY.
    sa.Column(
        "payload",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("manifest", sa.Text),  # NULL while only reserved
    sa.Column("created", sa.Float, nullable=False),
)


class ProvenanceLog:
    """Payload → manifest registry: a SQLite file at ``where`` (a path), or the database at
    ``where`` (a SQLAlchemy URL, e.g. ``postgresql+psycopg://…``)."""

    def __init__(self, where: Path | str) -> None:
        if isinstance(where, Path) or "://" not in where:
            self.path: Path | None = Path(where)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One short-lived connection per operation: safe across processes and threads.
            self.engine = sa.create_engine(
                f"sqlite:///{self.path}", poolclass=NullPool, connect_args={"timeout": 30.0}
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.path = None
            self.engine = sa.create_engine(where, pool_pre_ping=True)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": CREATE_LOCK})
            metadata.create_all(conn, checkfirst=True)

    @classmethod
    def in_folder(cls, data_dir: Path) -> ProvenanceLog:
        """The log of the deployment whose data lives in ``data_dir``."""
        return cls(Path(data_dir) / LOG_FILE)

    def _insert(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(takes)

    def new_payload(self) -> int:
        """A random 32-bit payload not used before, reserved in the log at once.

        Reserving (a row with no manifest yet) closes the race where two renders draw the same
        number before either records it.
        """
        with self.engine.begin() as conn:
            for _ in range(1000):
                payload = secrets.randbits(PAYLOAD_BITS)
                row = self._insert().values(payload=payload, manifest=None, created=time.time())
                # RETURNING, not rowcount: drivers report -1 for an INSERT … ON CONFLICT.
                added = row.on_conflict_do_nothing().returning(takes.c.payload)
                if conn.execute(added).scalar() is not None:
                    return payload
        raise RuntimeError("could not find an unused payload in 1000 draws")

    def record(self, payload: int, manifest: dict) -> None:
        """Store (or replace) the full manifest of the take marked with ``payload``."""
        if not 0 <= payload < 1 << PAYLOAD_BITS:
            raise ValueError(f"payload must be a {PAYLOAD_BITS}-bit unsigned integer")
        text = json.dumps(manifest, ensure_ascii=False, sort_keys=True, default=str)
        row = self._insert().values(payload=payload, manifest=text, created=time.time())
        upsert = row.on_conflict_do_update(
            index_elements=["payload"], set_={"manifest": row.excluded.manifest}
        )
        with self.engine.begin() as conn:
            conn.execute(upsert)

    def find(self, payload: int) -> dict | None:
        """The manifest recorded for ``payload``, or None (unknown, or reserved only)."""
        with self.engine.connect() as conn:
            text = conn.execute(
                sa.select(takes.c.manifest).where(takes.c.payload == payload)
            ).scalar()
        return json.loads(text) if text is not None else None


def _sqlite_pragmas(conn: sqlite3.Connection, _record: Any) -> None:
    conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    conn.execute("PRAGMA busy_timeout=30000")


# --- what a manifest says, for people tracing a file ------------------------------------------


def take_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """Take id, prompt and seeding items read defensively: older manifests may lack keys."""
    return {
        "take_id": manifest.get("take_id") or manifest.get("id"),
        "created_at": manifest.get("created_at"),
        "prompt": _prompt(manifest),
        "model": _get(manifest, "model", "id"),
        "seeds": [_seed(s) for s in _list(manifest.get("seeds") or manifest.get("seeding_items"))],
    }


def _prompt(manifest: dict[str, Any]) -> str | None:
    """The user's prompt: ``prompt.user``, a plain ``prompt`` string, or ``request.prompt``."""
    prompt = manifest.get("prompt")
    if isinstance(prompt, dict):
        prompt = prompt.get("user") or prompt.get("enriched")
    if not prompt:
        prompt = _get(manifest, "request", "prompt")
    return str(prompt) if prompt else None


def _seed(seed: Any) -> dict[str, Any]:
    if not isinstance(seed, dict):
        return {"id": str(seed)}
    licence = seed.get("licence") if isinstance(seed.get("licence"), dict) else {}
    return {
        "id": seed.get("id"),
        "path": seed.get("path"),
        "catalog": seed.get("catalog"),
        "licence_id": licence.get("id"),
        "holder": licence.get("holder"),
        "allowed_uses": _list(licence.get("allowed_uses")),
        "attribution": licence.get("attribution"),
    }


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else []
