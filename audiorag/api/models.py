"""The service's models: CLAP, the vector store and the orchestrator, loaded in the background
so /healthz answers at once and /readyz tells when the service can take work."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from audiorag.api.jobs import Generates, Records
from audiorag.api.tenancy import LockedStore
from audiorag.settings import Settings
from generation.watermark import Watermarker
from index.clap import ClapEmbedder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """Store and CLAP, both loaded: what search, items and uploads need."""

    store: LockedStore
    embedder: ClapEmbedder


class Models:
    def __init__(self, settings: Settings, orchestrator: Generates | None = None) -> None:
        self.settings = settings
        self.embedder: ClapEmbedder | None = None
        self.store: LockedStore | None = None
        self.orchestrator: Generates | None = orchestrator
        self._given_orchestrator = orchestrator is not None
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.generator_error: str | None = None
        self._loader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._watermarker: Watermarker | None = None
        self._provenance: Records | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._loader = threading.Thread(target=self._load, name="loader", daemon=True)
        self._loader.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def _load(self) -> None:
        from audiorag.components import load_embedder, load_store

        try:
            embedder = load_embedder(self.settings)
            self.embedder = embedder
            self.store = LockedStore(load_store(self.settings, embedder))
        except Exception as err:
            log.exception("loading the store or CLAP failed")
            self.load_error = f"{type(err).__name__}: {err}"
            return
        if not self._given_orchestrator:
            try:
                self.orchestrator = self._load_orchestrator(self.store, self.embedder)
            except Exception as err:
                # Search, items and uploads still work; generation answers 503 with the reason.
                log.exception("loading the generator failed")
                self.generator_error = f"{type(err).__name__}: {err}"
        self.ready.set()

    @property
    def checks_only(self) -> bool:
        """No render threads here (render workers run elsewhere): the generator's limits are
        enough to refuse bad requests at submit, so its weights are never loaded."""
        return self.settings.api_generation_workers == 0

    def _load_orchestrator(self, store: LockedStore, embedder: ClapEmbedder) -> Generates:
        """The orchestrator, sharing the app's store and CLAP (the embedded store allows one
        open per process, and one CLAP in memory is enough); a check-only one when this process
        renders nothing."""
        from audiorag.components import load_check_orchestrator, load_orchestrator

        load = load_check_orchestrator if self.checks_only else load_orchestrator
        return load(self.settings, store=store, embedder=embedder)

    def stop(self) -> None:
        if self._loader is not None:
            self._loader.join(timeout=60)
        if self.store is not None:
            self.store.close()
            self.store = None

    # --- state ----------------------------------------------------------------------------------

    def loaded(self) -> Loaded | None:
        """Store and CLAP when both are loaded, else None."""
        if not self.ready.is_set() or self.store is None or self.embedder is None:
            return None
        return Loaded(self.store, self.embedder)

    def readiness(self) -> dict[str, object]:
        loaded = self.ready.is_set()
        store = loaded and self.store is not None
        embedder = loaded and self.embedder is not None
        generator = loaded and self.orchestrator is not None
        detail = self.load_error or self.generator_error
        if not loaded and detail is None:
            detail = "loading models and store"
        if detail is None and generator and self.checks_only and not self._given_orchestrator:
            detail = "generator: checks only; rendered by workers"
        return {
            "ready": bool(store and embedder and generator),
            "store": store,
            "embedder": embedder,
            "generator": generator,
            "detail": detail,
        }

    def watermarker(self) -> Watermarker:
        """The deployment's watermark detector: the one the orchestrator marks takes with, or
        (before it is loaded, or with a stand-in that marks nothing) one loaded on first use."""
        if self.orchestrator is not None and self.orchestrator.watermarker is not None:
            return self.orchestrator.watermarker
        with self._lock:
            if self._watermarker is None:
                from audiorag.components import load_watermarker

                self._watermarker = load_watermarker(self.settings)
            return self._watermarker

    def provenance(self) -> Records:
        """The provenance log: the orchestrator's, else one opened once for the service."""
        if self.orchestrator is not None and self.orchestrator.provenance is not None:
            return self.orchestrator.provenance
        with self._lock:
            if self._provenance is None:
                from audiorag.components import provenance_log

                self._provenance = provenance_log(self.settings)
            return self._provenance
