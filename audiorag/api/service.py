"""The running service: small parts, each with one job, owned by the app for its lifetime
(``app.state.service``) and handed to routes one by one (``audiorag.api.parts``).

* ``db`` — the metadata database (API keys, catalogs, sessions, jobs; SQL in ``api.repos``):
  SQLite under the data dir, or PostgreSQL shared by replicas (``AUDIORAG_DATABASE_URL``);
* ``models`` — CLAP, the store and the orchestrator, loaded in the background;
* ``jobs`` — the generation queue and its render threads (``api_generation_workers``; 0 when
  ``audiorag worker`` processes render);
* ``uploads`` — uploading into catalogs (staging, indexing, roll-back, per-catalog locks);
* ``facets`` — the facets cache; ``signer`` — signed URLs; ``folders``; ``metrics``.
"""

from __future__ import annotations

import logging
import threading

from audiorag.api.db import Database, check_sqlite
from audiorag.api.facets import FacetsCache
from audiorag.api.folders import Folders
from audiorag.api.generation import build_generate_request
from audiorag.api.ingest import CatalogUploads
from audiorag.api.jobs import Generates, JobQueue
from audiorag.api.metrics import Metrics
from audiorag.api.models import Models
from audiorag.api.signing import UrlSigner, signing_secret
from audiorag.api.storage import input_uploader, take_publisher
from audiorag.settings import Settings

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


def check_provenance(settings: Settings) -> None:
    """Refuse to start on a corrupt provenance log (``CorruptDatabase`` names the file and what
    to do) before the orchestrator opens it — in the background, where it could only fail
    generation. (``Database`` checks the service's own file the same way.)"""
    from rag.provenance import LOG_FILE

    if settings.database_url:
        return  # provenance lives in the shared database
    check_sqlite(
        settings.data_dir / LOG_FILE,
        "the watermark payload → take manifest records (watermark detect)",
    )


class Service:
    def __init__(self, settings: Settings, *, orchestrator: Generates | None = None) -> None:
        check_deployment(settings)
        check_provenance(settings)
        self.settings = settings
        self.metrics = Metrics()
        self.db = Database.for_deployment(settings.data_dir, settings.database_url)
        self.folders = Folders(settings.data_dir, settings.outputs_dir)
        self.models = Models(settings, orchestrator)
        self.signer = UrlSigner(signing_secret(settings.data_dir))
        self.facets = FacetsCache()
        self.uploads = CatalogUploads(settings, self.folders, self.facets, self.metrics)
        self.jobs = JobQueue(
            self.db,
            lambda: self.models.orchestrator,
            build_generate_request,
            out_dir=self.folders.takes,
            maxsize=settings.api_queue_size,
            workers=settings.api_generation_workers,
            metrics=self.metrics,
            ready=self.models.ready,
            publish=take_publisher(settings.storage_url),
            upload_inputs=input_uploader(settings.storage_url),
            takes_root=self.folders.outputs_dir,
            heartbeat_s=settings.job_heartbeat_s,
            stale_s=settings.job_stale_s,
        )
        self._users = 0
        self._users_lock = threading.Lock()

    def start(self) -> None:
        """Load the models in the background and start the job workers.

        Counted: a second lifespan over the same app (a test client inside another) shares the
        running service, and only the last one out stops it.
        """
        with self._users_lock:
            self._users += 1
            if self._users > 1:
                return
        self.models.start()
        self.jobs.start()

    def stop(self) -> None:
        with self._users_lock:
            self._users -= 1
            if self._users > 0:
                return
        self.jobs.stop()
        self.models.stop()
        self.db.close()
