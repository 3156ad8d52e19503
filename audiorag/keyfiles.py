"""Deployment secrets kept as files in the data dir (watermark key, URL-signing key)."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

SECRET_BYTES = 32


def secret_file(path: Path, wait_s: float = 2.0) -> bytes:
    """The 32-byte secret in ``path``, made there once if missing.

    The file is created with mode 0600 atomically (``O_EXCL``), so two processes starting at once
    agree on one secret: the loser of the race reads the winner's file, waiting briefly for it to
    be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SECRET_BYTES))
    deadline = time.monotonic() + wait_s
    while True:
        data = path.read_bytes()
        if len(data) >= SECRET_BYTES or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if len(data) < SECRET_BYTES:
        raise RuntimeError(f"{path} holds {len(data)} bytes, expected {SECRET_BYTES}")
    return data
