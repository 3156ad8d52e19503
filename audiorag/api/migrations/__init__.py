"""The metadata schema's history (alembic): ``upgrade(engine)`` brings any database to the newest
revision. Revisions live in ``versions/``; make a new one with
``alembic -x url=sqlite:///data/service.sqlite3 revision -m "what changes"`` run from this folder
(``alembic.ini`` is not needed: ``env.py`` reads the URL), then write its ``upgrade``.

A ``service.sqlite3`` written before migrations existed has the tables of revision 0001 and no
``alembic_version``: it is stamped 0001 (adopted as it is) and upgraded from there.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

FOLDER = Path(__file__).parent
FIRST = "0001"
LOCK_KEY = 0x617564696F726167  # "audiorag": PostgreSQL advisory lock id for migrating


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(FOLDER))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Adopt a pre-migration SQLite file (stamp), then upgrade to the newest revision. Several
    processes opening one database at once take turns (an advisory lock on PostgreSQL, a file
    lock beside a SQLite file)."""
    with _exclusive(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        cfg = config(conn)
        tables = set(sa.inspect(conn).get_table_names())
        if "alembic_version" not in tables and "jobs" in tables:
            command.stamp(cfg, FIRST)
        command.upgrade(cfg, "head")


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """A file lock beside a SQLite database (its DDL is not transactional under pysqlite)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
