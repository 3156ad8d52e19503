"""Uploading stems / MIDI patterns into a tenant's catalog: staging each file (capped copy,
sniffed type, licence record), moving the accepted ones in, indexing the catalog, and putting
back what a failed file replaced — so folder, licences.jsonl and index always agree.

One upload at a time per catalog: a thread lock in this process and a file lock across API
processes (both index into the same folder and manifest).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from pydantic import ValidationError

from audio.decode import Limits, file_sha256
from audiorag.api.facets import FacetsCache
from audiorag.api.folders import Folders
from audiorag.api.metrics import Metrics
from audiorag.api.models import Loaded
from audiorag.api.schemas import UploadedFile, UploadResponse
from audiorag.api.tenancy import Catalog
from audiorag.api.uploads import (
    SNIFFED,
    UploadRejected,
    copy_capped,
    inside,
    safe_name,
    sniff,
    with_extension,
)
from audiorag.settings import Settings
from index.ingest import Indexer
from index.manifest import Entry, Licence, load_manifest
from index.store import point_id
from rag.catalogs import CatalogRoots

MANIFEST_NAME = "licences.jsonl"


@dataclass
class Staged:
    result: UploadedFile
    staged: Path | None = None
    entry: Entry | None = None


class CatalogUploads:
    """Uploads into tenants' catalogs (the route parses the form; this does the files)."""

    def __init__(
        self, settings: Settings, folders: Folders, facets: FacetsCache, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.folders = folders
        self.facets = facets
        self.metrics = metrics
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @contextmanager
    def lock(self, root: Path) -> Iterator[None]:
        """One upload at a time per catalog folder, in this process and across processes."""
        with self._locks_lock:
            lock = self._locks.setdefault(str(root), threading.Lock())
        root.mkdir(parents=True, exist_ok=True)
        with lock:
            fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def ingest(
        self,
        loaded: Loaded,
        catalog: Catalog,
        files: list[UploadFile],
        records: dict[str, dict[str, Any]],
        default_licence: Licence | None,
    ) -> UploadResponse:
        """Stage, move in and index ``files``; every file gets a status."""
        assert catalog.root is not None
        settings = self.settings
        staging = self.folders.uploads / ".staging" / uuid.uuid4().hex
        staged: list[Staged] = []
        try:
            names: set[str] = set()
            for upload in files:
                item = _stage(
                    upload, staging, settings.upload_max_file_bytes, records, default_licence
                )
                if item.entry is not None and item.entry.path in names:
                    assert item.staged is not None
                    item.staged.unlink(missing_ok=True)
                    item = Staged(
                        UploadedFile(
                            filename=item.result.filename,
                            stored_as=item.result.stored_as,
                            status="rejected",
                            reason="another file in this upload has the same name",
                        )
                    )
                elif item.entry is not None:
                    names.add(item.entry.path)
                staged.append(item)
            accepted = [s for s in staged if s.entry is not None]
            if accepted:
                with self.lock(catalog.root):
                    self._index(loaded, catalog, accepted)
        finally:
            for item in staged:
                if item.staged is not None:
                    item.staged.unlink(missing_ok=True)
            _rmdir(staging)
        results = [s.result for s in staged]
        for r in results:
            self.metrics.uploads.labels(r.status).inc()
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return UploadResponse(catalog=catalog.name, files=results, counts=counts)

    def _index(self, loaded: Loaded, catalog: Catalog, accepted: list[Staged]) -> None:
        """Move the accepted files in (keeping what they replace), index the catalog, then keep the
        files that made it and put back what the others replaced."""
        assert catalog.root is not None
        root = catalog.root
        root.mkdir(parents=True, exist_ok=True)
        manifest_path = root / MANIFEST_NAME
        old_entries = _read_entries(manifest_path)
        entries = dict(old_entries)
        backups: dict[str, Path] = {}
        for item in accepted:
            assert item.entry is not None and item.staged is not None
            target = inside(root, item.entry.path)
            if target.exists():
                backup = root / f".replaced-{uuid.uuid4().hex}"
                os.replace(target, backup)
                backups[item.entry.path] = backup
            os.replace(item.staged, target)
            item.staged = None
            entries[item.entry.path] = item.entry.model_dump(mode="json")
        _write_entries(manifest_path, entries)
        settings = self.settings
        indexer = Indexer(
            loaded.store,
            loaded.embedder,
            workers=0,  # the request thread embeds; worker processes would fight the API for cores
            batch_size=settings.embed_batch_size,
            limits=Limits(
                max_bytes=settings.upload_max_file_bytes, max_seconds=settings.upload_max_seconds
            ),
        )
        try:
            report = indexer.run(
                root, catalog=catalog.store_name, manifest=load_manifest(manifest_path)
            )
        except Exception:
            _roll_back(root, accepted, backups, old_entries, manifest_path)
            raise
        # The orchestrator finds seed audio through the catalog roots registry.
        CatalogRoots(settings.data_dir).set(catalog.store_name, root)
        self.facets.changed(catalog.store_name)
        outcome: dict[str, tuple[str, str | None]] = {}
        for status in ("indexed", "updated", "unchanged"):
            for path in getattr(report, status):
                outcome[path] = (status, None)
        for problem in report.skipped:
            outcome.setdefault(problem.path, ("rejected", problem.reason))
        for problem in report.failed:
            outcome.setdefault(problem.path, ("failed", problem.reason))
        failed: list[Staged] = []
        for item in accepted:
            assert item.entry is not None
            status, reason = outcome.get(item.entry.path, ("failed", "not indexed"))
            item.result.status = status  # type: ignore[assignment]
            item.result.reason = reason
            if status in ("indexed", "updated", "unchanged"):
                sha = file_sha256(root / item.entry.path)
                item.result.id = point_id(catalog.store_name, sha)
                backup = backups.pop(item.entry.path, None)
                if backup is not None:
                    backup.unlink(missing_ok=True)
            else:
                failed.append(item)
        if failed:
            _roll_back(root, failed, backups, old_entries, manifest_path, entries)


def _stage(
    upload: UploadFile,
    staging: Path,
    max_bytes: int,
    records: dict[str, dict[str, Any]],
    default_licence: Licence | None,
) -> Staged:
    sent = upload.filename or ""
    printable = safe_name(sent, fallback="(unnamed)") if sent else "(unnamed)"
    name = safe_name(sent)
    staging.mkdir(parents=True, exist_ok=True)
    temp = staging / f".part-{uuid.uuid4().hex}"
    try:
        _, head = copy_capped(upload.file, temp, max_bytes)
    except UploadRejected as err:
        return Staged(UploadedFile(filename=printable, status="rejected", reason=str(err)))
    kind = sniff(head)
    if kind is None:
        temp.unlink(missing_ok=True)
        return Staged(
            UploadedFile(
                filename=printable,
                status="rejected",
                reason="content is not WAV, FLAC, Ogg, MP3 or MIDI (whatever the name says)",
            )
        )
    stored = with_extension(name, SNIFFED[kind][1])
    # A record may name the file as sent, as made safe, or as it will be stored.
    record = records.get(sent) or records.get(name) or records.get(stored)
    if record is not None:
        row = {**record, "path": stored}
    elif default_licence is not None:
        row = {"path": stored, "licence": default_licence.model_dump()}
    else:
        temp.unlink(missing_ok=True)
        return Staged(
            UploadedFile(
                filename=printable,
                stored_as=stored,
                status="rejected",
                reason="no licence record: add it to `manifest` or pass `licence`",
            )
        )
    try:
        entry = Entry.model_validate(row)
    except ValidationError as err:
        temp.unlink(missing_ok=True)
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return Staged(
            UploadedFile(
                filename=printable,
                stored_as=stored,
                status="rejected",
                reason=f"licence record: {reasons}",
            )
        )
    return Staged(
        UploadedFile(filename=printable, stored_as=stored, status="rejected"), temp, entry
    )


def _roll_back(
    root: Path,
    items: list[Staged],
    backups: dict[str, Path],
    old_entries: dict[str, Any],
    manifest_path: Path,
    entries: dict[str, Any] | None = None,
) -> None:
    """Remove ``items``' new files and restore what they replaced (file and licence record).

    The indexer keeps an old point when its file's new content fails, so restoring the old file
    and record leaves index, folder and manifest in agreement.
    """
    entries = dict(entries if entries is not None else old_entries)
    for item in items:
        assert item.entry is not None
        path = item.entry.path
        target = root / path
        target.unlink(missing_ok=True)
        backup = backups.pop(path, None)
        if backup is not None:
            os.replace(backup, target)
        if path in old_entries:
            entries[path] = old_entries[path]
        else:
            entries.pop(path, None)
    _write_entries(manifest_path, entries)


def _read_entries(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    entries: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            entries[row["path"]] = row
    return entries


def _write_entries(path: Path, entries: dict[str, Any]) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".licences-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        for key in sorted(entries):
            out.write(json.dumps(entries[key], sort_keys=True) + "\n")
    os.replace(temp, path)


def _rmdir(folder: Path) -> None:
    try:
        for child in folder.iterdir():
            child.unlink(missing_ok=True)
        folder.rmdir()
    except FileNotFoundError:
        pass
