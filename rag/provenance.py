"""Provenance: the registry of rendered takes, and what a take's manifest says about its seeds.

Every rendered take carries a watermark whose 32-bit payload is a key into :class:`ProvenanceLog`,
a SQLite file in ``data_dir`` holding a full copy of the take's manifest (request, seeding items,
licences), so ``audiorag watermark detect`` can trace a file back even after its output folder is
gone. SQLite in WAL mode with a busy timeout lets a CLI and a service process share it.

Which watermarker and which log file a deployment uses is decided from settings in
:mod:`audiorag.components`; this module takes explicit paths.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from generation.watermark import PAYLOAD_BITS

LOG_FILE = "provenance.sqlite"  # the log's name inside a deployment's data_dir


class ProvenanceLog:
    """Payload → manifest registry in ``data_dir/provenance.sqlite``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            db.execute(
                "CREATE TABLE IF NOT EXISTS takes ("
                " payload INTEGER PRIMARY KEY,"
                " manifest TEXT,"
                " created REAL NOT NULL)"
            )

    @classmethod
    def in_folder(cls, data_dir: Path) -> ProvenanceLog:
        """The log of the deployment whose data lives in ``data_dir``."""
        return cls(Path(data_dir) / LOG_FILE)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One short-lived connection per operation: safe across processes and threads."""
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    def new_payload(self) -> int:
        """A random 32-bit payload not used before, reserved in the log at once.

        Reserving (a row with no manifest yet) closes the race where two renders draw the same
        number before either records it.
        """
        with self._connect() as db:
            for _ in range(1000):
                payload = secrets.randbits(PAYLOAD_BITS)
                cur = db.execute(
                    "INSERT OR IGNORE INTO takes (payload, manifest, created) VALUES (?, NULL, ?)",
                    (payload, time.time()),
                )
                if cur.rowcount == 1:
                    return payload
        raise RuntimeError("could not find an unused payload in 1000 draws")

    def record(self, payload: int, manifest: dict) -> None:
        """Store (or replace) the full manifest of the take marked with ``payload``."""
        if not 0 <= payload < 1 << PAYLOAD_BITS:
            raise ValueError(f"payload must be a {PAYLOAD_BITS}-bit unsigned integer")
        text = json.dumps(manifest, ensure_ascii=False, sort_keys=True, default=str)
        with self._connect() as db:
            db.execute(
                "INSERT INTO takes (payload, manifest, created) VALUES (?, ?, ?) "
                "ON CONFLICT(payload) DO UPDATE SET manifest = excluded.manifest",
                (payload, text, time.time()),
            )

    def find(self, payload: int) -> dict | None:
        """The manifest recorded for ``payload``, or None (unknown, or reserved only)."""
        with self._connect() as db:
            row = db.execute("SELECT manifest FROM takes WHERE payload = ?", (payload,)).fetchone()
        return json.loads(row[0]) if row and row[0] is not None else None


# --- what a manifest says, for people tracing a file ------------------------------------------


def take_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """Take id, prompt and seeding items read defensively: older manifests may lack keys."""
    return {
        "take_id": manifest.get("take_id") or manifest.get("id"),
        "created_at": manifest.get("created_at"),
        "prompt": _prompt(manifest),
        "model": _get(manifest, "model", "id"),
        "seeds": [_seed(s) for s in _list(manifest.get("seeds") or manifest.get("seeding_items"))],
    }


def _prompt(manifest: dict[str, Any]) -> str | None:
    """The user's prompt: ``prompt.user``, a plain ``prompt`` string, or ``request.prompt``."""
    prompt = manifest.get("prompt")
    if isinstance(prompt, dict):
        prompt = prompt.get("user") or prompt.get("enriched")
    if not prompt:
        prompt = _get(manifest, "request", "prompt")
    return str(prompt) if prompt else None


def _seed(seed: Any) -> dict[str, Any]:
    if not isinstance(seed, dict):
        return {"id": str(seed)}
    licence = seed.get("licence") if isinstance(seed.get("licence"), dict) else {}
    return {
        "id": seed.get("id"),
        "path": seed.get("path"),
        "catalog": seed.get("catalog"),
        "licence_id": licence.get("id"),
        "holder": licence.get("holder"),
        "allowed_uses": _list(licence.get("allowed_uses")),
        "attribution": licence.get("attribution"),
    }


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else []
