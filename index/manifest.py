"""Licence manifests: which files may be indexed, under what licence, with what ground truth.

A manifest is JSON Lines (one object per file) or CSV (one row per file):

* JSONL: ``{"path": "stems/x.wav", "licence": {"id", "holder", "allowed_uses": [...],
  "attribution"}, "meta": {"instrument", "genre", "bpm", "key", "tags", "caption", ...}}``
* CSV: columns ``path, licence_id, holder, allowed_uses`` (``;``-separated), ``attribution``, and
  optionally ``instrument, genre, bpm, key, tags`` (``;``-separated), ``caption``.

Paths are relative to the catalog folder. A bad row is reported with its line number and skipped;
the rest of the manifest still applies.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from index.analysis import normalise_key

DEFAULT_MANIFEST_NAMES = ("licences.jsonl", "licenses.jsonl", "licences.csv", "licenses.csv")
KNOWN_USES = frozenset({"search", "generation-seed", "commercial", "training", "preview"})
SEED_USE = "generation-seed"  # the only licence use that lets an item seed a take


def allowed_uses(payload: dict) -> list[str]:
    """The licence uses a stored item's payload grants (none when it has no licence).

    >>> allowed_uses({"licence": {"allowed_uses": ["search"]}}), allowed_uses({})
    (['search'], [])
    """
    return list((payload.get("licence") or {}).get("allowed_uses") or [])


def may_seed(uses: Iterable[str]) -> bool:
    """The seed-licence rule: an item may seed a take only if its licence allows
    :data:`SEED_USE` (the store filter ``licence.allowed_uses = SEED_USE`` is its query form).

    >>> may_seed(["search", "generation-seed"]), may_seed(["search"])
    (True, False)
    """
    return SEED_USE in uses


class Licence(BaseModel):
    id: str = Field(min_length=1)
    holder: str = Field(min_length=1)
    allowed_uses: list[str] = Field(min_length=1)
    attribution: str = ""

    @field_validator("allowed_uses")
    @classmethod
    def _known_uses(cls, uses: list[str]) -> list[str]:
        cleaned = sorted({u.strip().lower() for u in uses if u.strip()})
        unknown = set(cleaned) - KNOWN_USES
        if unknown:
            raise ValueError(f"unknown use(s) {sorted(unknown)}; known: {sorted(KNOWN_USES)}")
        return cleaned


class GroundTruth(BaseModel, extra="allow"):
    """What the catalog owner states about an item; analysis estimates are kept beside it."""

    instrument: str | None = None
    genre: str | None = None
    bpm: float | None = Field(None, gt=0)
    key: str | None = None
    tags: list[str] = Field(default_factory=list)
    caption: str | None = None
    program: int | None = Field(None, ge=0, le=127)

    @field_validator("key")
    @classmethod
    def _canonical_key(cls, key: str | None) -> str | None:
        return normalise_key(key) if key else None


class Entry(BaseModel):
    path: str
    licence: Licence
    meta: GroundTruth = Field(default_factory=GroundTruth)

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        posix = PurePosixPath(path.replace("\\", "/"))
        if posix.is_absolute() or ".." in posix.parts:
            raise ValueError("path must be relative to the catalog folder, without '..'")
        return str(posix)


@dataclass
class Manifest:
    entries: dict[str, Entry] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # "manifest line N: reason"
    source: Path | None = None

    def get(self, relative_path: str) -> Entry | None:
        return self.entries.get(relative_path)


def find_manifest(folder: Path) -> Path | None:
    for name in DEFAULT_MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def load_manifest(path: Path) -> Manifest:
    """Read a JSONL or CSV manifest; bad rows land in ``errors`` instead of aborting."""
    manifest = Manifest(source=path)
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    for line, row in rows:
        if isinstance(row, str):
            manifest.errors.append(f"{path.name} line {line}: {row}")
            continue
        try:
            entry = Entry.model_validate(row)
        except ValidationError as err:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            manifest.errors.append(f"{path.name} line {line}: {where}")
            continue
        if entry.path in manifest.entries:
            manifest.errors.append(f"{path.name} line {line}: duplicate entry for {entry.path}")
            continue
        manifest.entries[entry.path] = entry
    return manifest


def _jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any] | str]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            rows.append((number, f"not valid JSON ({err.msg})"))
            continue
        rows.append((number, value if isinstance(value, dict) else "not a JSON object"))
    return rows


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


def _csv_rows(path: Path) -> list[tuple[int, dict[str, Any] | str]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for number, record in enumerate(csv.DictReader(f), start=2):
            meta = {
                k: record[k] for k in ("instrument", "genre", "key", "caption") if record.get(k)
            }
            if record.get("bpm"):
                meta["bpm"] = record["bpm"]
            if record.get("tags"):
                meta["tags"] = _split(record["tags"])
            rows.append(
                (
                    number,
                    {
                        "path": record.get("path") or "",
                        "licence": {
                            "id": record.get("licence_id") or "",
                            "holder": record.get("holder") or "",
                            "allowed_uses": _split(record.get("allowed_uses")),
                            "attribution": record.get("attribution") or "",
                        },
                        "meta": meta,
                    },
                )
            )
    return rows
