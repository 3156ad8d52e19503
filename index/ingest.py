"""Indexing a catalog folder: scan → licence check → decode/analyse (parallel) → embed (batched)
→ upsert, with a report that names every file that was not indexed and why.

The run is idempotent and crash-safe: point ids come from catalog + content hash, points are
upserted batch by batch as they are ready, and an old point is deleted only after the run has
upserted its replacement — so a run killed at any moment resumes to the same final state.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from audio.decode import MIDI_EXTENSIONS, STEM_EXTENSIONS, Limits, file_sha256
from index.analysis import ANALYSIS_VERSION, bpm_matches, relative_key
from index.clap import SAMPLE_RATE as CLAP_SR
from index.clap import ClapEmbedder
from index.manifest import Entry, Manifest
from index.prepare import Prepared, Problem, WorkItem, prepare_or_problem
from index.store import Filter, Match, Point, VectorStore, point_id


class Progress(Protocol):
    """Where a long job reports how far it is (the CLI plugs a rich progress bar in)."""

    def start(self, total: int, description: str) -> None: ...

    def advance(self, status: str = "") -> None: ...


class SilentProgress:
    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, status: str = "") -> None:
        pass


@dataclass
class IngestReport:
    catalog: str
    root: str
    manifest: str | None
    indexed: list[str] = field(default_factory=list)
    updated: list[str] = field(
        default_factory=list
    )  # payload refreshed (licence, path), vectors kept
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    removed: list[Problem] = field(default_factory=list)
    manifest_errors: list[str] = field(default_factory=list)
    accuracy: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        return {
            name: len(getattr(self, name))
            for name in ("indexed", "updated", "unchanged", "skipped", "failed", "removed")
        }

    def to_json(self) -> dict[str, Any]:
        processed = len(self.indexed)
        return {
            "catalog": self.catalog,
            "root": self.root,
            "manifest": self.manifest,
            "counts": self.counts,
            "seconds": round(self.seconds, 2),
            "indexed_per_second": round(processed / self.seconds, 2) if self.seconds else None,
            "skipped": [asdict(p) for p in self.skipped],
            "failed": [asdict(p) for p in self.failed],
            "removed": [asdict(p) for p in self.removed],
            "manifest_errors": self.manifest_errors,
            "accuracy": self.accuracy,
        }


# --- scanning -----------------------------------------------------------------------------------


def scan_files(root: Path, ignore: Iterable[Path] = ()) -> Iterator[Path]:
    """Every non-hidden file under ``root`` in a stable order, minus ``ignore``."""
    ignored = {p.resolve() for p in ignore}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.resolve() not in ignored:
            yield path


# Documents that live beside the audio in a catalog folder (manifests, notes, artwork): not
# reported as unsupported, since nobody expects them indexed.
SIDECAR_EXTENSIONS = frozenset({".json", ".jsonl", ".csv", ".txt", ".md", ".pdf", ".png", ".jpg"})


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in STEM_EXTENSIONS:
        return "stem"
    if suffix in MIDI_EXTENSIONS:
        return "midi"
    return None


def entry_fingerprint(entry: Entry) -> str:
    """Hash of what the manifest says about a file: a change refreshes the payload."""
    text = json.dumps(entry.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes spawned inside get one BLAS/OpenMP/numba thread each: with several workers on
    few cores, more threads only make them wait on each other."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- payloads -----------------------------------------------------------------------------------


def caption_from(payload: dict[str, Any]) -> str:
    """A plain caption for items whose manifest gives none.

    >>> caption_from({"kind": "stem", "instrument": "bass", "genre": "house", "bpm": 124.0,
    ...               "key": "A minor", "tags": ["dark"]})
    'dark house bass loop at 124 BPM in A minor'
    """
    words = [*payload.get("tags", [])[:2], payload.get("genre"), payload.get("instrument")]
    noun = "MIDI pattern" if payload["kind"] == "midi" else "loop"
    text = " ".join(w for w in words if w) + f" {noun}"
    if payload.get("bpm"):
        text += f" at {payload['bpm']:.0f} BPM"
    if payload.get("key"):
        text += f" in {payload['key']}"
    return text.strip()


def build_payload(
    item: WorkItem, catalog: str, analysis: dict[str, Any], embedder_id: str
) -> dict[str, Any]:
    """The point payload: ground truth where the manifest gives it, estimates otherwise."""
    meta = item.entry.meta
    instrument = meta.instrument
    if instrument is None and item.kind == "midi" and analysis.get("instruments"):
        instrument = max(analysis["instruments"], key=lambda i: i["notes"])["family"]
    payload: dict[str, Any] = {
        "catalog": catalog,
        "kind": item.kind,
        "path": item.relative,
        "sha256": item.sha256,
        "duration_s": analysis["duration_s"],
        "bpm": meta.bpm if meta.bpm is not None else analysis.get("bpm"),
        "key": meta.key if meta.key is not None else analysis.get("key"),
        "instrument": instrument,
        "genre": meta.genre,
        "tags": sorted(set(meta.tags)),
        "licence": item.entry.licence.model_dump(),
        "ground_truth": meta.model_dump(exclude_none=True),
        "analysis": analysis,
        "analysis_version": ANALYSIS_VERSION,
        "embedder": embedder_id,
        "entry_hash": entry_fingerprint(item.entry),
    }
    payload["caption"] = meta.caption or caption_from(payload)
    return payload


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Indexer:
    """Indexes catalog folders into a store with one embedder. Components are explicit."""

    store: VectorStore
    embedder: ClapEmbedder
    workers: int = 2
    batch_size: int = 16
    limits: Limits = field(default_factory=Limits)
    progress: Progress = field(default_factory=SilentProgress)

    def run(
        self, root: Path, *, catalog: str, manifest: Manifest, prune: bool = False
    ) -> IngestReport:
        started = time.perf_counter()
        root = root.resolve()
        report = IngestReport(
            catalog=catalog,
            root=str(root),
            manifest=str(manifest.source) if manifest.source else None,
            manifest_errors=list(manifest.errors),
        )
        existing = self._existing_points(catalog)
        todo, refresh, wanted = self._plan(root, catalog, manifest, existing, report)
        self.progress.start(len(todo) + len(refresh), f"indexing {catalog}")
        self._refresh_payloads(refresh, catalog, report)
        self._process(todo, catalog, report)
        self._remove_stale(existing, wanted, report, prune=prune, root=root)
        self.store.flush()
        report.accuracy = estimate_accuracy(self.store, catalog)
        report.seconds = time.perf_counter() - started
        return report

    # Planning: decide per file whether it is new, unchanged, needs a payload refresh, or is out.
    def _existing_points(self, catalog: str) -> dict[str, dict[str, Any]]:
        return {
            p.id: p.payload for p in self.store.scroll(Filter(must=(Match("catalog", catalog),)))
        }

    def _plan(
        self,
        root: Path,
        catalog: str,
        manifest: Manifest,
        existing: dict[str, dict[str, Any]],
        report: IngestReport,
    ) -> tuple[list[WorkItem], list[WorkItem], dict[str, str]]:
        todo: list[WorkItem] = []
        refresh: list[WorkItem] = []
        wanted: dict[str, str] = {}  # point id → the path that keeps it
        ignore = [manifest.source] if manifest.source else []
        on_disk: set[str] = set()
        for path in scan_files(root, ignore=ignore):
            relative = path.relative_to(root).as_posix()
            on_disk.add(relative)
            kind = kind_of(path)
            if kind is None and path.suffix.lower() in SIDECAR_EXTENSIONS:
                continue
            if kind is None:
                report.skipped.append(Problem(relative, f"unsupported file type '{path.suffix}'"))
                continue
            entry = manifest.get(relative)
            if entry is None:
                report.skipped.append(Problem(relative, "no licence entry in the manifest"))
                continue
            try:
                sha = file_sha256(path)
            except OSError as err:
                report.failed.append(Problem(relative, f"unreadable: {err.strerror or err}"))
                continue
            pid = point_id(catalog, sha)
            if pid in wanted:
                report.skipped.append(Problem(relative, f"duplicate content of {wanted[pid]}"))
                continue
            wanted[pid] = relative
            item = WorkItem(relative, path, kind, sha, entry)
            old = existing.get(pid)
            if old is None or old.get("analysis_version") != ANALYSIS_VERSION:
                todo.append(item)
            elif old.get("path") != relative or old.get("entry_hash") != entry_fingerprint(entry):
                refresh.append(item)
            else:
                report.unchanged.append(relative)
        report.manifest_errors += [
            f"{path}: listed in the manifest, but no such file in the catalog folder"
            for path in sorted(set(manifest.entries) - on_disk)
        ]
        return todo, refresh, wanted

    def _refresh_payloads(self, items: list[WorkItem], catalog: str, report: IngestReport) -> None:
        """Licence or path changed, content did not: new payload, same vectors."""
        for item in items:
            (old,) = self.store.retrieve([point_id(catalog, item.sha256)], with_vectors=True)
            payload = build_payload(
                item, catalog, old.payload["analysis"], self.embedder.embedder.id
            )
            self.store.upsert([Point(old.id, payload, old.vectors)])
            report.updated.append(item.relative)
            self.progress.advance(item.relative)

    def _process(self, items: list[WorkItem], catalog: str, report: IngestReport) -> None:
        ready: list[Prepared] = []
        for result in self._prepared(items):
            if isinstance(result, Problem):
                report.failed.append(result)
                self.progress.advance(result.path)
                continue
            ready.append(result)
            if len(ready) >= self.batch_size:
                self._embed_and_upsert(ready, catalog, report)
                ready = []
        if ready:
            self._embed_and_upsert(ready, catalog, report)

    def _prepared(self, items: list[WorkItem]) -> Iterator[Prepared | Problem]:
        """Decode + analyse, in worker processes when ``workers`` > 0, with bounded memory."""
        if self.workers == 0 or len(items) < 2:
            for item in items:
                yield prepare_or_problem(item, self.limits, CLAP_SR)
            return
        # While workers analyse, embedding here gets the cores they leave: more torch threads
        # than free cores only makes them all wait on each other.
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - self.workers))
        try:
            yield from self._prepared_in_pool(items)
        finally:
            torch.set_num_threads(threads)

    def _prepared_in_pool(self, items: list[WorkItem]) -> Iterator[Prepared | Problem]:
        context = multiprocessing.get_context("spawn")
        in_flight_max = self.workers * 2
        with (
            single_threaded_children(),
            ProcessPoolExecutor(self.workers, mp_context=context) as pool,
        ):
            queue = iter(items)
            running: set[Future] = set()
            for item in queue:
                running.add(pool.submit(prepare_or_problem, item, self.limits, CLAP_SR))
                if len(running) >= in_flight_max:
                    break
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    following = next(queue, None)
                    if following is not None:
                        running.add(
                            pool.submit(prepare_or_problem, following, self.limits, CLAP_SR)
                        )

    def _embed_and_upsert(self, batch: list[Prepared], catalog: str, report: IngestReport) -> None:
        embedded = self._embed(batch, catalog, report)
        if embedded:
            self.store.upsert(embedded)
        for point in embedded:
            report.indexed.append(point.payload["path"])
            self.progress.advance(point.payload["path"])

    def _embed(self, batch: list[Prepared], catalog: str, report: IngestReport) -> list[Point]:
        payloads = [
            build_payload(p.item, catalog, p.analysis, self.embedder.embedder.id) for p in batch
        ]
        try:
            audio = self.embedder.embed_audio([p.clip for p in batch])
            text = self.embedder.embed_text([pl["caption"] for pl in payloads])
        except Exception:
            if len(batch) == 1:
                raise
            # One bad clip must not sink its batch: retry one by one to isolate it.
            points: list[Point] = []
            for single in batch:
                try:
                    points += self._embed([single], catalog, report)
                except Exception as err:
                    report.failed.append(Problem(single.item.relative, f"embedding error: {err}"))
                    self.progress.advance(single.item.relative)
            return points
        return [
            Point(point_id(catalog, p.item.sha256), pl, {"audio": a, "text": t})
            for p, pl, a, t in zip(batch, payloads, audio, text, strict=True)
        ]

    def _remove_stale(
        self,
        existing: dict[str, dict[str, Any]],
        wanted: dict[str, str],
        report: IngestReport,
        *,
        prune: bool,
        root: Path,
    ) -> None:
        """Delete points replaced in this run (changed content, lost licence), and with
        ``prune`` the points of files that are gone. Runs last: replacements are in by now."""
        seen = {p.path for p in report.skipped} | set(wanted.values())
        seen |= {p.path for p in report.failed}
        unlicensed = {p.path for p in report.skipped if p.reason.startswith("no licence")}
        # Only a path whose new content made it in replaces its old point; a file that changed
        # and now fails to decode keeps its old point (and is listed under failed).
        replaced = set(report.indexed) | set(report.updated) | set(report.unchanged)
        stale: list[str] = []
        for pid, payload in existing.items():
            if pid in wanted:
                continue
            path = payload.get("path", "")
            if path in unlicensed:
                stale.append(pid)
                report.removed.append(Problem(path, "licence entry removed from the manifest"))
            elif path in replaced:
                stale.append(pid)
                report.removed.append(Problem(path, "replaced by new content"))
            elif prune and path not in seen and not (root / path).exists():
                stale.append(pid)
                report.removed.append(Problem(path, "file no longer in the catalog folder"))
        if stale:
            self.store.delete(stale)


# --- estimate accuracy against the manifest's ground truth ---------------------------------------


def estimate_accuracy(store: VectorStore, catalog: str) -> dict[str, Any]:
    """How well BPM and key estimates agree with the manifest's ground truth (stems only:
    a MIDI file's tempo and key are read, not estimated)."""
    bpm_total = bpm_ok = key_total = key_exact = key_relative = 0
    misses: list[dict[str, Any]] = []
    for point in store.scroll(Filter(must=(Match("catalog", catalog), Match("kind", "stem")))):
        truth, estimate = point.payload.get("ground_truth", {}), point.payload.get("analysis", {})
        if truth.get("bpm") and truth.get("instrument") == "drums":
            bpm_total += 1
            if estimate.get("bpm") and bpm_matches(estimate["bpm"], truth["bpm"]):
                bpm_ok += 1
            elif len(misses) < 25:
                misses.append(
                    {
                        "path": point.payload["path"],
                        "bpm": truth["bpm"],
                        "estimated": estimate.get("bpm"),
                    }
                )
        if truth.get("key"):
            key_total += 1
            guess = estimate.get("key")
            key_exact += guess == truth["key"]
            key_relative += guess in (truth["key"], relative_key(truth["key"]))
    return {
        "bpm_drum_loops": {
            "items": bpm_total,
            "within_2pct_or_half_double": bpm_ok,
            "rate": round(bpm_ok / bpm_total, 4) if bpm_total else None,
        },
        "key_tonal_stems": {
            "items": key_total,
            "exact": key_exact,
            "exact_or_relative": key_relative,
            "rate_exact": round(key_exact / key_total, 4) if key_total else None,
            "rate_exact_or_relative": round(key_relative / key_total, 4) if key_total else None,
        },
        "bpm_misses": misses,
    }
