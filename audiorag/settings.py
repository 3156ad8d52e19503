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
    qdrant_retry_attempts: int = Field(
        5,
        ge=1,
        description="Tries against an unanswering Qdrant server (backoff 0.25 → 4 s).",
    )
    qdrant_retry_max_s: float = Field(
        30.0, gt=0, description="Give up on an unanswering Qdrant server after this many seconds."
    )
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
    # --- growing past one machine: indexing on Ray, Qdrant server collections ---
    ray_address: str | None = Field(
        None,
        description="Index on Ray (`audiorag index DIR --ray [ADDRESS]` overrides): 'local' "
        "starts Ray on this machine, 'auto' joins the cluster this node belongs to, or "
        "host:6379 / ray://host:10001; unset → the local process pool.",
    )
    ray_embed_actors: int = Field(
        1, ge=1, description="CLAP embedding actors on Ray (each takes a GPU where there is one)."
    )
    qdrant_shard_number: int | None = Field(
        None, ge=1, description="Shards of a collection created on a Qdrant server (cluster)."
    )
    qdrant_replication_factor: int | None = Field(
        None, ge=1, description="Copies of each shard on a Qdrant cluster."
    )
    qdrant_write_consistency_factor: int | None = Field(
        None, ge=1, description="Replicas that must confirm a write on a Qdrant cluster."
    )
    qdrant_on_disk_vectors: bool = Field(
        False, description="Keep a server collection's float vectors on disk (memory-mapped)."
    )
    qdrant_quantization: Literal["none", "int8"] = Field(
        "none",
        description="int8 scalar quantisation of a server collection's vectors, kept in RAM "
        "(searches rescore on the originals).",
    )
    generator_model: str | None = Field(
        None,
        description="Generator hub id (e.g. stabilityai/stable-audio-open-1.0) or diffusers "
        "folder; unset → the bundled demo generator (generation/models/generator-demo).",
    )
    generator_revision: str | None = None
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32",
        description="Generator weights dtype (half precision on a GPU; a CPU maps it to float32).",
    )
    render_speed: Literal["auto", "off", "fast", "compiled"] = Field(
        "auto",
        description="Render speed-ups (Stable Audio Open family): auto = fast on a GPU, off on "
        "a CPU; fast = bf16 compute, fused attention, CUDA graphs; compiled = fast + "
        "torch.compile (warm-up per new length); off = stock numerics.",
    )
    sao_window: Literal["auto", "full", "fit"] = Field(
        "auto",
        description="Stable Audio Open latent window: full = render the model's whole window "
        "(1024 frames, 47.55 s for SAO 1.0) and trim, as upstream does; fit = render only the "
        "request's frames (cheaper); auto = full for SAO 1.0-sized models, fit for smaller ones "
        "(the bundled demo model).",
    )
    blocked_terms: list[str] = Field(
        default_factory=list,
        description="Prompt terms refused unless the catalog holds that artist's licence "
        "(JSON list in the env var).",
    )
    blocked_terms_file: Path | None = Field(
        None, description="Text file, one blocked term a line (# comments), added to the list."
    )
    watermark_key: str | None = Field(
        None,
        description="Deployment secret keying the watermark; unset → one is made once and kept "
        "in data_dir/watermark.key.",
    )
    watermark_backend: Literal["stft", "audioseal"] = "stft"
    audioseal_model: Path | None = Field(
        None, description="Local AudioSeal weights folder, for watermark_backend=audioseal."
    )
    # --- HTTP service (`audiorag serve`) ---
    api_host: str = Field("127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(
        1,
        ge=1,
        description="API worker processes; more than one needs a Qdrant server (qdrant_url), "
        "since the embedded engine belongs to one process.",
    )
    api_queue_size: int = Field(
        8,
        ge=1,
        description="Generation jobs waiting (in the shared jobs table: every process's) before "
        "new ones get 429.",
    )
    api_generation_workers: int = Field(
        1,
        ge=0,
        description="Generation threads per API process (one per device); 0 → this process "
        "accepts, polls and cancels jobs but renders none (`audiorag worker` processes do).",
    )
    api_max_search_results: int = Field(100, ge=1)
    # --- past one machine ---
    database_url: str | None = Field(
        None,
        description="Metadata database (jobs, sessions, keys, grants, provenance) shared by API "
        "replicas, e.g. postgresql://user:pass@db/audiorag; unset → SQLite files in data_dir.",
    )
    storage_url: str | None = Field(
        None,
        description="fsspec URL takes are published to once complete (e.g. s3://bucket/takes, "
        "file:///mnt/shared/takes); unset → takes stay in data_dir/takes only.",
    )
    render_ray_address: str | None = Field(
        None,
        description="Run `audiorag worker` as a Ray actor pool (`--ray [ADDRESS]` overrides): "
        "'local' starts Ray on this machine, 'auto' joins this node's cluster, or host:6379 / "
        "ray://host:10001; unset → render threads in the worker process. Separate from "
        "ray_address (indexing): the two may be different clusters.",
    )
    render_ray_actors: int = Field(
        1,
        ge=1,
        description="Render actors on a Ray cluster without GPUs (each holds a loaded generator); "
        "on a cluster with GPUs there is one actor per GPU.",
    )
    job_heartbeat_s: float = Field(
        5.0, gt=0, description="How often a process stamps the jobs it is rendering."
    )
    job_stale_s: float = Field(
        30.0,
        gt=0,
        description="A running job whose heartbeat is older than this lost its process: it is "
        "queued again once, then failed.",
    )
    upload_max_file_bytes: int = Field(
        100 * 2**20, ge=1, description="Largest single uploaded file (stem, MIDI, reference)."
    )
    upload_max_request_bytes: int = Field(
        512 * 2**20, ge=1, description="Largest upload request body, all files together."
    )
    upload_max_files: int = Field(64, ge=1, description="Files per upload request.")
    upload_max_seconds: float = Field(
        600.0, gt=0, description="Longest uploaded stem or MIDI pattern, in seconds."
    )

    @property
    def store_path(self) -> Path:
        folder = "qdrant-edge" if self.store_backend == "edge" else "qdrant-local"
        return self.data_dir / folder / self.collection

    @property
    def outputs_dir(self) -> Path:
        """Where takes are written when no output folder is given."""
        return self.data_dir / "takes"


@lru_cache
def get_settings() -> Settings:
    return Settings()
