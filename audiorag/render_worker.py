"""A render worker without HTTP: ``audiorag worker`` (and each actor of ``audiorag worker --ray``,
see :mod:`audiorag.render_pool`).

It loads the orchestrator — generator, CLAP, store, guardrails, watermark, provenance — from the
same settings as the API, and runs :class:`audiorag.api.jobs.RenderWorker`, the very class that
renders inside API processes, against the shared jobs table: it claims queued jobs, stamps their
heartbeats, re-queues dead workers' jobs, fetches inputs from shared storage, writes takes to
``data_dir/takes`` (a volume every API replica mounts, so they serve the audio) and publishes
them to ``AUDIORAG_STORAGE_URL`` when set.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audiorag.api.db import Database
from audiorag.api.folders import Folders
from audiorag.api.generation import build_generate_request
from audiorag.api.jobs import RenderWorker
from audiorag.api.metrics import Metrics
from audiorag.api.service import check_provenance
from audiorag.api.storage import take_publisher
from audiorag.settings import Settings

if TYPE_CHECKING:
    from rag.orchestrate import Orchestrator

log = logging.getLogger(__name__)


@dataclass
class LoadedWorker:
    """A :class:`RenderWorker` with what it owns: the database handle and the orchestrator."""

    worker: RenderWorker
    db: Database
    orchestrator: Orchestrator

    def start(self) -> None:
        self.worker.start()

    def shutdown(self, drain_s: float, stop_now: threading.Event | None = None) -> None:
        """Drain, then stop: claim nothing new, let running jobs finish for up to ``drain_s``
        seconds (or until ``stop_now`` is set); a job still running then is cut off and queued
        again without counting as a try — another worker runs it."""
        self.worker.drain()
        deadline = time.monotonic() + drain_s
        while self.worker.busy and time.monotonic() < deadline:
            if stop_now is not None and stop_now.is_set():
                break
            time.sleep(0.25)
        if self.worker.busy:
            log.warning("stopping with %d job(s) running: they are queued again", self.worker.busy)
        self.worker.stop()
        self.orchestrator.store.close()
        self.db.close()


def load_worker(settings: Settings, threads: int) -> LoadedWorker:
    """Everything a render needs, loaded now (a model that does not load fails here, before any
    job is claimed), and a worker of ``threads`` render threads, not yet started."""
    from audiorag.components import load_orchestrator

    check_provenance(settings)
    db = Database.for_deployment(settings.data_dir, settings.database_url)
    try:
        orchestrator = load_orchestrator(settings)
    except BaseException:
        db.close()
        raise
    folders = Folders(settings.data_dir, settings.outputs_dir)
    worker = RenderWorker(
        db,
        lambda: orchestrator,
        build_generate_request,
        out_dir=folders.takes,
        threads=threads,
        metrics=Metrics(),
        publish=take_publisher(settings.storage_url),
        takes_root=folders.outputs_dir,
        heartbeat_s=settings.job_heartbeat_s,
        stale_s=settings.job_stale_s,
    )
    return LoadedWorker(worker, db, orchestrator)
