"""The service's own metadata: API keys, the catalog registry, sessions, pins and jobs (whose
finished ones are a session's takes).

One schema, defined once with SQLAlchemy Core, for two engines:

* SQLite under the data dir (``service.sqlite3``), the embedded default: one process or a few
  on one machine (WAL mode lets them share the file);
* PostgreSQL when ``AUDIORAG_DATABASE_URL`` is set: any number of API replicas on any number of
  machines share it (stateless replicas).

The schema's history is alembic's (``audiorag/api/migrations``): opening a database upgrades it
to the newest revision. A ``service.sqlite3`` made before the migrations existed is adopted —
stamped as the first revision, then upgraded — never recreated.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

metadata = sa.MetaData()


class JsonText(sa.TypeDecorator):
    """JSON kept as TEXT (what the SQLite schema always held): encoded on the way in, decoded on
    the way out, on both engines."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else json.dumps(value, default=str)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else json.loads(value)


api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("hash", sa.Text, nullable=False),  # sha256 of the whole key; never the key
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Float),
)

catalogs = sa.Table(
    "catalogs",
    metadata,
    sa.Column("tenant", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),  # what the tenant calls it
    sa.Column("store_name", sa.Text, nullable=False),  # the payload `catalog` value in the store
    sa.Column("root", sa.Text),  # folder the payload paths are relative to
    sa.Column("writable", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created", sa.Float, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("catalogs", JsonText, nullable=False),  # list of the tenant's catalog names
    sa.Column("defaults", JsonText, nullable=False),  # generation settings
    sa.Column("created", sa.Float, nullable=False),
)

pins = sa.Table(
    "pins",
    metadata,
    sa.Column("session_id", sa.Text, primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("session_id", sa.Text),
    sa.Column("parent_take", sa.Text),
    sa.Column("status", sa.Text, nullable=False),  # queued | running | succeeded | failed | …
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("spec", JsonText, nullable=False),  # everything needed to run it again
    sa.Column("take_id", sa.Text),
    sa.Column("folder", sa.Text),
    sa.Column("audio", JsonText),  # format -> path
    sa.Column("manifest", JsonText),
    sa.Column("error", sa.Text),
    sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("started", sa.Float),
    sa.Column("finished", sa.Float),
    # Revision 0002 (jobs across processes): who runs it, when it last said so, how many tries.
    sa.Column("worker", sa.Text),
    sa.Column("heartbeat", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("jobs_by_session", "session_id", "created"),
    sa.Index("jobs_by_take", "take_id"),
    sa.Index("jobs_by_status", "status", "created"),
)

JSON_COLUMNS = {"catalogs", "defaults", "spec", "audio", "manifest"}
SQLITE_FILE = "service.sqlite3"


def db_path(data_dir: Path) -> Path:
    return data_dir / SQLITE_FILE


def database_url(data_dir: Path, url: str | None) -> str:
    """The URL a deployment's metadata lives at: ``url`` (``AUDIORAG_DATABASE_URL``) when set,
    else the SQLite file under ``data_dir``."""
    return engine_url(url) if url else f"sqlite:///{db_path(data_dir)}"


def engine_url(url: str) -> str:
    """``postgresql://…`` (what people write) → the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite files get WAL mode, foreign keys and a 30 s busy wait;
    PostgreSQL connections are checked before use (a restarted server is reconnected to)."""
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(conn: sqlite3.Connection, _record: Any) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=20)


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


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for other engines or in-memory)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


class Database:
    """The metadata database at a path (SQLite) or URL (SQLite or PostgreSQL), migrated to the
    newest schema on open.

    Repositories (``api.repos``) pass SQLAlchemy statements; ``one``/``all``/``run`` also take
    plain SQL with ``?`` placeholders (operators' and tests' ad-hoc queries). SQLite statements
    are serialised by a process lock (its writers queue anyway, and a read that turns into a
    write mid-transaction would otherwise fail at once with "database is locked").
    """

    def __init__(self, where: Path | str) -> None:
        url = f"sqlite:///{where}" if isinstance(where, Path) else engine_url(where)
        file = sqlite_file(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            check_sqlite(file, "the API keys, catalog grants, sessions and generation jobs")
        self.url = url
        self.path = file
        self.engine = open_engine(url)
        self.dialect = self.engine.dialect.name
        self._lock = threading.RLock() if self.dialect == "sqlite" else None
        from audiorag.api.migrations import upgrade

        with self._serial():
            upgrade(self.engine)

    @classmethod
    def for_deployment(cls, data_dir: Path, url: str | None) -> Database:
        """``AUDIORAG_DATABASE_URL`` when set, else ``data_dir/service.sqlite3``."""
        return cls(url) if url else cls(db_path(data_dir))

    def _serial(self):
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on error."""
        with self._serial(), self.engine.begin() as conn:
            yield conn

    def _execute(self, conn: Connection, statement: Any, args: tuple) -> sa.CursorResult:
        if isinstance(statement, str):
            if self.dialect != "sqlite":  # psycopg's placeholders are %s
                statement = statement.replace("%", "%%").replace("?", "%s")
            return conn.exec_driver_sql(statement, args)
        return conn.execute(statement)

    def one(self, statement: Any, *args: Any) -> dict[str, Any] | None:
        with self.tx() as conn:
            row = self._execute(conn, statement, args).mappings().fetchone()
        return decode(row, raw=isinstance(statement, str)) if row is not None else None

    def all(self, statement: Any, *args: Any) -> list[dict[str, Any]]:
        with self.tx() as conn:
            rows = self._execute(conn, statement, args).mappings().fetchall()
        return [decode(r, raw=isinstance(statement, str)) for r in rows]

    def run(self, statement: Any, *args: Any) -> int:
        """Execute a write; the number of rows it touched."""
        with self.tx() as conn:
            return self._execute(conn, statement, args).rowcount

    def insert(self, table: sa.Table) -> Any:
        """The engine's own INSERT (it has ``on_conflict_do_nothing`` / ``_do_update``)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def close(self) -> None:
        self.engine.dispose()


def decode(row: Any, *, raw: bool = False) -> dict[str, Any]:
    """A row as a dict; plain SQL's JSON columns come back as text and are decoded here."""
    out = dict(row)
    if raw:
        for key in JSON_COLUMNS & set(out):
            if isinstance(out[key], str):
                out[key] = json.loads(out[key])
    return out


def now() -> float:
    return time.time()
