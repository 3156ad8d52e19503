"""Render workers as a Ray actor pool: ``audiorag worker --ray [ADDRESS]``.

Each :class:`RenderActor` loads the orchestrator once (its generator stays in memory, on its GPU
where the cluster has GPUs) and runs :class:`audiorag.render_worker.LoadedWorker` — the same
claim / heartbeat / render loop as ``audiorag worker`` and the API's own render threads, against
the shared jobs table. Ray does the placement: one actor per GPU (``num_gpus=1``) when the cluster
has GPUs, else ``actors`` CPU actors.

Failure: an actor whose process dies (OOM, a native crash, a lost node) is restarted by Ray
(``max_restarts=-1``: its constructor loads the model again and claims again); the job it was
rendering loses its heartbeat and is queued again by any live worker's reaper — once; a second
death fails it with the reason. Takes are written to ``data_dir/takes`` on the actor's node:
the data dir must be one shared mount on every node (and the catalog stems, for retrieval, a
path all nodes see alike), or takes published to ``AUDIORAG_STORAGE_URL``.

The driver (this process) only places the actors, checks on them, and on SIGTERM asks each to
drain (claim nothing new, let running jobs finish, cut off → re-queued).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError

from audiorag.render_worker import LoadedWorker, load_worker
from audiorag.settings import Settings
from index.distributed import ray_session

log = logging.getLogger(__name__)

__all__ = ["RenderActor", "RenderPool", "ray_session"]


@ray.remote(max_restarts=-1, max_task_retries=0)
class RenderActor:
    """One loaded orchestrator and its render threads, in a Ray worker process."""

    def __init__(self, settings: Settings, threads: int, cpus: int) -> None:
        import torch

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        if ray.get_gpu_ids():  # Ray set CUDA_VISIBLE_DEVICES to this actor's GPU
            settings = settings.model_copy(update={"device": "cuda"})
        else:
            torch.set_num_threads(max(1, cpus))
        self.loaded: LoadedWorker = load_worker(settings, threads)
        self.loaded.start()
        self.device = settings.device

    def info(self) -> dict[str, Any]:
        """Which worker this is (its id is on the jobs it runs), where, and how busy."""
        worker = self.loaded.worker
        return {"worker": worker.worker_id, "device": self.device, "busy": worker.busy}

    def shutdown(self, drain_s: float) -> None:
        self.loaded.shutdown(drain_s)


@dataclass(frozen=True)
class Placement:
    """How many actors, and what each reserves."""

    actors: int
    gpus: int  # per actor: 1 on a cluster with GPUs, else 0
    cpus: int  # per actor (0 for a GPU actor)


def placement(cluster: dict[str, float], cpu_actors: int) -> Placement:
    """One actor per GPU when the cluster has any (reserving no CPU, as the embedding actors do:
    a Ray started here with ``--actors`` CPUs still places every GPU's actor), else
    ``cpu_actors`` actors of one CPU each.

    >>> placement({"CPU": 16.0, "GPU": 4.0}, 2)
    Placement(actors=4, gpus=1, cpus=0)
    >>> placement({"CPU": 2.0}, 2)
    Placement(actors=2, gpus=0, cpus=1)
    """
    gpus = int(cluster.get("GPU", 0))
    if gpus:
        return Placement(actors=gpus, gpus=1, cpus=0)
    return Placement(actors=cpu_actors, gpus=0, cpus=1)


class RenderPool:
    """The actors on the connected Ray cluster (see :func:`ray_session`)."""

    def __init__(self, settings: Settings, *, cpu_actors: int, threads: int = 1) -> None:
        self.settings = settings
        self.placement = placement(ray.cluster_resources(), cpu_actors)
        self.threads = threads
        self.actors: list[Any] = []

    def start(self) -> list[dict[str, Any]]:
        """Place the actors and wait until each has loaded its model (a model that does not
        load fails here); what each reports."""
        p = self.placement
        self.actors = [
            RenderActor.options(num_cpus=p.cpus, num_gpus=p.gpus).remote(
                self.settings, self.threads, p.cpus
            )
            for _ in range(p.actors)
        ]
        return ray.get([a.info.remote() for a in self.actors])

    def check(self) -> list[dict[str, Any] | None]:
        """Each actor's report, or None for one that is dead or restarting (Ray restarts it;
        its job, if any, is queued again by the heartbeat reaper)."""
        reports: list[dict[str, Any] | None] = []
        for actor in self.actors:
            try:
                reports.append(ray.get(actor.info.remote(), timeout=30))
            except (RayError, TimeoutError) as err:
                log.warning("a render actor is down (Ray restarts it): %s", type(err).__name__)
                reports.append(None)
        return reports

    def watch(self, stop: threading.Event, every_s: float = 10.0) -> None:
        """Check on the actors every ``every_s`` seconds until ``stop`` is set."""
        while not stop.wait(every_s):
            self.check()

    def shutdown(self, drain_s: float) -> None:
        """Drain every actor (running jobs finish for up to ``drain_s``; cut off → re-queued),
        then end them."""
        calls = [a.shutdown.remote(drain_s) for a in self.actors]
        try:
            ray.get(calls, timeout=drain_s + 60)
        except (RayError, TimeoutError) as err:
            log.warning("a render actor did not stop cleanly: %s", err)
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
