"""Shared storage for takes and job inputs (``AUDIORAG_STORAGE_URL``, any fsspec URL:
``s3://bucket/takes``, ``gcs://…``, ``file:///mnt/shared/takes``; S3 needs ``pip install s3fs``).

A take is always written locally first, atomically (a hidden folder renamed into place, see
``rag.takes``); then it is published to ``<url>/<tenant>/<take id>/``. Object stores have no
rename, so ``manifest.json`` is uploaded last: a take whose manifest is there is complete.

A job's input files (its reference clip ``like``, its in-paint source) are uploaded when the job
is accepted, to ``<url>/_inputs/<job id>/`` (``_`` cannot begin a tenant name, so inputs never
share a folder with a tenant's takes), and the job's spec keeps their URLs: whichever worker
claims the job — another process, another machine — fetches them to local scratch first
(:func:`fetch_inputs`). Without the setting, specs hold local paths, as before.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec

MANIFEST = "manifest.json"
INPUTS = "_inputs"
INPUT_FIELDS = ("like", "inpaint")  # the spec fields that name an input file


class InputMissing(ValueError):
    """A job's input file is not on the shared storage (deleted, or the URL is wrong): a
    ValueError like the orchestrator's own refusals, so the API answers 422 and a worker fails
    the job with this message."""


def publish_take(url: str, tenant: str, folder: Path) -> str:
    """Copy the take in ``folder`` to ``url``; the URL it now lives at."""
    fs, root = fsspec.core.url_to_fs(url)
    target = f"{root.rstrip('/')}/{tenant}/{folder.name}"
    fs.makedirs(target, exist_ok=True)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in sorted(files, key=lambda p: p.name == MANIFEST):  # the manifest last
        fs.put_file(str(path), f"{target}/{path.name}")
    return f"{url.rstrip('/')}/{tenant}/{folder.name}"


def take_publisher(url: str | None) -> Callable[[str, Path], str] | None:
    """Copies finished takes to the shared storage (None: takes stay local)."""
    if not url:
        return None
    return lambda tenant, folder: publish_take(url, tenant, folder)


def is_url(value: str) -> bool:
    """A spec value that names a file on shared storage rather than a local path."""
    return "://" in value


def upload_inputs(url: str, job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with its local input files copied to ``<url>/_inputs/<job id>/`` and named by
    URL. Values already on shared storage (a re-run's) are kept as they are."""
    fs, root = fsspec.core.url_to_fs(url)
    target = f"{root.rstrip('/')}/{INPUTS}/{job_id}"
    shared = dict(spec)
    for name in INPUT_FIELDS:
        value = spec.get(name)
        if not value or is_url(value):
            continue
        local = Path(value)
        fs.makedirs(target, exist_ok=True)
        fs.put_file(str(local), f"{target}/{name}-{local.name}")
        shared[name] = f"{url.rstrip('/')}/{INPUTS}/{job_id}/{name}-{local.name}"
    return shared


def input_uploader(url: str | None) -> Callable[[str, dict[str, Any]], dict[str, Any]] | None:
    """What a job queue calls on each accepted job's spec (None: inputs stay local)."""
    if not url:
        return None
    return lambda job_id, spec: upload_inputs(url, job_id, spec)


def fetch_inputs(spec: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """``spec`` with input files named by URL downloaded into ``scratch`` (the caller removes
    it after the render); local paths are kept. :class:`InputMissing` names a missing one."""
    local = dict(spec)
    for name in INPUT_FIELDS:
        value = spec.get(name)
        if not value or not is_url(value):
            continue
        fs, path = fsspec.core.url_to_fs(value)
        target = scratch / f"{name}-{Path(path).name}"
        try:
            fs.get_file(path, str(target))
        except FileNotFoundError as err:
            raise InputMissing(
                f"the job's {name} file is gone from the shared storage ({value})"
            ) from err
        local[name] = str(target)
    return local


@contextmanager
def local_inputs(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``spec`` with its inputs on local disk for as long as the block runs: fetched into a
    scratch folder removed afterwards when they are URLs (nothing is fetched otherwise)."""
    if not any(is_url(spec.get(name) or "") for name in INPUT_FIELDS):
        yield spec
        return
    with tempfile.TemporaryDirectory(prefix="audiorag-inputs-") as scratch:
        yield fetch_inputs(spec, Path(scratch))
