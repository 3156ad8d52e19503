"""What every labelled training catalog of real samples shares: leaving out held-out copies, and
writing ``licences.jsonl`` plus ``catalog.json`` (:mod:`.sample_packs`, :mod:`.instrument_samples`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audio.decode import STEM_EXTENSIONS, file_sha256


def held_out_hashes(folders: Sequence[Path]) -> set[str]:
    """sha256 of every audio file under ``folders``: a training file with equal bytes is a copy
    of a held-out file and is left out."""
    return {
        file_sha256(path) for folder in folders for path in Path(folder).rglob("*")
        if path.suffix.lower() in STEM_EXTENSIONS
    }  # fmt: skip


def write_training_catalog(
    out: Path, rows: Sequence[dict[str, Any]], description: dict[str, Any]
) -> dict[str, Any]:
    """``rows`` (path, licence, meta) as ``out/licences.jsonl`` and ``description`` as
    ``out/catalog.json``; returns ``description``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "licences.jsonl").open("w", encoding="utf-8", newline="\n") as manifest:
        for row in rows:
            manifest.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / "catalog.json").write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return description
