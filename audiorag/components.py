"""Building the system's components from settings: the one place that reads them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from audiorag.keyfiles import secret_file
from audiorag.settings import Settings
from generation.loading import BUNDLED_GENERATOR
from generation.watermark import AudioSealWatermark, StftWatermark, Watermarker
from index.clap import BUNDLED_CLAP, ClapEmbedder
from index.store import Retry, ServerCollection, VectorStore, open_store
from rag.catalogs import CatalogRoots
from rag.guardrails import Guardrails
from rag.provenance import ProvenanceLog

if TYPE_CHECKING:
    from generation.interface import Generator, GeneratorLimits
    from rag.orchestrate import Orchestrator

log = logging.getLogger(__name__)


class MissingModel(FileNotFoundError):
    """A configured model folder that does not exist, or no model configured and the bundled
    one missing (a broken install)."""


def missing_model(what: str, folder: Path, setting: str) -> MissingModel:
    return MissingModel(
        f"no {what} configured and the bundled one is missing ({folder}): the install is "
        f"incomplete. Reinstall audiorag, or set {setting} to a model folder or hub id."
    )


def configured_model(value: str, setting: str) -> str:
    """A model setting as given, refused when it names a folder that does not exist.

    A hub id is ``name`` or ``namespace/name``; anything else (``/models/x``, ``./x``,
    ``a/b/c``) is a folder, and a missing one would otherwise surface as the hub client's
    complaint about repo ids.

    >>> configured_model("stabilityai/stable-audio-open-1.0", "AUDIORAG_GENERATOR_MODEL")
    'stabilityai/stable-audio-open-1.0'
    """
    folder = Path(value).expanduser()
    is_path = value.startswith(("/", ".", "~")) or value.count("/") > 1
    if is_path and not folder.is_dir():
        raise MissingModel(f"{setting}={value}: no such folder (and not a hub id)")
    return str(folder) if is_path else value


def clap_source(settings: Settings) -> str | Path:
    """Where the CLAP model comes from: a hub id or folder in settings, else the bundled demo
    model (loaded like any other folder), which ships inside the package."""
    if settings.clap_model:
        return configured_model(settings.clap_model, "AUDIORAG_CLAP_MODEL")
    if not (BUNDLED_CLAP / "config.json").is_file():
        raise missing_model("CLAP model", BUNDLED_CLAP, "AUDIORAG_CLAP_MODEL")
    return BUNDLED_CLAP


def load_embedder(settings: Settings) -> ClapEmbedder:
    """The configured CLAP embedder."""
    return ClapEmbedder.from_pretrained(
        clap_source(settings),
        revision=settings.clap_revision,
        device=settings.device,
        batch_size=settings.embed_batch_size,
    )


def load_store(settings: Settings, embedder: ClapEmbedder) -> VectorStore:
    """The configured store for this embedder: a server when a URL is set (a new collection
    laid out as the ``qdrant_*`` cluster settings say), else embedded."""
    path = None if settings.qdrant_url else settings.store_path
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return open_store(
        embedder.embedder,
        path=path,
        url=settings.qdrant_url,
        api_key=settings.qdrant_api_key,
        backend=settings.store_backend,
        collection=settings.collection,
        retry=Retry(
            attempts=settings.qdrant_retry_attempts, max_total_s=settings.qdrant_retry_max_s
        ),
        layout=ServerCollection(
            shard_number=settings.qdrant_shard_number,
            replication_factor=settings.qdrant_replication_factor,
            write_consistency_factor=settings.qdrant_write_consistency_factor,
            on_disk_vectors=settings.qdrant_on_disk_vectors,
            quantization=settings.qdrant_quantization,
        ),
    )


def generator_source(settings: Settings) -> str | Path:
    """Where the generator comes from: a hub id or folder in settings, else the bundled demo
    model, which ships inside the package."""
    if settings.generator_model:
        return configured_model(settings.generator_model, "AUDIORAG_GENERATOR_MODEL")
    if not (BUNDLED_GENERATOR / "model_index.json").is_file():
        raise missing_model("generator", BUNDLED_GENERATOR, "AUDIORAG_GENERATOR_MODEL")
    return BUNDLED_GENERATOR


def load_generator(settings: Settings) -> Generator:
    """The configured generator, with the speed and window settings applied."""
    from generation.loading import load_generator as load

    generator = load(
        generator_source(settings),
        revision=settings.generator_revision,
        device=settings.device,
        dtype=settings.dtype,
    )
    speed_up(generator, settings)
    set_window = getattr(generator, "set_window", None)  # Stable Audio Open only
    if set_window is not None:
        set_window(settings.sao_window)
    return generator


def load_generator_limits(settings: Settings) -> GeneratorLimits:
    """The configured generator's limits, from its configs alone (no weights loaded)."""
    from generation.loading import load_generator_limits as load_limits

    return load_limits(generator_source(settings), revision=settings.generator_revision)


def speed_up(generator: Generator, settings: Settings) -> None:
    """Apply ``settings.render_speed`` where the model family has speed options (Stable Audio
    Open; Stable Audio 3 runs diffusers' own pipelines as they are)."""
    from generation.speed import speed_options

    optimize = getattr(generator, "optimize", None)
    options = speed_options(settings.render_speed, settings.device)
    if optimize is not None and options is not None:
        optimize(**options)


def load_guardrails(settings: Settings) -> Guardrails:
    return Guardrails.from_lists(settings.blocked_terms, settings.blocked_terms_file)


def load_orchestrator(
    settings: Settings,
    *,
    store: VectorStore | None = None,
    embedder: ClapEmbedder | None = None,
) -> Orchestrator:
    """Every component a render needs, from settings (store/CLAP reused when given)."""
    return _orchestrator(settings, load_generator(settings), store=store, embedder=embedder)


def load_check_orchestrator(
    settings: Settings,
    *,
    store: VectorStore | None = None,
    embedder: ClapEmbedder | None = None,
) -> Orchestrator:
    """An orchestrator that checks requests but renders none: every component but the
    generator, which it holds only the limits of (read from its configs; no weights loaded).
    For an API replica whose render workers run elsewhere."""
    return _orchestrator(settings, load_generator_limits(settings), store=store, embedder=embedder)


def _orchestrator(
    settings: Settings,
    generator: Generator | GeneratorLimits,
    *,
    store: VectorStore | None,
    embedder: ClapEmbedder | None,
) -> Orchestrator:
    from rag.orchestrate import Orchestrator

    if embedder is None:
        embedder = load_embedder(settings)
    if store is None:
        store = load_store(settings, embedder)
    watermarker, provenance = _watermarking(settings)
    return Orchestrator(
        store=store,
        embedder=embedder,
        generator=generator,
        guardrails=load_guardrails(settings),
        catalog_roots=CatalogRoots(settings.data_dir),
        watermarker=watermarker,
        provenance=provenance,
    )


def _watermarking(settings: Settings) -> tuple[Watermarker, ProvenanceLog]:
    """The deployment's watermarker and provenance log."""
    return load_watermarker(settings), provenance_log(settings)


WATERMARK_KEY_FILE = "watermark.key"


def watermark_secret(settings: Settings) -> bytes:
    """``settings.watermark_key`` if set, else a 32-byte secret made once in ``data_dir``
    (0600, atomically: two processes starting at once agree on one secret)."""
    if settings.watermark_key:
        return settings.watermark_key.encode("utf-8")
    return secret_file(Path(settings.data_dir) / WATERMARK_KEY_FILE)


def load_watermarker(settings: Settings) -> Watermarker:
    """The configured backend: ``stft`` (default, offline) or ``audioseal`` (local weights)."""
    if settings.watermark_backend == "audioseal":
        if settings.audioseal_model is None:
            raise ValueError(
                "watermark_backend=audioseal needs AUDIORAG_AUDIOSEAL_MODEL (a local folder with "
                "the generator and detector .pth files)"
            )
        return AudioSealWatermark.from_local(settings.audioseal_model)
    return StftWatermark(watermark_secret(settings))


def provenance_log(settings: Settings) -> ProvenanceLog:
    """The deployment's take registry: in the shared database when ``database_url`` is set
    (every API replica records and finds takes there), else ``data_dir/provenance.sqlite``."""
    if settings.database_url:
        from audiorag.api.db import engine_url

        return ProvenanceLog(engine_url(settings.database_url))
    return ProvenanceLog.in_folder(settings.data_dir)
