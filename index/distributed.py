"""Indexing on a Ray cluster: the same run as :class:`index.ingest.Indexer`, with the per-item
work spread over the cluster.

* On the driver (this process): scanning, licence checks and planning, payload refreshes, the
  store writes (one upsert per embedded batch) and the removal of replaced points — all inherited
  from :class:`~index.ingest.Indexer`, so the run is idempotent and a run killed mid-way resumes
  to the same final state, exactly as the local one.
* Decode + analysis (or MIDI parse + analysis + render): one Ray task per file, 1 CPU each,
  running :func:`index.prepare.prepare_or_problem` (the function the local pool runs). A task
  whose worker dies (a native crash in a decoder, the OOM killer) is retried once in a fresh
  worker; a second death costs that item (``worker_crashed``), never the run.
* CLAP embedding: a pool of actors, each holding the model (on a GPU where the cluster has one),
  running :func:`index.ingest.embed_batch` on batches of prepared items. A batch whose actor dies
  is retried item by item in a restarted actor, so again only the culprit is lost.

The driver never pulls decoded audio: a prepared item goes from its task to an actor through
Ray's object store. Catalog files and the CLAP model folder must be readable at the same paths
on every node (a shared filesystem, or the same image with the catalog mounted alike).
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from ray.exceptions import OutOfMemoryError, RayError, WorkerCrashedError

from audio.decode import Limits
from index import prepare as prepare_module
from index.clap import SAMPLE_RATE as CLAP_SR
from index.clap import ClapEmbedder
from index.ingest import Indexer, IngestReport, embed_batch
from index.prepare import Prepared, Problem, ProblemReason, WorkItem, prepare_or_problem, timed
from index.store import EmbedderMismatch, Point

# Object store for a Ray started here: enough for a few hundred decoded clips (~2 MB each) in
# flight; the default (30 % of RAM) is far more than indexing needs on a shared machine.
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class EmbedderSource:
    """How an embedding actor loads the driver's CLAP model: the same folder or hub id (the
    actor checks that it got the same embedder id, so the same weights)."""

    name_or_path: str
    revision: str | None = None
    batch_size: int = 16

    def load(self, device: str) -> ClapEmbedder:
        return ClapEmbedder.from_pretrained(
            self.name_or_path, revision=self.revision, device=device, batch_size=self.batch_size
        )


@contextmanager
def ray_session(address: str | None, *, num_cpus: int | None = None):
    """Connect to the Ray cluster at ``address`` ("auto", "host:6379", "ray://host:10001"), or
    start one on this machine when ``address`` is None/"local" (``num_cpus`` logical CPUs, no
    dashboard, a small object store). Does nothing when this process is already connected."""
    if ray.is_initialized():
        yield
        return
    if address in (None, "", "local"):
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            log_to_driver=False,
        )
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote(num_cpus=1, max_retries=1)
def prepare_task(item: WorkItem, limits: Limits, clip_sr: int) -> Prepared | Problem:
    """Decode + analyse one file on a worker: :func:`index.prepare.prepare_or_problem`. Ray
    re-runs it once if the worker process dies (``max_retries``); exceptions are never retried
    (they are already a Problem)."""
    if not prepare_module._in_worker:
        prepare_module.init_worker()  # numba warm-up under a lock, once per worker process
    return prepare_or_problem(item, limits, clip_sr)


@dataclass
class EmbedResult:
    """What an embedding actor sends back for one batch: small (vectors and payloads)."""

    points: list[Point]
    failed: list[Problem]
    notes: list[Problem] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def crash_problem(relative: str, err: Exception, what: str) -> Problem:
    """The report line for an item whose worker died (twice) or whose task failed otherwise."""
    if isinstance(err, OutOfMemoryError):
        return Problem(relative, f"{what} worker ran out of memory", ProblemReason.WORKER_CRASHED)
    if isinstance(err, WorkerCrashedError) or "died" in type(err).__name__.lower():
        return Problem(
            relative, f"{what} worker crashed (twice: retried once)", ProblemReason.WORKER_CRASHED
        )
    code = ProblemReason.EMBEDDING_ERROR if what == "embedding" else ProblemReason.ANALYSIS_ERROR
    return Problem(relative, f"{what} error: {type(err).__name__}: {err}", code)


@ray.remote(max_restarts=-1, max_task_retries=0)
class EmbedActor:
    """Holds one CLAP model; embeds batches of prepared items (:func:`embed_batch`)."""

    def __init__(self, source: EmbedderSource, embedder_id: str, threads: int) -> None:
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        torch.set_num_threads(max(1, threads))
        self.embedder = source.load(device)
        if self.embedder.embedder.id != embedder_id:
            raise EmbedderMismatch(
                f"the embedding worker loaded {self.embedder.embedder.id!r} from "
                f"{source.name_or_path}, but the store is filled with {embedder_id!r} vectors"
            )

    def ready(self) -> str:
        return self.embedder.device

    def embed(self, catalog: str, refs: list[tuple[str, ray.ObjectRef]]) -> EmbedResult:
        """Fetch the prepared items (a nested ref is not resolved by Ray: a task that died
        twice is a Problem here, not a failed batch), then embed them."""
        result = EmbedResult([], [])
        prepared: list[Prepared] = []
        for relative, ref in refs:
            try:
                item = ray.get(ref)
            except RayError as err:
                result.failed.append(crash_problem(relative, err, "analysis"))
                continue
            if isinstance(item, Problem):
                result.failed.append(item)
                continue
            result.notes += item.notes
            for stage, spent in item.seconds.items():
                result.seconds[stage] = result.seconds.get(stage, 0.0) + spent
            prepared.append(item)
        with timed(result.seconds, "embed"):
            points, failed = embed_batch(self.embedder, prepared, catalog)
        result.points = points
        result.failed += failed
        return result


@dataclass
class RayIndexer(Indexer):
    """:class:`~index.ingest.Indexer` whose decode/analysis and embedding run on Ray.

    Ray must be initialised (see :func:`ray_session`). ``embedder`` is the driver's copy (its id
    stamps payloads and is checked against the actors'); ``source`` is how actors load it.
    """

    source: EmbedderSource | None = None
    embed_actors: int = 1
    embed_cpus: float = 1.0  # CPUs an embedding actor reserves (on a GPU node: its GPU instead)

    def _process(self, items: list[WorkItem], catalog: str, report: IngestReport) -> None:
        if not items:
            return
        actors = [self._actor() for _ in range(self.embed_actors)]
        ray.get([a.ready.remote() for a in actors])  # a model that does not load fails here
        try:
            self._run(items, catalog, report, actors)
        finally:
            for actor in actors:
                ray.kill(actor)

    def _actor(self) -> Any:
        if self.source is None:
            raise ValueError("RayIndexer needs source= (how the embedding actors load CLAP)")
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        cpus = 0 if gpus else self.embed_cpus
        return EmbedActor.options(num_cpus=cpus, num_gpus=gpus).remote(
            self.source, self.embedder.embedder.id, threads=max(1, round(cpus))
        )

    def _in_flight(self) -> int:
        """Items decoded or decoding at once: the cluster's CPUs twice over (so no CPU waits
        for the driver), plus one batch per actor being embedded and one being filled."""
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return 2 * cpus + self.batch_size * (self.embed_actors + 1)

    def _run(
        self, items: list[WorkItem], catalog: str, report: IngestReport, actors: list[Any]
    ) -> None:
        queue = deque(items)
        preparing: dict[ray.ObjectRef, str] = {}  # prepare task → the item's path
        ready: deque[tuple[str, ray.ObjectRef]] = deque()  # prepared, waiting for an actor
        suspects: deque[tuple[str, ray.ObjectRef]] = deque()  # in a batch whose actor died
        embedding: dict[ray.ObjectRef, tuple[Any, list[tuple[str, ray.ObjectRef]], bool]] = {}
        idle = list(actors)
        limit = self._in_flight()
        while queue or preparing or ready or suspects or embedding:
            while queue and len(preparing) + len(ready) < limit:
                item = queue.popleft()
                preparing[prepare_task.remote(item, self.limits, CLAP_SR)] = item.relative
            while idle and (suspects or self._batch_due(ready, queue, preparing)):
                alone = bool(suspects)
                batch = [suspects.popleft()] if alone else _take(ready, self.batch_size)
                actor = idle.pop()
                embedding[actor.embed.remote(catalog, batch)] = (actor, batch, alone)
            waiting = list(preparing) + list(embedding)
            done, _ = ray.wait(waiting, num_returns=1, fetch_local=False)
            for ref in done:
                if ref in preparing:
                    ready.append((preparing.pop(ref), ref))
                    continue
                actor, batch, alone = embedding.pop(ref)
                idle.append(actor)
                try:
                    result: EmbedResult = ray.get(ref)
                except RayError as err:  # the actor died (restarted by Ray for the next call)
                    if alone:
                        problem = crash_problem(batch[0][0], err, "embedding")
                        self._store_batch([], [problem], report)
                    else:
                        suspects.extend(batch)  # each retried alone: only the culprit is lost
                    continue
                report.notes += result.notes
                report.add_stage_seconds(result.seconds)
                self._store_batch(result.points, result.failed, report)

    def _batch_due(self, ready: deque, queue: deque, preparing: dict) -> bool:
        """A full batch is ready, or the last items are (nothing more is coming)."""
        return len(ready) >= self.batch_size or bool(ready and not queue and not preparing)


def _take(ready: deque, n: int) -> list:
    return [ready.popleft() for _ in range(min(n, len(ready)))]
