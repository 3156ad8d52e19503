"""The service's own metadata in SQLite under the data dir: API keys, the catalog registry,
sessions, pins and jobs (whose finished ones are a session's takes).

One connection per process, shared by the request threads and the generation workers behind a
lock: every statement is short, and WAL mode lets several API processes share the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL,          -- sha256 of the whole key; the key itself is never stored
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS catalogs (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,          -- what the tenant calls it
    store_name TEXT NOT NULL,    -- the payload `catalog` value in the vector store
    root TEXT,                   -- folder the payload paths are relative to
    writable INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    catalogs TEXT NOT NULL,      -- JSON list of the tenant's catalog names
    defaults TEXT NOT NULL,      -- JSON generation settings
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pins (
    session_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (session_id, item_id)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    session_id TEXT,
    parent_take TEXT,
    status TEXT NOT NULL,        -- queued | running | succeeded | failed | cancelled
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    spec TEXT NOT NULL,          -- JSON: everything needed to run it again
    take_id TEXT,
    folder TEXT,
    audio TEXT,                  -- JSON format -> path
    manifest TEXT,               -- JSON
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs (session_id, created);
CREATE INDEX IF NOT EXISTS jobs_by_take ON jobs (take_id);
"""

JSON_COLUMNS = {"catalogs", "defaults", "spec", "audio", "manifest"}


def db_path(data_dir: Path) -> Path:
    return data_dir / "service.sqlite3"


class CorruptDatabase(RuntimeError):
    """A state file that is not a usable SQLite database; the message names it and what to do."""


def check_sqlite(path: Path, holds: str) -> None:
    """Refuse a corrupt SQLite file before anything writes to it.

    ``PRAGMA quick_check`` only reads; a file that is garbage fails at its header, one with bad
    pages fails the check. Either way the file is left exactly as it was — whatever it holds is
    the operator's to restore, not ours to overwrite with an empty schema.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
        reason = None if result and result[0] == "ok" else str(result[0] if result else "no answer")
    except sqlite3.DatabaseError as err:
        reason = str(err)
    if reason is not None:
        raise CorruptDatabase(
            f"{path} is not a usable SQLite database ({reason}). It holds {holds}. audiorag "
            f"will not start on it and has left it untouched: restore it from a backup, or move "
            f"it aside (mv {path} {path}.corrupt) to start with an empty one."
        )


class Database:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_sqlite(path, "the API keys, catalog grants, sessions and generation jobs")
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)
            self._conn.commit()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A transaction: committed on success, rolled back on error."""
        with self._lock:
            try:
                yield self._conn
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise

    def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return decode(row) if row is not None else None

    def all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [decode(r) for r in rows]

    def run(self, sql: str, *args: Any) -> int:
        with self.tx() as conn:
            return conn.execute(sql, args).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS & set(out):
        if out[key] is not None:
            out[key] = json.loads(out[key])
    return out


def now() -> float:
    return time.time()
