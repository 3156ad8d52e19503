"""One settings object, read from ``AUDIORAG_*`` environment variables (and a ``.env`` file).

Defaults are the embedded ones: everything lives under ``data_dir``, Qdrant runs in-process
(Qdrant Edge) unless ``qdrant_url`` is set, and the CLAP model is the one bundled in the package
(``index/models/clap-demo``, trained on the synthetic demo catalog).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIORAG_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the store, models and outputs live.")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset → embedded engine.")
    qdrant_api_key: str | None = None
    store_backend: Literal["edge", "local"] = Field(
        "edge", description="Embedded engine: Qdrant Edge (default) or qdrant-client local mode."
    )
    collection: str = "audiorag"
    clap_model: str | None = Field(
        None,
        description="CLAP hub id (e.g. laion/larger_clap_general) or folder; unset → the "
        "bundled demo CLAP (index/models/clap-demo).",
    )
    clap_revision: str | None = None
    device: str = "cpu"
    workers: int = Field(
        2, ge=0, description="Decode/analysis processes for indexing (0 = inline)."
    )
    embed_batch_size: int = Field(16, ge=1)

    @property
    def store_path(self) -> Path:
        folder = "qdrant-edge" if self.store_backend == "edge" else "qdrant-local"
        return self.data_dir / folder / self.collection

    @property
    def default_clap_folder(self) -> Path:
        """Where the random stand-in is built when the bundled model is missing."""
        return self.data_dir / "models" / "tiny-clap-random"


@lru_cache
def get_settings() -> Settings:
    return Settings()
