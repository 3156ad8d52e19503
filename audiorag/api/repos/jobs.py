"""Generation jobs (``jobs``): a row is a job's truth — status, progress, result, error — so any
API process can answer for it and it survives a restart."""

from __future__ import annotations

import json
from typing import Any

from audiorag.api.db import Database, now

INTERRUPTED = "interrupted: the service stopped before this job finished; run it again"


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


# --- reading -------------------------------------------------------------------------------------


def get(db: Database, job_id: str) -> dict[str, Any] | None:
    return db.one("SELECT * FROM jobs WHERE id = ?", job_id)


def for_tenant(db: Database, tenant: str, job_id: str) -> dict[str, Any] | None:
    return db.one("SELECT * FROM jobs WHERE id = ? AND tenant = ?", job_id, tenant)


def in_session(db: Database, tenant: str, session_id: str) -> list[dict[str, Any]]:
    """A session's jobs (its takes), oldest first."""
    return db.all(
        "SELECT * FROM jobs WHERE session_id = ? AND tenant = ? ORDER BY created",
        session_id,
        tenant,
    )


def count_in_session(db: Database, session_id: str) -> int:
    row = db.one("SELECT COUNT(*) AS n FROM jobs WHERE session_id = ?", session_id)
    return int(row["n"]) if row else 0


def take_in_session(
    db: Database, tenant: str, session_id: str, take_id: str
) -> dict[str, Any] | None:
    """A session's take by its take id, or by its job id before it has one."""
    return db.one(
        "SELECT * FROM jobs WHERE session_id = ? AND tenant = ? AND (take_id = ? OR id = ?)",
        session_id,
        tenant,
        take_id,
        take_id,
    )


def by_watermark(db: Database, payload: str, tenant: str | None = None) -> dict[str, Any] | None:
    """The latest succeeded job whose take carries watermark ``payload`` (hex), optionally only
    among ``tenant``'s."""
    return db.one(
        "SELECT * FROM jobs WHERE (? IS NULL OR tenant = ?) AND status = 'succeeded' "
        "AND json_extract(manifest, '$.watermark.payload') = ? ORDER BY finished DESC LIMIT 1",
        tenant,
        tenant,
        payload,
    )


def queued_ids(db: Database) -> list[str]:
    """Jobs waiting to run, oldest first (after a restart: the ones a drain left behind)."""
    return [r["id"] for r in db.all("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created")]


def counts(db: Database) -> dict[str, int]:
    """Jobs by status."""
    rows = db.all("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


# --- writing -------------------------------------------------------------------------------------


def insert(
    db: Database,
    job_id: str,
    tenant: str,
    spec: dict[str, Any],
    session_id: str | None,
    parent_take: str | None,
) -> None:
    db.run(
        "INSERT INTO jobs (id, tenant, session_id, parent_take, status, spec, created) "
        "VALUES (?, ?, ?, ?, 'queued', json(?), ?)",
        job_id,
        tenant,
        session_id,
        parent_take,
        _json(spec),
        now(),
    )


def delete(db: Database, job_id: str) -> None:
    db.run("DELETE FROM jobs WHERE id = ?", job_id)


def claim(db: Database, job_id: str) -> bool:
    """Mark a queued, uncancelled job running; False when it is not (cancelled, or another
    process took it)."""
    return (
        db.run(
            "UPDATE jobs SET status = 'running', started = ? "
            "WHERE id = ? AND status = 'queued' AND cancel_requested = 0",
            now(),
            job_id,
        )
        > 0
    )


def progress(db: Database, job_id: str, done: int, total: int) -> bool:
    """Record progress; True when a cancel has been asked for since."""
    db.run("UPDATE jobs SET done = ?, total = ? WHERE id = ?", done, total, job_id)
    flag = db.one("SELECT cancel_requested FROM jobs WHERE id = ?", job_id)
    return bool(flag and flag["cancel_requested"])


def request_cancel(db: Database, job_id: str) -> None:
    """Flag a job for cancelling; a queued one is final at once (a client polling right after
    DELETE sees it cancelled), a running one stops at its next step."""
    with db.tx() as conn:
        conn.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status IN ('queued', 'running')",
            (job_id,),
        )
        conn.execute(
            "UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ? AND status = 'queued'",
            (now(), job_id),
        )


def succeed(
    db: Database,
    job_id: str,
    take_id: str,
    folder: str,
    audio: dict[str, str],
    manifest: dict[str, Any],
) -> None:
    db.run(
        "UPDATE jobs SET status = 'succeeded', finished = ?, take_id = ?, folder = ?, "
        "audio = json(?), manifest = json(?), done = MAX(done, total) WHERE id = ?",
        now(),
        take_id,
        folder,
        _json(audio),
        _json(manifest),
        job_id,
    )


def finish(db: Database, job_id: str, status: str, error: str | None) -> None:
    """End a job as ``failed`` or ``cancelled``."""
    db.run(
        "UPDATE jobs SET status = ?, finished = ?, error = ? WHERE id = ?",
        status,
        now(),
        error,
        job_id,
    )


def requeue(db: Database, job_id: str) -> None:
    """Put a running job back in the queue (the service is stopping): the next start runs it
    from the beginning."""
    db.run(
        "UPDATE jobs SET status = 'queued', started = NULL, done = 0 "
        "WHERE id = ? AND status = 'running'",
        job_id,
    )


def fail_orphans(db: Database) -> int:
    """Jobs left *running* by a process that died (a clean stop never leaves one) are failed
    with a reason; queued ones stay queued and run on this start."""
    return db.run(
        "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE status = 'running'",
        now(),
        INTERRUPTED,
    )
