"""Shared storage for takes (``AUDIORAG_STORAGE_URL``, any fsspec URL: ``s3://bucket/takes``,
``gcs://…``, ``file:///mnt/shared/takes``; S3 needs ``pip install s3fs``).

A take is always written locally first, atomically (a hidden folder renamed into place, see
``rag.takes``); then it is published to ``<url>/<tenant>/<take id>/``. Object stores have no
rename, so ``manifest.json`` is uploaded last: a take whose manifest is there is complete.
"""

from __future__ import annotations

from pathlib import Path

import fsspec

MANIFEST = "manifest.json"


def publish_take(url: str, tenant: str, folder: Path) -> str:
    """Copy the take in ``folder`` to ``url``; the URL it now lives at."""
    fs, root = fsspec.core.url_to_fs(url)
    target = f"{root.rstrip('/')}/{tenant}/{folder.name}"
    fs.makedirs(target, exist_ok=True)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in sorted(files, key=lambda p: p.name == MANIFEST):  # the manifest last
        fs.put_file(str(path), f"{target}/{path.name}")
    return f"{url.rstrip('/')}/{tenant}/{folder.name}"
