"""Building the system's components from settings: the one place that reads them."""

from __future__ import annotations

import logging
from pathlib import Path

import index
from index.clap import ClapEmbedder, build_tiny_clap
from index.store import VectorStore, open_store
from rag.settings import Settings

log = logging.getLogger(__name__)

# The default CLAP: trained on the synthetic demo catalog by `audiorag train clap` and shipped in
# the package (see its TRAINING.md), because no model hub is reachable where this runs.
BUNDLED_CLAP = Path(index.__file__).resolve().parent / "models" / "clap-demo"

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
