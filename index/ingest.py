"""Indexing a catalog folder: scan → licence check → decode/analyse (parallel) → embed (batched)
→ upsert, with a report that names every file that was not indexed and why.

The run is idempotent and crash-safe: point ids come from catalog + content hash, points are
upserted batch by batch as they are ready, and an old point is deleted only after the run has
upserted its replacement — so a run killed at any moment resumes to the same final state.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from audio.decode import MIDI_EXTENSIONS, STEM_EXTENSIONS, Limits, file_sha256
from index.analysis import ANALYSIS_VERSION, bpm_matches, relative_key
from index.clap import SAMPLE_RATE as CLAP_SR
from index.clap import ClapEmbedder
from index.manifest import Entry, Manifest
from index.names import name_label
from index.payload import build_payload as build_item_payload
from index.prepare import (
    Prepared,
    Problem,
    ProblemReason,
    WorkItem,
    init_worker,
    prepare_or_problem,
    timed,
)
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
    notes: list[Problem] = field(default_factory=list)  # indexed, but worth knowing
    manifest_errors: list[str] = field(default_factory=list)
    accuracy: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    # Time per stage (index.prepare.STAGES), summed over items and processes: where it goes.
    stage_seconds: dict[str, float] = field(default_factory=dict)

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
            "notes": [asdict(p) for p in self.notes],
            "manifest_errors": self.manifest_errors,
            "accuracy": self.accuracy,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
        }

    def add_stage_seconds(self, seconds: dict[str, float]) -> None:
        for stage, spent in seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + spent


# --- scanning -----------------------------------------------------------------------------------


def scan_files(root: Path, ignore: Iterable[Path] = ()) -> Iterator[Path | Problem]:
    """Every non-hidden file under ``root`` in a stable order, minus ``ignore``; a
    :class:`Problem` for each symlink that cannot be followed safely.

    Never reads outside ``root``: a symlink (to a file or a folder) that resolves outside it is
    reported with where it points and skipped. Symlinks inside it are followed, each folder
    once (a link back to a folder already walked is reported as a loop).
    """
    root = root.resolve()
    ignored = {p.resolve() for p in ignore}
    walked: set[Path] = set()

    def walk(folder: Path, real: Path) -> Iterator[Path | Problem]:
        walked.add(real)
        try:
            entries = sorted(folder.iterdir())
        except OSError as err:
            yield Problem(
                _shown(folder, root),
                f"unreadable folder: {err.strerror or err}",
                ProblemReason.UNREADABLE,
            )
            return
        for path in entries:
            if path.name.startswith("."):
                continue
            target = path
            if path.is_symlink():
                link = _check_link(path, root, walked)
                if isinstance(link, Problem):
                    yield link
                    continue
                target = link
            if target.is_dir():
                yield from walk(path, target.resolve())
            elif target.is_file() and target.resolve() not in ignored:
                yield path

    yield from walk(root, root)


def _check_link(path: Path, root: Path, walked: set[Path]) -> Path | Problem:
    """Where a symlink inside the catalog leads, or the Problem that stops us following it."""
    shown = _shown(path, root)
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 signals a symlink loop this way
        return Problem(shown, "symlink loop", ProblemReason.BROKEN_LINK)
    except OSError as err:
        where = os.readlink(path) if path.is_symlink() else "?"
        reason = "symlink loop" if err.errno == errno.ELOOP else f"broken symlink to {where}"
        return Problem(shown, reason, ProblemReason.BROKEN_LINK)
    if not target.is_relative_to(root):
        return Problem(
            shown,
            f"symlink points outside the catalog folder, to {target}: not read",
            ProblemReason.OUTSIDE_CATALOG,
        )
    if target.is_dir() and path.parent.resolve().is_relative_to(target):
        return Problem(shown, f"symlink loop (back to {target})", ProblemReason.BROKEN_LINK)
    if target.is_dir() and target in walked:
        return Problem(
            shown, f"link to a folder already scanned ({target})", ProblemReason.DUPLICATE
        )
    return target


def _shown(path: Path, root: Path) -> str:
    """A path relative to the catalog folder, printable even when the name is not UTF-8."""
    relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return relative.encode("utf-8", "backslashreplace").decode("utf-8")


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


def entry_fingerprint(entry: Entry, relative: str) -> str:
    """Hash of what the manifest and the file's name (:func:`index.names.name_label`) say
    about a file: a change to either refreshes the payload. A file whose name says nothing
    known hashes as before names counted, so its store is not refreshed for nothing."""
    text = json.dumps(entry.model_dump(mode="json"), sort_keys=True)
    named = name_label(relative)
    if named is not None:
        text += json.dumps(asdict(named), sort_keys=True)
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


# The driver hashes every file it plans (the point id is catalog + content hash): threads read
# and hash in parallel (hashlib and file reads release the GIL), which matters at 10^6 files and
# on network storage, where one file at a time leaves the disks and the network idle.
HASH_THREADS = min(8, os.cpu_count() or 1)


def _hash_licensed(
    scanned: list[Path | Problem], root: Path, manifest: Manifest
) -> dict[Path, str | OSError]:
    """The content hash (or the OSError that stopped it) of every scanned file that planning
    will need: an indexable kind with a licence entry."""
    wanted = [
        p
        for p in scanned
        if isinstance(p, Path) and kind_of(p) and manifest.get(_shown(p, root)) is not None
    ]

    def sha(path: Path) -> str | OSError:
        try:
            return file_sha256(path)
        except OSError as err:
            return err

    with ThreadPoolExecutor(HASH_THREADS) as pool:
        return dict(zip(wanted, pool.map(sha, wanted), strict=True))


# --- payloads -----------------------------------------------------------------------------------


def build_payload(
    item: WorkItem, catalog: str, analysis: dict[str, Any], embedder_id: str
) -> dict[str, Any]:
    """The point payload (:class:`index.payload.ItemPayload`) as the store keeps it."""
    entry_hash = entry_fingerprint(item.entry, item.relative)
    return build_item_payload(item, catalog, analysis, embedder_id, entry_hash).to_store()


def embed_batch(
    embedder: ClapEmbedder, batch: list[Prepared], catalog: str
) -> tuple[list[Point], list[Problem]]:
    """Prepared items → points (payload, CLAP audio and caption vectors, timbre), a Problem for
    each item whose embedding failed. The one embedding step of every indexer (local and Ray).

    One bad clip must not sink its batch: when the batch fails, it is retried item by item.
    """
    payloads = [build_payload(p.item, catalog, p.analysis, embedder.embedder.id) for p in batch]
    try:
        audio = embedder.embed_audio([p.clip for p in batch])
        text = embedder.embed_text([pl["caption"] for pl in payloads])
    except Exception as err:
        if len(batch) == 1:
            problem = Problem(
                batch[0].item.relative, f"embedding error: {err}", ProblemReason.EMBEDDING_ERROR
            )
            return [], [problem]
        points: list[Point] = []
        failed: list[Problem] = []
        for single in batch:
            ok, bad = embed_batch(embedder, [single], catalog)
            points += ok
            failed += bad
        return points, failed
    points = [
        Point(point_id(catalog, p.item.sha256), pl, vectors(a, t, p.timbre))
        for p, pl, a, t in zip(batch, payloads, audio, text, strict=True)
    ]
    return points, []


def vectors(audio: np.ndarray, text: np.ndarray, timbre: np.ndarray | None) -> dict[str, Any]:
    """A point's named vectors; ``timbre`` only where it could be made."""
    named = {"audio": audio, "text": text}
    return named if timbre is None else {**named, "timbre": timbre}


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
        scanned = list(scan_files(root, ignore=ignore))
        hashes = _hash_licensed(scanned, root, manifest)
        for path in scanned:
            if isinstance(path, Problem):  # a symlink out of the folder, a loop, a bad folder
                on_disk.add(path.path)
                bucket = report.failed if path.code is ProblemReason.UNREADABLE else report.skipped
                bucket.append(path)
                continue
            relative = _shown(path, root)
            on_disk.add(relative)
            kind = kind_of(path)
            if kind is None and path.suffix.lower() in SIDECAR_EXTENSIONS:
                continue
            if kind is None:
                report.skipped.append(
                    Problem(
                        relative,
                        f"unsupported file type '{path.suffix}'",
                        ProblemReason.UNSUPPORTED_TYPE,
                    )
                )
                continue
            if relative != path.relative_to(root).as_posix():
                # the store and every reader need a real string; the manifest cannot name it
                report.skipped.append(
                    Problem(
                        relative,
                        "file name is not valid UTF-8: rename the file",
                        ProblemReason.BAD_NAME,
                    )
                )
                continue
            entry = manifest.get(relative)
            if entry is None:
                report.skipped.append(
                    Problem(relative, "no licence entry in the manifest", ProblemReason.NO_LICENCE)
                )
                continue
            sha = hashes[path]
            if isinstance(sha, OSError):
                err = sha
                report.failed.append(
                    Problem(
                        relative, f"unreadable: {err.strerror or err}", ProblemReason.UNREADABLE
                    )
                )
                continue
            pid = point_id(catalog, sha)
            if pid in wanted:
                report.skipped.append(
                    Problem(
                        relative, f"duplicate content of {wanted[pid]}", ProblemReason.DUPLICATE
                    )
                )
                continue
            wanted[pid] = relative
            item = WorkItem(relative, path, kind, sha, entry)
            old = existing.get(pid)
            if old is None or old.get("analysis_version") != ANALYSIS_VERSION:
                todo.append(item)
            elif old.get("path") != relative or old.get("entry_hash") != entry_fingerprint(
                entry, relative
            ):
                refresh.append(item)
            else:
                report.unchanged.append(relative)
        report.manifest_errors += [
            f"{path}: listed in the manifest, but no such file in the catalog folder"
            for path in sorted(set(manifest.entries) - on_disk)
        ]
        return todo, refresh, wanted

    def _refresh_payloads(self, items: list[WorkItem], catalog: str, report: IngestReport) -> None:
        """Licence, path or name changed, content did not: new payload, same audio vector, and
        a new caption vector only where the caption changed."""
        for item in items:
            (old,) = self.store.retrieve([point_id(catalog, item.sha256)], with_vectors=True)
            payload = build_payload(
                item, catalog, old.payload["analysis"], self.embedder.embedder.id
            )
            vectors = dict(old.vectors)
            if payload["caption"] != old.payload.get("caption"):
                vectors["text"] = self.embedder.embed_text([payload["caption"]])[0]
            self.store.upsert([Point(old.id, payload, vectors)])
            report.updated.append(item.relative)
            self.progress.advance(item.relative)

    def _process(self, items: list[WorkItem], catalog: str, report: IngestReport) -> None:
        ready: list[Prepared] = []
        for result in self._prepared(items):
            if isinstance(result, Problem):
                report.failed.append(result)
                self.progress.advance(result.path)
                continue
            report.notes += result.notes
            report.add_stage_seconds(result.seconds)
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
        """Run items through a pool of ``workers`` processes; survive workers that die.

        A worker killed by a native crash (segfault, OOM kill) breaks the whole pool, and every
        item in flight fails with it without telling which one did it. So the pool is rebuilt
        for the items still queued, and the items that were in flight (suspects) are each
        retried once, alone, in a fresh process: an innocent one comes back normally, the
        culprit crashes again and is reported as ``WORKER_CRASHED``.
        """
        queue = deque(items)
        with single_threaded_children():
            while queue:
                suspects: list[WorkItem] = []
                yield from self._run_pool(queue, suspects)
                yield from self._run_isolated(suspects)

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds torch/OpenMP threads that a fork would copy mid-lock.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker)

    def _run_pool(
        self, queue: deque[WorkItem], suspects: list[WorkItem]
    ) -> Iterator[Prepared | Problem]:
        """Drain ``queue`` through one pool until it is empty or the pool breaks; on a break,
        the items that were in flight land in ``suspects``."""
        in_flight_max = self.workers * 2
        pool = self._pool(self.workers)
        running: dict[Future, WorkItem] = {}
        try:
            while queue or running:
                while queue and len(running) < in_flight_max:
                    item = queue.popleft()
                    running[pool.submit(prepare_or_problem, item, self.limits, CLAP_SR)] = item
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    item = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        suspects.append(item)
                        continue
                    yield result
                if suspects:  # the pool is broken: every other future fails the same way
                    suspects += running.values()
                    return
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _run_isolated(self, suspects: list[WorkItem]) -> Iterator[Prepared | Problem]:
        """Retry each suspect once, alone in a fresh worker process."""
        pool: ProcessPoolExecutor | None = None
        try:
            for item in suspects:
                pool = pool or self._pool(1)
                try:
                    yield pool.submit(prepare_or_problem, item, self.limits, CLAP_SR).result()
                except BrokenProcessPool:
                    pool.shutdown(wait=True)
                    pool = None
                    yield Problem(
                        item.relative,
                        "analysis worker crashed (twice: in the pool, then alone)",
                        ProblemReason.WORKER_CRASHED,
                    )
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _embed_and_upsert(self, batch: list[Prepared], catalog: str, report: IngestReport) -> None:
        with timed(report.stage_seconds, "embed"):
            points, failed = embed_batch(self.embedder, batch, catalog)
        self._store_batch(points, failed, report)

    def _store_batch(
        self, points: list[Point], failed: list[Problem], report: IngestReport
    ) -> None:
        """Upsert one embedded batch (one call) and report its items."""
        for problem in failed:
            report.failed.append(problem)
            self.progress.advance(problem.path)
        if points:
            with timed(report.stage_seconds, "upsert"):
                self.store.upsert(points)
        for point in points:
            report.indexed.append(point.payload["path"])
            self.progress.advance(point.payload["path"])

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
        unlicensed = {p.path for p in report.skipped if p.code is ProblemReason.NO_LICENCE}
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
                report.removed.append(
                    Problem(
                        path,
                        "licence entry removed from the manifest",
                        ProblemReason.LICENCE_REMOVED,
                    )
                )
            elif path in replaced:
                stale.append(pid)
                report.removed.append(
                    Problem(path, "replaced by new content", ProblemReason.REPLACED)
                )
            elif prune and path not in seen and not (root / path).exists():
                stale.append(pid)
                report.removed.append(
                    Problem(path, "file no longer in the catalog folder", ProblemReason.FILE_GONE)
                )
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
