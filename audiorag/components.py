"""Building the system's components from settings: the one place that reads them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from audiorag.keyfiles import secret_file
from audiorag.settings import Settings
from generation.loading import BUNDLED_GENERATOR
from generation.watermark import AudioSealWatermark, StftWatermark, Watermarker
from index.clap import BUNDLED_CLAP, ClapEmbedder, build_tiny_clap
from index.store import VectorStore, open_store
from rag.catalogs import CatalogRoots
from rag.guardrails import Guardrails
from rag.provenance import ProvenanceLog

if TYPE_CHECKING:
    from generation.interface import Generator
    from rag.orchestrate import Orchestrator

log = logging.getLogger(__name__)

UNTRAINED_NOTICE = (
    "No CLAP model configured and the bundled one is missing: using a randomly initialised tiny "
    "CLAP ({folder}). Indexing and search work end to end, but similarity is not musically "
    "meaningful. Set AUDIORAG_CLAP_MODEL to a trained model folder or hub id (e.g. "
    "laion/larger_clap_general) for real results."
)


def clap_source(settings: Settings) -> tuple[str | Path, bool]:
    """Where the CLAP model comes from, and whether it is the untrained stand-in.

    A hub id or folder in settings wins; else the bundled demo model, loaded like any other
    folder; else (a checkout without it) a randomly initialised tiny CLAP, announced as such.
    """
    if settings.clap_model:
        return settings.clap_model, False
    if (BUNDLED_CLAP / "config.json").is_file():
        return BUNDLED_CLAP, False
    folder = settings.default_clap_folder
    if not (folder / "config.json").is_file():
        build_tiny_clap(folder)
    return folder, True


def load_embedder(settings: Settings) -> tuple[ClapEmbedder, str | None]:
    """The configured CLAP embedder, plus a notice to show the user when it is untrained."""
    source, untrained = clap_source(settings)
    embedder = ClapEmbedder.from_pretrained(
        source,
        revision=settings.clap_revision,
        device=settings.device,
        batch_size=settings.embed_batch_size,
    )
    notice = UNTRAINED_NOTICE.format(folder=source) if untrained else None
    return embedder, notice


def load_store(settings: Settings, embedder: ClapEmbedder) -> VectorStore:
    """The configured store for this embedder: a server when a URL is set, else embedded."""
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
    )


UNTRAINED_GENERATOR_NOTICE = (
    "No generator configured and the bundled one is missing: using a randomly initialised tiny "
    "Stable Audio Open–architecture model ({folder}). The whole chain runs, but the audio is "
    "noise, not music. Set AUDIORAG_GENERATOR_MODEL to a model folder or hub id (e.g. "
    "stabilityai/stable-audio-open-1.0) for real results."
)


def generator_source(settings: Settings) -> tuple[str | Path, bool]:
    """Where the generator comes from, and whether it is the untrained stand-in."""
    if settings.generator_model:
        return settings.generator_model, False
    if (BUNDLED_GENERATOR / "model_index.json").is_file():
        return BUNDLED_GENERATOR, False
    folder = settings.data_dir / "models" / "tiny-generator-random"
    if not (folder / "model_index.json").is_file():
        from generation.stable_audio_open import build_tiny_stable_audio_open

        build_tiny_stable_audio_open(folder)
    return folder, True


def load_generator(settings: Settings) -> tuple[Generator, str | None]:
    """The configured generator, plus a notice to show the user when it is untrained."""
    from generation.loading import load_generator as load

    source, untrained = generator_source(settings)
    generator = load(
        source, revision=settings.generator_revision, device=settings.device, dtype=settings.dtype
    )
    speed_up(generator, settings)
    notice = UNTRAINED_GENERATOR_NOTICE.format(folder=source) if untrained else None
    return generator, notice


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
    from rag.orchestrate import Orchestrator

    if embedder is None:
        embedder, _ = load_embedder(settings)
    if store is None:
        store = load_store(settings, embedder)
    generator, notice = load_generator(settings)
    watermarker, provenance = _watermarking(settings)
    return Orchestrator(
        store=store,
        embedder=embedder,
        generator=generator,
        guardrails=load_guardrails(settings),
        catalog_roots=CatalogRoots(settings.data_dir),
        watermarker=watermarker,
        provenance=provenance,
        generator_notice=notice,
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
    """The deployment's take registry, ``data_dir/provenance.sqlite``."""
    return ProvenanceLog.in_folder(settings.data_dir)
