"""The metadata repositories and the job queue's state machine, against both engines: the
embedded SQLite file and a real PostgreSQL server (Debian's, started by the test setup).

Keys, grants, sessions and pins behave the same on both; jobs move queued → running → succeeded
| failed | cancelled; concurrent claims never hand one job to two workers; a job whose worker
stops sending heartbeats is queued again once, then failed with the reason. A ``service.sqlite3``
made before migrations existed is adopted, never recreated.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from audiorag.api.auth import create_key, revoke_key, verify_key
from audiorag.api.db import Database, db_path, jobs, now
from audiorag.api.repos import catalogs, keys, sessions
from audiorag.api.repos import jobs as repo


def _fresh_postgres(url: str) -> str:
    """A new empty database on the test server, so each test starts clean."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path) -> Path | str:
    if request.param == "sqlite":
        return db_path(tmp_path / "data")
    return _fresh_postgres(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db(where):
    database = Database(where)
    yield database
    database.close()


def _age(db: Database, job_id: str, seconds: float) -> None:
    """Make a running job's heartbeat ``seconds`` old, as if its process had died then."""
    db.run(sa.update(jobs).where(jobs.c.id == job_id).values(heartbeat=now() - seconds))


# --- keys, grants, sessions, pins ----------------------------------------------------------------


def test_keys(db):
    key_id, key = create_key(db, "acme", name="ci")
    assert verify_key(db, key).tenant == "acme"
    assert verify_key(db, key + "x") is None
    listed = [(k["id"], k["tenant"], k["name"]) for k in keys.all_keys(db)]
    assert listed == [(key_id, "acme", "ci")]
    assert key not in str(db.all("SELECT * FROM api_keys"))  # only the hash is kept
    assert revoke_key(db, key_id) and not revoke_key(db, key_id)
    assert verify_key(db, key) is None
    assert keys.get(db, key_id)["revoked"] is not None


def test_catalog_grants(db, tmp_path):
    catalogs.add_writable(db, "acme", "loops", "acme/loops", tmp_path / "u")
    catalogs.add_writable(db, "acme", "loops", "acme/other", tmp_path / "v")  # a no-op
    catalogs.put_grant(db, "acme", "demo", "demo", None)
    catalogs.put_grant(db, "acme", "demo", "demo-v2", tmp_path / "demo")  # re-grant replaces
    catalogs.put_grant(db, "globex", "demo", "demo", None)
    mine = catalogs.for_tenant(db, "acme")
    assert [(c["name"], c["store_name"], c["writable"]) for c in mine] == [
        ("demo", "demo-v2", 0),
        ("loops", "acme/loops", 1),
    ]
    assert catalogs.find(db, "acme", "demo")["root"] == str(tmp_path / "demo")
    assert catalogs.find(db, "acme", "nope") is None
    assert [(c["tenant"], c["name"]) for c in catalogs.listing(db)] == [
        ("acme", "demo"),
        ("acme", "loops"),
        ("globex", "demo"),
    ]
    assert len(catalogs.listing(db, "globex")) == 1
    assert catalogs.remove(db, "acme", "demo") and not catalogs.remove(db, "acme", "demo")


def test_sessions_and_pins(db):
    sessions.create(db, "s1", "acme", "night", ["loops"], '{"prompt": "x"}', ["b", "a", "b"])
    time.sleep(0.01)
    sessions.create(db, "s2", "acme", "day", [], "{}", [])
    row = sessions.get(db, "acme", "s1")
    assert row["catalogs"] == ["loops"] and row["defaults"] == {"prompt": "x"}
    assert sessions.get(db, "globex", "s1") is None
    assert [s["id"] for s in sessions.for_tenant(db, "acme")] == ["s2", "s1"]
    assert sessions.pins(db, "s1") == ["b", "a"]  # given order, duplicates once
    sessions.add_pin(db, "s1", "c")
    sessions.add_pin(db, "s1", "c")
    assert sessions.pins(db, "s1") == ["b", "a", "c"]
    assert sessions.remove_pin(db, "s1", "a") and not sessions.remove_pin(db, "s1", "a")
    assert sessions.pins(db, "s1") == ["b", "c"]


# --- the job state machine -----------------------------------------------------------------------


def test_job_runs_to_success_and_is_found_by_its_watermark(db):
    repo.insert(db, "j1", "acme", {"prompt": "x"}, "s1", None)
    assert repo.get(db, "j1")["status"] == "queued" and repo.count_queued(db) == 1
    row = repo.claim_next(db, "w1")
    assert (row["id"], row["status"], row["worker"], row["attempts"]) == ("j1", "running", "w1", 1)
    assert row["spec"] == {"prompt": "x"}
    assert repo.claim_next(db, "w2") is None  # nothing else waits
    assert repo.progress(db, "j1", 3, 10, "w1") is False
    assert repo.progress(db, "j1", 4, 10, "w2") is True  # not w2's job: it must stop
    manifest = {"take_id": "t1", "watermark": {"payload": "00ff00ff"}}
    assert repo.succeed(db, "j1", "t1", "/takes/t1", {"wav": "/takes/t1/take.wav"}, manifest, "w1")
    done = repo.get(db, "j1")
    assert (done["status"], done["done"], done["total"]) == ("succeeded", 10, 10)
    assert done["audio"] == {"wav": "/takes/t1/take.wav"} and done["manifest"] == manifest
    assert repo.by_watermark(db, "00ff00ff")["id"] == "j1"
    assert repo.by_watermark(db, "00ff00ff", "acme")["id"] == "j1"
    assert repo.by_watermark(db, "00ff00ff", "globex") is None
    assert repo.take_in_session(db, "acme", "s1", "t1")["id"] == "j1"
    assert [j["id"] for j in repo.in_session(db, "acme", "s1")] == ["j1"]
    assert repo.count_in_session(db, "s1") == 1
    assert repo.counts(db) == {"succeeded": 1}


def test_cancel_queued_and_running(db):
    repo.insert(db, "q", "acme", {}, None, None)
    repo.insert(db, "r", "acme", {}, None, None)
    running = repo.claim_next(db, "w1")
    assert running["id"] == "q"  # oldest first
    repo.request_cancel(db, "r")  # still queued: final at once, never claimed
    assert repo.get(db, "r")["status"] == "cancelled"
    assert repo.claim_next(db, "w1") is None
    repo.request_cancel(db, "q")  # running: its worker sees it at the next step or heartbeat
    assert repo.get(db, "q")["status"] == "running"
    assert repo.heartbeat(db, "w1") == ["q"]
    assert repo.progress(db, "q", 1, 2, "w1") is True
    repo.finish(db, "q", "cancelled", None, "w1")
    assert repo.get(db, "q")["status"] == "cancelled"


def test_stop_requeues_without_spending_an_attempt(db):
    repo.insert(db, "j", "acme", {}, None, None)
    repo.claim_next(db, "w1")
    repo.requeue(db, "j", "w1")
    row = repo.get(db, "j")
    assert (row["status"], row["worker"], row["attempts"]) == ("queued", None, 0)


def test_dead_worker_requeues_once_then_fails_with_the_reason(db):
    repo.insert(db, "j", "acme", {}, None, None)
    repo.claim_next(db, "w1")
    assert repo.reap_stale(db, now() - 30) == {"cancelled": 0, "failed": 0, "requeued": 0}
    _age(db, "j", 60)  # w1's process died a minute ago
    assert repo.reap_stale(db, now() - 30)["requeued"] == 1
    assert repo.get(db, "j")["status"] == "queued"
    assert repo.claim_next(db, "w2")["attempts"] == 2
    # w1 comes back from the dead: the job is not its to finish any more
    assert repo.progress(db, "j", 1, 2, "w1") is True
    assert not repo.succeed(db, "j", "t", "/t", {}, {}, "w1")
    repo.heartbeat(db, "w2")
    assert repo.reap_stale(db, now() - 30)["requeued"] == 0  # w2 is alive
    _age(db, "j", 60)  # …and now w2 died too
    assert repo.reap_stale(db, now() - 30)["failed"] == 1
    failed = repo.get(db, "j")
    assert failed["status"] == "failed" and "interrupted" in failed["error"]
    assert "2 times" in failed["error"]


def test_dead_worker_of_a_cancelled_job_ends_it_cancelled(db):
    repo.insert(db, "j", "acme", {}, None, None)
    repo.claim_next(db, "w1")
    repo.request_cancel(db, "j")
    _age(db, "j", 60)
    assert repo.reap_stale(db, now() - 30)["cancelled"] == 1
    assert repo.get(db, "j")["status"] == "cancelled"


def test_legacy_running_rows_without_a_worker_are_failed(db):
    db.run(
        sa.insert(jobs).values(id="old", tenant="acme", status="running", spec={}, created=now())
    )
    repo.insert(db, "new", "acme", {}, None, None)
    repo.claim_next(db, "w1")
    assert repo.fail_orphans(db) == 1
    assert repo.get(db, "old")["error"] == repo.INTERRUPTED
    assert repo.get(db, "new")["status"] == "running"  # its worker's heartbeat decides


def test_concurrent_claims_never_share_a_job(where):
    """Four workers, each with its own connection pool (as four processes would have), race
    for 60 jobs: every job is claimed exactly once."""
    setup = Database(where)
    for n in range(60):
        repo.insert(setup, f"j{n:02d}", "acme", {}, None, None)
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        own = Database(where)
        try:
            start.wait()
            while (row := repo.claim_next(own, name)) is not None:
                with lock:
                    claimed.append((row["id"], name))
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    counts = Counter(job for job, _ in claimed)
    assert len(counts) == 60 and set(counts.values()) == {1}, counts
    owners = {r["id"]: r["worker"] for r in setup.all(sa.select(jobs.c.id, jobs.c.worker))}
    assert owners == dict(claimed)
    setup.close()


# --- the schema's history ------------------------------------------------------------------------

# service.sqlite3 as every release before migrations wrote it (audiorag/api/db.py's SCHEMA).
PRE_MIGRATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', hash TEXT NOT NULL, created REAL NOT NULL, revoked REAL);
CREATE TABLE IF NOT EXISTS catalogs (tenant TEXT NOT NULL, name TEXT NOT NULL,
    store_name TEXT NOT NULL, root TEXT, writable INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL, PRIMARY KEY (tenant, name));
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, tenant TEXT NOT NULL,
    name TEXT NOT NULL, catalogs TEXT NOT NULL, defaults TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pins (session_id TEXT NOT NULL, item_id TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (session_id, item_id));
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, session_id TEXT,
    parent_take TEXT, status TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0, spec TEXT NOT NULL, take_id TEXT, folder TEXT, audio TEXT,
    manifest TEXT, error TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, started REAL, finished REAL);
CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs (session_id, created);
CREATE INDEX IF NOT EXISTS jobs_by_take ON jobs (take_id);
"""


def test_a_pre_migration_sqlite_file_is_adopted_not_recreated(tmp_path):
    path = db_path(tmp_path)
    old = sqlite3.connect(path)
    old.executescript(PRE_MIGRATION_SCHEMA)
    old.execute(
        "INSERT INTO api_keys (id, tenant, name, hash, created) VALUES ('k1', 'acme', '', 'h', 1)"
    )
    old.execute(
        "INSERT INTO jobs (id, tenant, status, spec, manifest, created, finished) VALUES "
        "('j1', 'acme', 'succeeded', json('{\"a\": 1}'), json('{\"watermark\": "
        '{"payload": "0a"}}\'), 1, 2)'
    )
    old.commit()
    old.close()
    db = Database(path)
    try:
        assert keys.get(db, "k1")["tenant"] == "acme"
        job = repo.get(db, "j1")
        assert job["spec"] == {"a": 1} and job["attempts"] == 0 and job["worker"] is None
        assert repo.by_watermark(db, "0a")["id"] == "j1"
        assert db.one("SELECT version_num FROM alembic_version")["version_num"] == "0002"
    finally:
        db.close()
    Database(path).close()  # opening again: already at the newest revision, nothing changes


def test_a_fresh_database_is_created_at_the_newest_revision(db):
    assert db.one("SELECT version_num FROM alembic_version")["version_num"] == "0002"
    names = set(sa.inspect(db.engine).get_table_names())
    assert {"api_keys", "catalogs", "sessions", "pins", "jobs"} <= names


# --- provenance --------------------------------------------------------------------------------


def test_provenance_recorded_by_one_process_is_found_by_another(where, tmp_path):
    """Two logs on one database (two replicas): a take recorded by one is traced by the other;
    with ``AUDIORAG_DATABASE_URL`` set the deployment's log is that database."""
    from audiorag.api.db import engine_url
    from audiorag.components import provenance_log
    from audiorag.settings import Settings
    from rag.provenance import ProvenanceLog

    if isinstance(where, Path):
        writer_at = reader_at = where.parent / "provenance.sqlite"
    else:
        settings = Settings(data_dir=tmp_path / "data", database_url=where)
        assert provenance_log(settings).path is None  # not a file in data_dir
        writer_at = reader_at = engine_url(where)
    writer, reader = ProvenanceLog(writer_at), ProvenanceLog(reader_at)
    payloads = {writer.new_payload() for _ in range(50)}
    assert len(payloads) == 50  # reserved: never drawn twice
    top = (1 << 32) - 1  # the largest 32-bit payload fits (BIGINT on PostgreSQL)
    writer.record(top, {"take_id": "t1", "seeds": [{"id": "a"}]})
    assert reader.find(top) == {"take_id": "t1", "seeds": [{"id": "a"}]}
    reader.record(top, {"take_id": "t1", "again": True})  # replaced, not duplicated
    assert writer.find(top) == {"take_id": "t1", "again": True}
    assert reader.find(next(iter(payloads))) is None  # reserved only
    with pytest.raises(ValueError):
        writer.record(1 << 32, {})
