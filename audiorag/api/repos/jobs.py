"""Generation jobs (``jobs``): a row is a job's truth — status, progress, result, error, and the
worker running it — so any API process (or replica) can answer for it and it survives restarts.

The state machine: ``queued → running → succeeded | failed | cancelled``. A running job whose
worker stops sending heartbeats (its process died) goes back to ``queued`` once; the second time
it is failed with the reason. Every transition is one conditional UPDATE, so two processes never
both move a job (claiming takes ``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from audiorag.api.db import Database, jobs, now

J = jobs.c

INTERRUPTED = "interrupted: the service stopped before this job finished; run it again"
WORKER_LOST = (
    "interrupted: the process rendering it stopped answering {attempts} times (it died or hung); "
    "run it again"
)
MAX_ATTEMPTS = 2  # a job is run at most twice by workers that die: re-queued once, then failed


# --- reading -------------------------------------------------------------------------------------


def get(db: Database, job_id: str) -> dict[str, Any] | None:
    return db.one(sa.select(jobs).where(J.id == job_id))


def for_tenant(db: Database, tenant: str, job_id: str) -> dict[str, Any] | None:
    return db.one(sa.select(jobs).where(J.id == job_id, J.tenant == tenant))


def in_session(db: Database, tenant: str, session_id: str) -> list[dict[str, Any]]:
    """A session's jobs (its takes), oldest first."""
    stmt = sa.select(jobs).where(J.session_id == session_id, J.tenant == tenant)
    return db.all(stmt.order_by(J.created))


def count_in_session(db: Database, session_id: str) -> int:
    row = db.one(sa.select(sa.func.count().label("n")).where(J.session_id == session_id))
    return int(row["n"]) if row else 0


def take_in_session(
    db: Database, tenant: str, session_id: str, take_id: str
) -> dict[str, Any] | None:
    """A session's take by its take id, or by its job id before it has one."""
    return db.one(
        sa.select(jobs).where(
            J.session_id == session_id,
            J.tenant == tenant,
            sa.or_(J.take_id == take_id, J.id == take_id),
        )
    )


def by_watermark(db: Database, payload: str, tenant: str | None = None) -> dict[str, Any] | None:
    """The latest succeeded job whose take carries watermark ``payload`` (hex), optionally only
    among ``tenant``'s."""
    if db.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        manifest = sa.cast(sa.type_coerce(J.manifest, sa.Text), JSONB)
        marked = sa.func.jsonb_extract_path_text(manifest, "watermark", "payload")
    else:
        marked = sa.func.json_extract(J.manifest, "$.watermark.payload")
    stmt = sa.select(jobs).where(J.status == "succeeded", marked == payload)
    if tenant is not None:
        stmt = stmt.where(J.tenant == tenant)
    return db.one(stmt.order_by(J.finished.desc()).limit(1))


def queued_ids(db: Database) -> list[str]:
    """Jobs waiting to run, oldest first."""
    rows = db.all(sa.select(J.id).where(J.status == "queued").order_by(J.created))
    return [r["id"] for r in rows]


def count_queued(db: Database) -> int:
    """Jobs waiting in the shared table (every replica's): what back-pressure counts."""
    row = db.one(sa.select(sa.func.count().label("n")).where(J.status == "queued"))
    return int(row["n"]) if row else 0


def render_load(db: Database, recent: int = 20) -> tuple[int, float | None]:
    """Jobs rendering now (every process's) and the mean seconds of the last ``recent`` renders
    (None before any): what Retry-After is estimated from, wherever the renders run."""
    row = db.one(sa.select(sa.func.count().label("n")).where(J.status == "running"))
    latest = (
        sa.select((J.finished - J.started).label("s"))
        .where(J.status == "succeeded", J.started.is_not(None), J.finished.is_not(None))
        .order_by(J.finished.desc())
        .limit(recent)
        .subquery()
    )
    mean = db.one(sa.select(sa.func.avg(latest.c.s).label("s")))
    seconds = mean["s"] if mean else None
    return (int(row["n"]) if row else 0), (float(seconds) if seconds is not None else None)


def counts(db: Database) -> dict[str, int]:
    """Jobs by status."""
    rows = db.all(sa.select(J.status, sa.func.count().label("n")).group_by(J.status))
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
        sa.insert(jobs).values(
            id=job_id,
            tenant=tenant,
            session_id=session_id,
            parent_take=parent_take,
            status="queued",
            spec=spec,
            created=now(),
        )
    )


def delete(db: Database, job_id: str) -> None:
    db.run(sa.delete(jobs).where(J.id == job_id))


def claim_next(db: Database, worker: str) -> dict[str, Any] | None:
    """Take the oldest queued, uncancelled job for ``worker`` (running, heartbeat now, one more
    attempt), or None when nothing waits. Atomic across processes: PostgreSQL skips rows another
    claim holds locked; SQLite runs the one UPDATE under its write lock."""
    oldest = (
        sa.select(J.id)
        .where(J.status == "queued", J.cancel_requested == 0)
        .order_by(J.created, J.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    t = now()
    stmt = (
        sa.update(jobs)
        .where(J.id == oldest, J.status == "queued")
        .values(
            status="running",
            worker=worker,
            started=t,
            heartbeat=t,
            done=0,
            attempts=J.attempts + 1,
        )
        .returning(*jobs.c)
    )
    return db.one(stmt)


def claim(db: Database, job_id: str, worker: str = "") -> bool:
    """Mark one queued, uncancelled job running for ``worker``; False when it is not (cancelled,
    or another process took it)."""
    t = now()
    stmt = (
        sa.update(jobs)
        .where(J.id == job_id, J.status == "queued", J.cancel_requested == 0)
        .values(status="running", worker=worker, started=t, heartbeat=t, attempts=J.attempts + 1)
    )
    return db.run(stmt) > 0


def progress(db: Database, job_id: str, done: int, total: int, worker: str | None = None) -> bool:
    """Record progress (and a heartbeat); True when the job should stop: a cancel was asked for
    since, or (given ``worker``) the job is no longer this worker's to run."""
    stmt = sa.update(jobs).where(J.id == job_id)
    if worker is not None:
        stmt = stmt.where(J.worker == worker, J.status == "running")
    row = db.one(stmt.values(done=done, total=total, heartbeat=now()).returning(J.cancel_requested))
    if row is None:
        return worker is not None
    return bool(row["cancel_requested"])


def heartbeat(db: Database, worker: str) -> list[str]:
    """``worker`` is alive: stamp its running jobs; the ids among them asked to cancel."""
    stmt = (
        sa.update(jobs)
        .where(J.worker == worker, J.status == "running")
        .values(heartbeat=now())
        .returning(J.id, J.cancel_requested)
    )
    return [r["id"] for r in db.all(stmt) if r["cancel_requested"]]


def request_cancel(db: Database, job_id: str) -> None:
    """Flag a job for cancelling; a queued one is final at once (a client polling right after
    DELETE sees it cancelled), a running one stops at its next step."""
    with db.tx() as conn:
        conn.execute(
            sa.update(jobs)
            .where(J.id == job_id, J.status.in_(("queued", "running")))
            .values(cancel_requested=1)
        )
        conn.execute(
            sa.update(jobs)
            .where(J.id == job_id, J.status == "queued")
            .values(status="cancelled", finished=now())
        )


def _mine(stmt: Any, job_id: str, worker: str | None) -> Any:
    stmt = stmt.where(J.id == job_id)
    return stmt if worker is None else stmt.where(J.worker == worker, J.status == "running")


def succeed(
    db: Database,
    job_id: str,
    take_id: str,
    folder: str,
    audio: dict[str, str],
    manifest: dict[str, Any],
    worker: str | None = None,
) -> bool:
    """Record the take; False when (given ``worker``) the job was no longer this worker's."""
    values = {
        "status": "succeeded",
        "finished": now(),
        "take_id": take_id,
        "folder": folder,
        "audio": audio,
        "manifest": manifest,
        "done": sa.case((J.total > J.done, J.total), else_=J.done),
    }
    return db.run(_mine(sa.update(jobs), job_id, worker).values(**values)) > 0


def finish(
    db: Database, job_id: str, status: str, error: str | None, worker: str | None = None
) -> None:
    """End a job as ``failed`` or ``cancelled``."""
    stmt = _mine(sa.update(jobs), job_id, worker)
    db.run(stmt.values(status=status, finished=now(), error=error))


def requeue(db: Database, job_id: str, worker: str | None = None) -> None:
    """Put a running job back in the queue (the service is stopping): any worker runs it again
    from the beginning, and this try does not count against it."""
    stmt = _mine(sa.update(jobs), job_id, worker).where(J.status == "running")
    db.run(
        stmt.values(
            status="queued",
            worker=None,
            started=None,
            heartbeat=None,
            done=0,
            attempts=sa.case((J.attempts > 0, J.attempts - 1), else_=0),
        )
    )


def reap_stale(db: Database, older_than: float) -> dict[str, int]:
    """Running jobs whose worker's last heartbeat is before ``older_than`` (it died): a cancelled
    one ends cancelled, one tried :data:`MAX_ATTEMPTS` times fails with the reason, the others go
    back to the queue. Safe to run from every replica at once: each UPDATE re-checks its rows."""
    stale = sa.and_(J.status == "running", J.heartbeat < older_than)
    t = now()
    with db.tx() as conn:
        cancelled = conn.execute(
            sa.update(jobs)
            .where(stale, J.cancel_requested != 0)
            .values(status="cancelled", finished=t, worker=None)
        ).rowcount
        failed = conn.execute(
            sa.update(jobs)
            .where(stale, J.attempts >= MAX_ATTEMPTS)
            .values(
                status="failed",
                finished=t,
                worker=None,
                error=WORKER_LOST.format(attempts=MAX_ATTEMPTS),
            )
        ).rowcount
        requeued = conn.execute(
            sa.update(jobs)
            .where(stale)
            .values(status="queued", worker=None, started=None, heartbeat=None, done=0)
        ).rowcount
    return {"cancelled": cancelled, "failed": failed, "requeued": requeued}


def fail_orphans(db: Database) -> int:
    """Jobs left *running* with no worker recorded (written before jobs had workers: nothing
    can tell whether theirs lives) are failed with a reason; queued ones stay queued. Jobs with
    a worker are the stale-heartbeat check's (:func:`reap_stale`)."""
    stmt = sa.update(jobs).where(J.status == "running", J.worker.is_(None))
    return db.run(stmt.values(status="failed", finished=now(), error=INTERRUPTED))
