"""Generation jobs: a bounded queue in front of one worker thread per generation device.

A job's row in SQLite is its truth (status, progress, result, error), so status survives a
restart and any API process can answer for it. The queue itself is per process and bounded: a
full queue refuses new work at once (429 + Retry-After) instead of letting waits grow unbounded.

Cancelling sets the job's ``cancel_requested`` flag; a queued job is dropped when its turn comes,
a running one sees the flag at its next step (the progress callback checks it and sets the
orchestrator's cancel event) — which also works when the DELETE landed on another API process.

Stopping is durable: :meth:`JobQueue.drain` refuses new work (503 + Retry-After) while accepted
jobs finish; whatever is still queued at :meth:`JobQueue.stop` stays ``queued`` in the database,
and a job interrupted mid-render goes back to ``queued`` — the next start runs both.
"""

from __future__ import annotations

import logging
import queue
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


def new_job_id() -> str:
    return uuid.uuid4().hex


def recover_interrupted(db: Database) -> int:
    """Jobs left running by a process that died are failed, with a reason: their worker is gone.
    Queued ones (a drained stop leaves them) stay queued and run on this start. Run once per
    deployment start, before any worker takes jobs."""
    return repo.fail_orphans(db)


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
    ) -> None:
        self.db = db
        # Set once the models are loaded: jobs a restart queued again wait for it.
        self._ready = ready
        self._runner = runner  # called per job: the orchestrator loads after the app starts
        self._build_request = build_request
        self._out_dir = out_dir
        # Unbounded underneath: the cap applies to submissions, not to jobs a restart picks up.
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._maxsize = maxsize
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued here or running: what a drain waits for
        self._draining = False
        self._stopping = False
        self._mean_seconds = 30.0  # first guess for Retry-After, refined by finished jobs
        self.metrics = metrics

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers, first queueing the jobs a previous run accepted but never ran."""
        backlog = repo.queued_ids(self.db)
        with self._lock:
            for job_id in backlog:
                self._queue.put(job_id)
                self._pending += 1
        if backlog:
            log.warning("%d job(s) accepted by the previous run queued again", len(backlog))
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"generation-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def drain(self) -> None:
        """Refuse new jobs from now on (:class:`Draining`); accepted ones still run."""
        with self._lock:
            self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.5))
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers. Queued jobs stay queued in the database; running ones are stopped
        at their next step and queued again — the next start runs them."""
        with self._lock:
            self._draining = self._stopping = True
            for event in self._running.values():
                event.set()
        for _ in self._threads:
            self._queue.put(None)
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
        """Record and enqueue a job; :class:`QueueFull` or :class:`Draining` (nothing recorded)
        when it cannot be taken."""
        with self._lock:
            if self._draining:
                raise Draining()
            if self._queue.qsize() >= self._maxsize:
                raise QueueFull(self._retry_after())
            job_id = new_job_id()
            repo.insert(self.db, job_id, tenant, spec, session_id, parent_take)
            self._queue.put(job_id)
            self._pending += 1
        self.metrics.queue_depth.set(self.depth)
        return job_id

    def retry_after(self) -> int:
        with self._lock:
            return self._retry_after()

    def _retry_after(self) -> int:
        waiting = self.depth + len(self._running)
        return max(1, round(self._mean_seconds * waiting / max(1, self._workers)))

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop; it ends as ``cancelled`` unless it already finished."""
        repo.request_cancel(self.db, job_id)
        with self._lock:
            event = self._running.get(job_id)
        if event is not None:
            event.set()

    # --- the worker -------------------------------------------------------------------------------

    def _work(self) -> None:
        while self._ready is not None and not self._ready.wait(0.5):
            if self._stopping:
                return
        while True:
            job_id = self._queue.get()
            self.metrics.queue_depth.set(self.depth)
            if job_id is None or self._stopping:
                return  # a job still queued stays queued in the database
            try:
                self._run(job_id)
            except Exception:  # a bookkeeping bug must not kill the device's only worker
                log.exception("job %s: unexpected error in the worker", job_id)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _run(self, job_id: str) -> None:
        cancel = threading.Event()
        with self._lock:
            if not repo.claim(self.db, job_id):
                return  # cancelled while it waited, or another process runs it
            self._running[job_id] = cancel
        row = repo.get(self.db, job_id)
        assert row is not None

        def progress(done: int, total: int) -> None:
            if repo.progress(self.db, job_id, done, total):
                cancel.set()

        out_dir: Path | None = None
        started = time.perf_counter()
        try:
            runner = self._runner()
            if runner is None:
                raise RuntimeError("the generator is not loaded")
            request = self._build_request(row["spec"])
            out_dir = self._out_dir(row["tenant"])
            take = runner.generate(request, out_dir, progress=progress, cancel=cancel)
        except Exception as err:
            self._finish_failed(job_id, err, cancelled=cancel.is_set(), out_dir=out_dir)
        else:
            seconds = time.perf_counter() - started
            self._mean_seconds = 0.7 * self._mean_seconds + 0.3 * seconds
            self.metrics.render_seconds.observe(seconds)
            audio = {k: str(v) for k, v in take.audio.items()}
            repo.succeed(self.db, job_id, take.id, str(take.folder), audio, take.manifest)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _finish_failed(
        self, job_id: str, err: Exception, *, cancelled: bool, out_dir: Path | None
    ) -> None:
        row = repo.get(self.db, job_id)
        if cancelled and self._stopping and row is not None and not row["cancel_requested"]:
            # Stopped by shutdown, not by its owner: it runs again on the next start.
            repo.requeue(self.db, job_id)
            return
        if cancelled:
            status, message = "cancelled", None
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
        repo.finish(self.db, job_id, status, message)


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
