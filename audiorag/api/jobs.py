"""Generation jobs: a queue kept in the metadata database, run by render threads — in every API
process (``AUDIORAG_API_GENERATION_WORKERS``), in ``audiorag worker`` processes, or in Ray actors
(``audiorag worker --ray``) — all sharing one table: SQLite for one process, PostgreSQL for many
(``AUDIORAG_DATABASE_URL``).

Two halves, one code path each:

* :class:`JobQueue` — an API process's part: accept a job (429 + Retry-After when the shared
  queue is full, 503 while draining), cancel one. It embeds a :class:`RenderWorker`, with 0
  threads when the API renders nothing itself.
* :class:`RenderWorker` — what renders: threads that claim the oldest queued job, run it with the
  orchestrator, publish and record the take; and a heartbeat. ``audiorag worker`` and each Ray
  actor run exactly this class.

A job's row is its truth (status, progress, result, error, the worker running it), so any
process answers for any job and nothing lives only in memory. Workers *claim* the oldest queued
job with one atomic UPDATE (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two workers never run
one job. A full queue (queued rows in the shared table) refuses new work at once (429 +
Retry-After) instead of letting waits grow unbounded.

A running job's worker stamps a heartbeat on its row every few seconds. Every process (API or
worker) also looks for running jobs whose heartbeat has gone stale (their process died: kill -9,
OOM, a lost machine): such a job goes back to the queue once, and fails with the reason the
second time — never lost, and, since every render writes a fresh hidden take folder renamed into
place only when complete, never rendered twice into one take.

Cancelling sets the job's ``cancel_requested`` flag; a queued job is cancelled at once, a
running one sees the flag at its next step (its progress write reads it back) or at the next
heartbeat — which works whichever process took the DELETE.

Stopping is durable: :meth:`JobQueue.drain` refuses new work (503 + Retry-After) while queued
jobs still run; at :meth:`JobQueue.stop` a job cut off mid-render goes back to ``queued`` (the
try does not count) and queued ones stay queued — the next start, or another process, runs them.
A standalone worker drains by claiming nothing new (:meth:`RenderWorker.drain`) while its
running jobs finish.
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
from audiorag.api.storage import local_inputs
from rag.takes import sweep_partial_takes

if TYPE_CHECKING:
    from generation.watermark import Watermarker

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
DRAIN_RETRY_S = 30  # Retry-After while draining: a restart takes about that long
FIRST_GUESS_S = 30.0  # a render's seconds for Retry-After, before any job has finished


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


class StorageUnavailable(Exception):
    """The job's input files could not be copied to the shared storage: nothing was recorded
    (503 + Retry-After; the message names the storage's complaint)."""

    def __init__(self, reason: str, retry_after: int = DRAIN_RETRY_S) -> None:
        super().__init__(f"the shared storage did not take the job's input files: {reason}")
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


class RenderWorker:
    """Render threads that run jobs from the shared table, and the heartbeat that keeps their
    rows alive and re-queues the jobs of workers that died.

    The one code path for rendering: an API process embeds one (``threads`` = its generation
    workers, possibly 0: then only the heartbeat runs, reaping dead workers' jobs), and
    ``audiorag worker`` / each Ray actor runs one with the orchestrator it loaded.
    """

    def __init__(
        self,
        db: Database,
        runner: Callable[[], Generates | None],
        build_request: Callable[[dict[str, Any]], Any],
        *,
        out_dir: Callable[[str], Path],
        threads: int,
        metrics: Metrics,
        ready: threading.Event | None = None,
        publish: Callable[[str, Path], str] | None = None,
        takes_root: Path | None = None,
        heartbeat_s: float = 5.0,
        stale_s: float = 30.0,
        poll_s: float = 0.5,
    ) -> None:
        self.db = db
        # Set once the models are loaded: threads take no job before it.
        self._ready = ready
        self._runner = runner  # called per job: the API's orchestrator loads after it starts
        self._build_request = build_request
        self._out_dir = out_dir
        self._publish = publish  # (tenant, take folder) → its shared copy's URL
        self._takes_root = takes_root  # swept of takes a killed writer left half-written
        self.threads = threads
        self._heartbeat_s = heartbeat_s
        self._stale_s = stale_s  # a running job's heartbeat older than this: its worker died
        self._poll_s = poll_s  # how often an idle thread looks for jobs other processes queued
        self.worker_id = worker_name()
        self.metrics = metrics
        self._threads: list[threading.Thread] = []
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job was submitted here
        self._stopped = threading.Event()
        self._claiming = True  # False once drained: running jobs finish, no new ones start
        self._stopping = False

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the render threads and the heartbeat, after removing the half-written take
        folders that writers killed long ago left (see :func:`rag.takes.sweep_partial_takes`)."""
        if self.threads and self._takes_root is not None:
            for folder in sweep_partial_takes(self._takes_root):
                log.warning("removed %s: a take a killed writer left half-written", folder)
        for n in range(self.threads):
            thread = threading.Thread(target=self._work, name=f"generation-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._beat, name="generation-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def drain(self) -> None:
        """Claim no new job; the running ones finish (queued ones are left to other workers)."""
        with self._lock:
            self._claiming = False

    @property
    def busy(self) -> int:
        """Jobs rendering in this process now."""
        return len(self._running)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs here (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        while self._running:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads. Running jobs stop at their next step and are queued again (the
        try does not count) — another worker, or the next start, runs them."""
        with self._lock:
            self._claiming = False
            self._stopping = True
            for event in self._running.values():
                event.set()
            self._wake.notify_all()
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def wake(self) -> None:
        """A job was queued in this process: an idle thread looks now, not at its next poll."""
        with self._wake:
            self._wake.notify()

    def cancel(self, job_id: str) -> None:
        """Stop ``job_id`` at its next step if it renders here (its cancel flag is already set)."""
        with self._lock:
            event = self._running.get(job_id)
        if event is not None:
            event.set()

    # --- the loop -------------------------------------------------------------------------------

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
            if self._stopping or not self._claiming:
                return None
            row = repo.claim_next(self.db, self.worker_id)
            if row is not None:
                self._running[row["id"]] = threading.Event()
        if row is not None:
            self.metrics.queue_depth.set(repo.count_queued(self.db))
        return row

    def _beat(self) -> None:
        """Stamp this process's running jobs, pass on cancels asked of other processes, and put
        back the jobs of workers that died."""
        while True:
            try:
                for job_id in repo.heartbeat(self.db, self.worker_id):
                    self.cancel(job_id)
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
            # Inputs on shared storage (AUDIORAG_STORAGE_URL) are fetched to local scratch.
            with local_inputs(row["spec"]) as spec:
                request = self._build_request(spec)
                out_dir = self._out_dir(row["tenant"])
                # A fresh hidden folder per try, renamed into place when complete: a job run
                # again after its worker died never writes into the take the first try began.
                take = runner.generate(request, out_dir, progress=progress, cancel=cancel)
            if self._publish is not None:
                try:
                    self._publish(row["tenant"], take.folder)
                except Exception as err:
                    raise PublishError(f"could not publish the take: {err}") from err
        except Exception as err:
            self._finish_failed(job_id, err, cancelled=cancel.is_set(), out_dir=out_dir)
        else:
            self.metrics.render_seconds.observe(time.perf_counter() - started)
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
        elif isinstance(err, ValueError):  # GenerationError, InputMissing: the message says why
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


class JobQueue:
    """An API process's side of the queue: accept, refuse (429/503) and cancel jobs, with a
    :class:`RenderWorker` of ``workers`` threads (0: other processes render)."""

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
        upload_inputs: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
        takes_root: Path | None = None,
        heartbeat_s: float = 5.0,
        stale_s: float = 30.0,
        poll_s: float = 0.5,
    ) -> None:
        self.db = db
        self._maxsize = maxsize  # queued jobs in the shared table before submissions get 429
        # (job id, spec) → the spec with its input files copied to shared storage
        self._upload_inputs = upload_inputs
        self._lock = threading.Lock()
        self._draining = False
        self.metrics = metrics
        self.worker = RenderWorker(
            db,
            runner,
            build_request,
            out_dir=out_dir,
            threads=workers,
            metrics=metrics,
            ready=ready,
            publish=publish,
            takes_root=takes_root,
            heartbeat_s=heartbeat_s,
            stale_s=stale_s,
            poll_s=poll_s,
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the render threads and the heartbeat; jobs an earlier run left queued run
        first."""
        backlog = repo.count_queued(self.db)
        if backlog:
            log.warning("%d job(s) accepted by an earlier run queued again", backlog)
        self.worker.start()

    def drain(self) -> None:
        """Refuse new jobs from now on (:class:`Draining`); queued ones still run."""
        with self._lock:
            self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued (anywhere) or running here (True), or ``timeout``
        seconds (False). A process that renders nothing is idle at once: its accepted jobs
        wait in the shared table for the workers, whether it runs or not."""
        if self.worker.threads == 0:
            return True
        deadline = time.monotonic() + timeout
        while self.worker.busy or repo.count_queued(self.db):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the render threads. Queued jobs stay queued in the database; running ones are
        stopped at their next step and queued again — the next start (or another process) runs
        them."""
        with self._lock:
            self._draining = True
        self.worker.stop(timeout)

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
        """Record a queued job; :class:`QueueFull`, :class:`Draining` or
        :class:`StorageUnavailable` (nothing recorded) when it cannot be taken."""
        job_id = new_job_id()
        if self._upload_inputs is not None:
            self._admit()  # refuse before copying anything a refused job would not need
            # Outside the lock: a reference clip may be large and the storage remote, and
            # other submissions to this process must not wait behind the copy.
            try:
                spec = self._upload_inputs(job_id, spec)
            except OSError as err:  # fsspec backends raise OSError subclasses
                log.error("job inputs: upload to the shared storage failed", exc_info=err)
                raise StorageUnavailable(_why(err)) from err
        with self._lock:
            queued = self._admit()
            repo.insert(self.db, job_id, tenant, spec, session_id, parent_take)
        self.worker.wake()
        self.metrics.queue_depth.set(queued + 1)
        return job_id

    def _admit(self) -> int:
        """The queued jobs in the shared table, or :class:`Draining` / :class:`QueueFull` when
        no more may be taken."""
        if self._draining:
            raise Draining()
        queued = repo.count_queued(self.db)
        self.metrics.queue_depth.set(queued)
        if queued >= self._maxsize:
            raise QueueFull(self._retry_after(queued))
        return queued

    def retry_after(self) -> int:
        return self._retry_after(repo.count_queued(self.db))

    def _retry_after(self, queued: int) -> int:
        """Seconds until a slot is likely free: the queue ahead, worked off by the jobs rendering
        now (every process's, so it holds with 0 render threads here), at the recent mean render
        time."""
        running, mean = repo.render_load(self.db)
        parallel = max(1, running, self.worker.threads)
        return max(1, round((mean or FIRST_GUESS_S) * (queued + running) / parallel))

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop; it ends as ``cancelled`` unless it already finished."""
        repo.request_cancel(self.db, job_id)
        self.worker.cancel(job_id)


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
