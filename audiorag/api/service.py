"""The running service: settings, metadata DB, loaded components and the job queue, owned by the
app for its lifetime (``app.state.service``)."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audiorag.api.db import Database, db_path
from audiorag.api.jobs import Generates, JobQueue
from audiorag.api.metrics import Metrics
from audiorag.api.signing import UrlSigner, signing_secret
from audiorag.api.tenancy import LockedStore
from audiorag.settings import Settings
from index.clap import ClapEmbedder

log = logging.getLogger(__name__)


class DeploymentError(RuntimeError):
    """Settings that cannot work together; the message says what to change."""


def check_deployment(settings: Settings, workers: int | None = None) -> None:
    """Refuse combinations that would break at run time.

    The embedded engines keep the index in one process (Edge flocks its folder), so every API
    process past the first would fail to open it — or, with qdrant-client local mode, silently
    work on its own copy. Several workers therefore need a Qdrant server.
    """
    workers = settings.api_workers if workers is None else workers
    if workers > 1 and not settings.qdrant_url:
        raise DeploymentError(
            f"{workers} API workers need a Qdrant server: the embedded store belongs to one "
            "process. Set AUDIORAG_QDRANT_URL (e.g. http://qdrant:6333, see docker-compose.yml) "
            "or run one worker (AUDIORAG_API_WORKERS=1)."
        )


class Service:
    def __init__(self, settings: Settings, *, orchestrator: Generates | None = None) -> None:
        check_deployment(settings)
        self.settings = settings
        self.metrics = Metrics()
        self.db = Database(db_path(settings.data_dir))
        self.embedder: ClapEmbedder | None = None
        self.store: LockedStore | None = None
        self.orchestrator: Generates | None = orchestrator
        self._given_orchestrator = orchestrator is not None
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.generator_error: str | None = None
        self._loader: threading.Thread | None = None
        self._catalog_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._users = 0
        self.signer = UrlSigner(signing_secret(settings.data_dir))
        self._watermarker: Any = None
        self._provenance: Any = None
        # Facets per tenant scope, keyed by the scope's catalogs and their generations.
        self.facets_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self.catalog_generations: dict[str, int] = {}
        from audiorag.api.generation import build_generate_request

        self.jobs = JobQueue(
            self.db,
            lambda: self.orchestrator,
            build_generate_request,
            out_dir=self.takes_dir,
            maxsize=settings.api_queue_size,
            workers=settings.api_generation_workers,
            metrics=self.metrics,
        )

    # --- folders (all under the data dir) -------------------------------------------------------

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads"

    @property
    def scratch_dir(self) -> Path:
        return self.settings.data_dir / "tmp"

    @property
    def inputs_dir(self) -> Path:
        """Reference clips of generation jobs, kept so a take can be re-run."""
        return self.settings.data_dir / "inputs"

    @property
    def previews_dir(self) -> Path:
        return self.settings.data_dir / "previews"

    def takes_dir(self, tenant: str) -> Path:
        folder = self.settings.outputs_dir / tenant
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the models and the store in the background, so /healthz answers at once and
        /readyz tells when the service can take work.

        Counted: a second lifespan over the same app (a test client inside another) shares the
        running service, and only the last one out stops it.
        """
        with self._locks_lock:
            self._users += 1
            if self._users > 1:
                return
        self._loader = threading.Thread(target=self._load, name="loader", daemon=True)
        self._loader.start()
        self.jobs.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def _load(self) -> None:
        from audiorag.components import load_embedder, load_store

        try:
            embedder, notice = load_embedder(self.settings)
            if notice:
                log.warning(notice)
            self.embedder = embedder
            self.store = LockedStore(load_store(self.settings, embedder))
        except Exception as err:
            log.exception("loading the store or CLAP failed")
            self.load_error = f"{type(err).__name__}: {err}"
            return
        if not self._given_orchestrator:
            try:
                self.orchestrator = self._load_orchestrator()
            except Exception as err:
                # Search, items and uploads still work; generation answers 503 with the reason.
                log.exception("loading the generator failed")
                self.generator_error = f"{type(err).__name__}: {err}"
        self.ready.set()

    def _load_orchestrator(self) -> Generates:
        """The orchestrator, sharing the app's store and CLAP (the embedded store allows one
        open per process, and one CLAP in memory is enough)."""
        from audiorag.components import load_orchestrator

        assert self.store is not None and self.embedder is not None
        orchestrator = load_orchestrator(self.settings, store=self.store, embedder=self.embedder)
        if orchestrator.generator_notice:
            log.warning(orchestrator.generator_notice)
        return orchestrator

    def stop(self) -> None:
        with self._locks_lock:
            self._users -= 1
            if self._users > 0:
                return
        self.jobs.stop()
        if self._loader is not None:
            self._loader.join(timeout=60)
        if self.store is not None:
            self.store.close()
            self.store = None
        self.db.close()

    def readiness(self) -> dict[str, Any]:
        loaded = self.ready.is_set()
        store = loaded and self.store is not None
        embedder = loaded and self.embedder is not None
        generator = loaded and self.orchestrator is not None
        detail = self.load_error or self.generator_error
        if not loaded and detail is None:
            detail = "loading models and store"
        return {
            "ready": bool(store and embedder and generator),
            "store": store,
            "embedder": embedder,
            "generator": generator,
            "detail": detail,
        }

    def watermarker(self) -> Any:
        """The deployment's watermark detector: the one the orchestrator marks takes with, or
        (before it is loaded, or with a stand-in orchestrator) one loaded on first use."""
        marking = getattr(self.orchestrator, "watermarker", None)
        if marking is not None:
            return marking
        with self._locks_lock:
            if self._watermarker is None:
                from audiorag.components import load_watermarker

                self._watermarker = load_watermarker(self.settings)
            return self._watermarker

    def provenance(self) -> Any:
        """The provenance log: the orchestrator's, else one opened once for the service."""
        log_ = getattr(self.orchestrator, "provenance", None)
        if log_ is not None:
            return log_
        with self._locks_lock:
            if self._provenance is None:
                from audiorag.components import provenance_log

                self._provenance = provenance_log(self.settings)
            return self._provenance

    def catalog_changed(self, store_name: str) -> None:
        """An upload changed ``store_name``: cached facets over it are stale."""
        with self._locks_lock:
            self.catalog_generations[store_name] = self.catalog_generations.get(store_name, 0) + 1

    # --- indexing -------------------------------------------------------------------------------

    @contextmanager
    def catalog_lock(self, root: Path) -> Iterator[None]:
        """One upload at a time per catalog: a thread lock in this process, a file lock across
        API processes (both index into the same folder and manifest)."""
        key = str(root)
        with self._locks_lock:
            lock = self._catalog_locks.setdefault(key, threading.Lock())
        root.mkdir(parents=True, exist_ok=True)
        with lock:
            fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)
