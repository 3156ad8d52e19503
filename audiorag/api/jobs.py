"""Generation jobs: a queue kept in the metadata database, run by worker threads in every API
process — one process, or many replicas sharing PostgreSQL (``AUDIORAG_DATABASE_URL``).

A job's row is its truth (status, progress, result, error, the worker running it), so any
process answers for any job and nothing lives only in memory. Workers *claim* the oldest queued
job with one atomic UPDATE (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two workers never run
one job. A full queue (queued rows in the shared table) refuses new work at once (429 +
Retry-After) instead of letting waits grow unbounded.

A running job's worker stamps a heartbeat on its row every few seconds. Every process also looks
for running jobs whose heartbeat has gone stale (their process died: kill -9, OOM, a lost
machine): such a job goes back to the queue once, and fails with the reason the second time —
never lost, and, since every render writes a fresh hidden take folder renamed into place only
when complete, never rendered twice into one take.

Cancelling sets the job's ``cancel_requested`` flag; a queued job is cancelled at once, a
running one sees the flag at its next step (its progress write reads it back) or at the next
heartbeat — which works whichever replica took the DELETE.

Stopping is durable: :meth:`JobQueue.drain` refuses new work (503 + Retry-After) while queued
jobs still run; at :meth:`JobQueue.stop` a job cut off mid-render goes back to ``queued`` (the
try does not count) and queued ones stay queued — the next start, or another replica, runs them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from audiorag.api.db import Database
from audiorag.api.metrics import Metrics
from audiorag.api.repos import jobs as repo

if TYPE_CHECKING:
    from generation.watermark import Watermarker

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
DRAIN_RETRY_S = 30  # Retry-After while draining: a restart takes about that long


class TakeLike(Protocol):
    id: str
    folder: Path
    audio: dict[str, Path]
    manifest: dict[str, Any]


class Records(Protocol):
    """The provenance log (``rag.provenance.ProvenanceLog``): payload → manifest."""

    def record(self, payload: int, manifest: dict) -> None: ...

    def find(self, payload: int) -> dict | None: ...


class Generates(Protocol):
    """What the service asks of ``rag.orchestrate.Orchestrator`` (or a stand-in shaped like
    it): render a request, refuse a bad one before it is queued, and the watermark scheme and
    provenance log it marks and records takes with (None when it does neither)."""

    watermarker: Watermarker | None
    provenance: Records | None

    def generate(
        self,
        request: Any,
        out_dir: Path,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> TakeLike: ...

    def check(self, request: Any) -> None: ...


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the generation queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class Draining(Exception):
    """The service is shutting down: accepted jobs finish, new ones go to the next start."""

    def __init__(self, retry_after: int = DRAIN_RETRY_S) -> None:
        super().__init__(
            f"the service is restarting and takes no new jobs; retry in {retry_after} s"
        )
        self.retry_after = retry_after


class PublishError(RuntimeError):
    """The take was written locally but could not be copied to the shared storage."""


def new_job_id() -> str:
    return uuid.uuid4().hex


def recover_interrupted(db: Database) -> int:
    """Jobs left running with no worker recorded (by a version before workers had heartbeats)
    are failed, with a reason; queued ones stay queued and run. Jobs of a worker that died are
    the heartbeat's: each process re-queues them once their heartbeat is stale."""
    return repo.fail_orphans(db)


def worker_name() -> str:
    """This process's worker id, as recorded on the jobs it runs: host, pid and a nonce (a
    restarted process with a recycled pid is still a different worker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


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
        ready: threading.Event | None = None,
        publish: Callable[[str, Path], str] | None = None,
        heartbeat_s: float = 5.0,
        stale_s: float = 30.0,
        poll_s: float = 0.5,
    ) -> None:
        self.db = db
        # Set once the models are loaded: workers take no job before it.
        self._ready = ready
        self._runner = runner  # called per job: the orchestrator loads after the app starts
        self._build_request = build_request
        self._out_dir = out_dir
        self._publish = publish  # (tenant, take folder) → its shared copy's URL
        self._maxsize = maxsize  # queued jobs in the shared table before submissions get 429
        self._workers = workers
        self._heartbeat_s = heartbeat_s
        self._stale_s = stale_s  # a running job's heartbeat older than this: its worker died
        self._poll_s = poll_s  # how often an idle worker looks for jobs other processes queued
        self.worker_id = worker_name()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job was submitted here
        self._stopped = threading.Event()
        self._draining = False
        self._stopping = False
        self._mean_seconds = 30.0  # first guess for Retry-After, refined by finished jobs
        self.metrics = metrics

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the heartbeat; jobs an earlier run left queued run first."""
        backlog = repo.count_queued(self.db)
        if backlog:
            log.warning("%d job(s) accepted by an earlier run queued again", backlog)
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"generation-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._beat, name="generation-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def drain(self) -> None:
        """Refuse new jobs from now on (:class:`Draining`); queued ones still run."""
        with self._lock:
            self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued (anywhere) or running here (True), or ``timeout``
        seconds (False)."""
        deadline = time.monotonic() + timeout
        while self._running or repo.count_queued(self.db):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers. Queued jobs stay queued in the database; running ones are stopped
        at their next step and queued again — the next start (or another replica) runs them."""
        with self._lock:
            self._draining = self._stopping = True
            for event in self._running.values():
                event.set()
            self._wake.notify_all()
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    @property
    def depth(self) -> int:
        """Jobs waiting in the shared table."""
        return repo.count_queued(self.db)

    # --- submitting and cancelling ----------------------------------------------------------------

    def submit(
        self,
        tenant: str,
        spec: dict[str, Any],
        *,
        session_id: str | None = None,
        parent_take: str | None = None,
    ) -> str:
        """Record a queued job; :class:`QueueFull` or :class:`Draining` (nothing recorded)
        when it cannot be taken."""
        with self._lock:
            if self._draining:
                raise Draining()
            queued = repo.count_queued(self.db)
            self.metrics.queue_depth.set(queued)
            if queued >= self._maxsize:
                raise QueueFull(self._retry_after(queued))
            job_id = new_job_id()
            repo.insert(self.db, job_id, tenant, spec, session_id, parent_take)
            self._wake.notify()
        self.metrics.queue_depth.set(queued + 1)
        return job_id

    def retry_after(self) -> int:
        return self._retry_after(repo.count_queued(self.db))

    def _retry_after(self, queued: int) -> int:
        waiting = queued + len(self._running)
        return max(1, round(self._mean_seconds * waiting / max(1, self._workers)))

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop; it ends as ``cancelled`` unless it already finished."""
        repo.request_cancel(self.db, job_id)
        with self._lock:
            event = self._running.get(job_id)
        if event is not None:
            event.set()

    # --- the workers ------------------------------------------------------------------------------

    def _work(self) -> None:
        while self._ready is not None and not self._ready.wait(0.5):
            if self._stopping:
                return
        while not self._stopping:
            try:
                row = self._claim()
                if row is None:
                    with self._wake:
                        if not self._stopping:
                            self._wake.wait(self._poll_s)
                    continue
                self._run(row)
            except Exception:  # a bookkeeping bug (or a lost database) must not kill a worker
                log.exception("generation worker: unexpected error")
                self._stopped.wait(self._poll_s)

    def _claim(self) -> dict[str, Any] | None:
        """The next queued job, now running here (registered so stop and cancel reach it)."""
        with self._lock:
            if self._stopping:
                return None
            row = repo.claim_next(self.db, self.worker_id)
            if row is not None:
                self._running[row["id"]] = threading.Event()
        if row is not None:
            self.metrics.queue_depth.set(repo.count_queued(self.db))
        return row

    def _beat(self) -> None:
        """Stamp this process's running jobs, pass on cancels asked of other replicas, and put
        back the jobs of workers that died."""
        while True:
            try:
                for job_id in repo.heartbeat(self.db, self.worker_id):
                    with self._lock:
                        event = self._running.get(job_id)
                    if event is not None:
                        event.set()
                reaped = repo.reap_stale(self.db, time.time() - self._stale_s)
                if any(reaped.values()):
                    log.warning("jobs of workers that stopped answering: %s", reaped)
                    with self._wake:
                        self._wake.notify_all()
            except Exception:
                log.exception("generation heartbeat failed")
            if self._stopped.wait(self._heartbeat_s):
                return

    def _run(self, row: dict[str, Any]) -> None:
        job_id = row["id"]
        cancel = self._running[job_id]
        if self._stopping:
            cancel.set()

        def progress(done: int, total: int) -> None:
            if repo.progress(self.db, job_id, done, total, self.worker_id):
                cancel.set()

        out_dir: Path | None = None
        started = time.perf_counter()
        try:
            runner = self._runner()
            if runner is None:
                raise RuntimeError("the generator is not loaded")
            request = self._build_request(row["spec"])
            out_dir = self._out_dir(row["tenant"])
            # A fresh hidden folder per try, renamed into place when complete: a job run again
            # after its worker died never writes into the take the first try began.
            take = runner.generate(request, out_dir, progress=progress, cancel=cancel)
            if self._publish is not None:
                try:
                    self._publish(row["tenant"], take.folder)
                except Exception as err:
                    raise PublishError(f"could not publish the take: {err}") from err
        except Exception as err:
            self._finish_failed(job_id, err, cancelled=cancel.is_set(), out_dir=out_dir)
        else:
            seconds = time.perf_counter() - started
            self._mean_seconds = 0.7 * self._mean_seconds + 0.3 * seconds
            self.metrics.render_seconds.observe(seconds)
            audio = {k: str(v) for k, v in take.audio.items()}
            folder = str(take.folder)
            if not repo.succeed(
                self.db, job_id, take.id, folder, audio, take.manifest, self.worker_id
            ):
                log.warning("job %s: finished after another worker took it over", job_id)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _finish_failed(
        self, job_id: str, err: Exception, *, cancelled: bool, out_dir: Path | None
    ) -> None:
        row = repo.get(self.db, job_id)
        if row is None or row["worker"] != self.worker_id or row["status"] != "running":
            return  # no longer ours: the stale check gave it to another worker
        if cancelled and self._stopping and not row["cancel_requested"]:
            # Stopped by shutdown, not by its owner: it runs again on the next start.
            repo.requeue(self.db, job_id, self.worker_id)
            return
        if cancelled:
            status, message = "cancelled", None
        elif isinstance(err, PublishError):  # shared storage refused it: say so
            log.error("job %s: publishing its take failed", job_id, exc_info=err)
            status, message = "failed", str(err)
        elif isinstance(err, ValueError):  # GenerationError: the message says what to change
            status, message = "failed", str(err)
        elif _write_error(err):
            # Disk full, file too large, read-only or gone: the operator must act, so say where.
            # The take was written under a hidden .partial-* folder, removed on failure.
            log.error("job %s: writing its take failed", job_id, exc_info=err)
            status, message = "failed", f"could not write the take under {out_dir}: {_why(err)}"
        else:
            log.error("job %s failed", job_id, exc_info=err)
            status, message = "failed", f"internal error ({type(err).__name__}); see the logs"
        repo.finish(self.db, job_id, status, message, self.worker_id)


def _write_error(err: BaseException) -> bool:
    """A failure to write files (OSError, or libsndfile's error for a failed write)."""
    if isinstance(err, OSError):
        return True
    try:
        from soundfile import LibsndfileError
    except ImportError:  # pragma: no cover - soundfile is a dependency
        return False
    return isinstance(err, LibsndfileError)


def _why(err: BaseException) -> str:
    """What went wrong writing: the OS's words, or libsndfile's (which loses errno: it reports
    a failed write, e.g. disk full or over a file-size limit, as a "System error")."""
    if isinstance(err, OSError):
        return f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
    return f"{err} (disk full, or over a file size limit?)"
