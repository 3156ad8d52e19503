"""Identifying a model by its weights, for manifests and provenance.

Hashing a real checkpoint (5 GB for Stable Audio Open) takes minutes, and every process that
loads the model needs the digest. It is computed once per folder and kept in a small cache keyed
by each weights file's name, size and modification time: a changed file is hashed again, an
unchanged folder costs a few ``stat`` calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def cache_file() -> Path:
    """Where digests are remembered: ``$AUDIORAG_CACHE_DIR`` or the user's cache folder."""
    root = os.environ.get("AUDIORAG_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    if not os.environ.get("AUDIORAG_CACHE_DIR"):
        base = base / "audiorag"
    return base / "weights-sha256.json"


def weight_files(folder: Path) -> list[Path]:
    """Every weights file in a model folder, in the order they are hashed."""
    return [path for pattern in WEIGHT_PATTERNS for path in sorted(folder.rglob(pattern))]


def fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of the weights files: what a cached digest is for."""
    parts = []
    for path in weight_files(folder):
        stat = path.stat()
        parts.append(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def hash_folder(folder: Path) -> str:
    """sha256 over every weights file in a model folder (names and bytes)."""
    digest = hashlib.sha256()
    for path in weight_files(folder):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def folder_sha256(folder: Path, cache: Path | None = None) -> str:
    """The folder's weights digest (see :func:`hash_folder`), from the cache when unchanged.

    >>> folder_sha256(Path("generation/models/generator-demo"))[:12]  # doctest: +SKIP
    '3f5c…'
    """
    cache = cache or cache_file()
    key = str(folder.resolve())
    mark = fingerprint(folder)
    known = _read(cache)
    entry = known.get(key)
    if entry and entry.get("fingerprint") == mark:
        return entry["sha256"]
    digest = hash_folder(folder)
    known[key] = {"fingerprint": mark, "sha256": digest}
    _write(cache, known)
    return digest


def _read(cache: Path) -> dict:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(cache: Path, known: dict) -> None:
    """Atomic replace; a cache that cannot be written only costs the next load a re-hash."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=cache.parent, prefix=".weights-", suffix=".tmp", delete=False
        ) as handle:
            json.dump(known, handle, indent=0, sort_keys=True)
        os.replace(handle.name, cache)
    except OSError:
        pass
