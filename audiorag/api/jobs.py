"""Generation jobs: a bounded queue in front of one worker thread per generation device.

A job's row in SQLite is its truth (status, progress, result, error), so status survives a
restart and any API process can answer for it. The queue itself is per process and bounded: a
full queue refuses new work at once (429 + Retry-After) instead of letting waits grow unbounded.

Cancelling sets the job's ``cancel_requested`` flag; a queued job is dropped when its turn comes,
a running one sees the flag at its next step (the progress callback checks it and sets the
orchestrator's cancel event) — which also works when the DELETE landed on another API process.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from audiorag.api.db import Database, now
from audiorag.api.metrics import Metrics

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")


class TakeLike(Protocol):
    id: str
    folder: Path
    audio: dict[str, Path]
    manifest: dict[str, Any]


class Generates(Protocol):
    """What a worker runs: ``rag.orchestrate.Orchestrator`` (or anything shaped like it)."""

    def generate(
        self,
        request: Any,
        out_dir: Path,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> TakeLike: ...


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the generation queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


def new_job_id() -> str:
    return uuid.uuid4().hex


def recover_interrupted(db: Database) -> int:
    """Jobs left queued or running by a stopped service are failed, with a reason: their worker
    is gone. Run once per deployment start, before any worker takes jobs."""
    return db.run(
        "UPDATE jobs SET status = 'failed', finished = ?, error = ? "
        "WHERE status IN ('queued', 'running')",
        now(),
        "interrupted: the service stopped before this job finished; run it again",
    )


class JobQueue:
    def __init__(
        self,
        db: Database,
        runner: Callable[[], Generates | None],
        build_request: Callable[[dict[str, Any]], Any],
        *,
        out_dir: Callable[[str], Path],
        maxsize: int,
        workers: int,
        metrics: Metrics,
    ) -> None:
        self.db = db
        self._runner = runner  # called per job: the orchestrator loads after the app starts
        self._build_request = build_request
        self._out_dir = out_dir
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=maxsize)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._mean_seconds = 30.0  # first guess for Retry-After, refined by finished jobs
        self.metrics = metrics

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"generation-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            for event in self._running.values():
                event.set()
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # --- submitting and cancelling ----------------------------------------------------------------

    def submit(
        self,
        tenant: str,
        spec: dict[str, Any],
        *,
        session_id: str | None = None,
        parent_take: str | None = None,
    ) -> str:
        """Record and enqueue a job; :class:`QueueFull` (nothing recorded) when there is no room."""
        job_id = new_job_id()
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO jobs (id, tenant, session_id, parent_take, status, spec, created) "
                "VALUES (?, ?, ?, ?, 'queued', json(?), ?)",
                (job_id, tenant, session_id, parent_take, _json(spec), now()),
            )
        try:
            self._queue.put_nowait(job_id)
        except queue.Full:
            self.db.run("DELETE FROM jobs WHERE id = ?", job_id)
            raise QueueFull(self.retry_after()) from None
        self.metrics.queue_depth.set(self.depth)
        return job_id

    def retry_after(self) -> int:
        waiting = self.depth + len(self._running)
        return max(1, round(self._mean_seconds * waiting / max(1, self._workers)))

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop; it ends as ``cancelled`` unless it already finished."""
        self.db.run(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status IN ('queued', 'running')",
            job_id,
        )
        # A queued job is final at once: a client polling right after DELETE sees it cancelled.
        self.db.run(
            "UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ? AND status = 'queued'",
            now(),
            job_id,
        )
        with self._lock:
            event = self._running.get(job_id)
        if event is not None:
            event.set()

    # --- the worker -------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            self.metrics.queue_depth.set(self.depth)
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception:  # a bookkeeping bug must not kill the device's only worker
                log.exception("job %s: unexpected error in the worker", job_id)

    def _run(self, job_id: str) -> None:
        cancel = threading.Event()
        with self.db.tx() as conn:
            claimed = conn.execute(
                "UPDATE jobs SET status = 'running', started = ? "
                "WHERE id = ? AND status = 'queued' AND cancel_requested = 0",
                (now(), job_id),
            ).rowcount
        if not claimed:
            return  # cancelled while it waited
        row = self.db.one("SELECT tenant, spec FROM jobs WHERE id = ?", job_id)
        assert row is not None
        with self._lock:
            self._running[job_id] = cancel

        def progress(done: int, total: int) -> None:
            self.db.run("UPDATE jobs SET done = ?, total = ? WHERE id = ?", done, total, job_id)
            flag = self.db.one("SELECT cancel_requested FROM jobs WHERE id = ?", job_id)
            if flag and flag["cancel_requested"]:
                cancel.set()

        started = time.perf_counter()
        try:
            runner = self._runner()
            if runner is None:
                raise RuntimeError("the generator is not loaded")
            request = self._build_request(row["spec"])
            take = runner.generate(
                request, self._out_dir(row["tenant"]), progress=progress, cancel=cancel
            )
        except Exception as err:
            self._finish_failed(job_id, err, cancelled=cancel.is_set())
        else:
            seconds = time.perf_counter() - started
            self._mean_seconds = 0.7 * self._mean_seconds + 0.3 * seconds
            self.metrics.render_seconds.observe(seconds)
            self.db.run(
                "UPDATE jobs SET status = 'succeeded', finished = ?, take_id = ?, folder = ?, "
                "audio = json(?), manifest = json(?), done = MAX(done, total) WHERE id = ?",
                now(),
                take.id,
                str(take.folder),
                _json({k: str(v) for k, v in take.audio.items()}),
                _json(take.manifest),
                job_id,
            )
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _finish_failed(self, job_id: str, err: Exception, *, cancelled: bool) -> None:
        if cancelled:
            status, message = "cancelled", None
        elif isinstance(err, ValueError):  # GenerationError: the message says what to change
            status, message = "failed", str(err)
        else:
            log.error("job %s failed", job_id, exc_info=err)
            status, message = "failed", f"internal error ({type(err).__name__}); see the logs"
        self.db.run(
            "UPDATE jobs SET status = ?, finished = ?, error = ? WHERE id = ?",
            status,
            now(),
            message,
            job_id,
        )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
