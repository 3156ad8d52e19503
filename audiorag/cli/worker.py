"""``audiorag worker``: render generation jobs from the shared jobs table, without HTTP.

Run beside API replicas that render nothing themselves (``AUDIORAG_API_GENERATION_WORKERS=0``):
any replica accepts, polls and cancels a job; any worker renders it. All of them need the same
``AUDIORAG_DATABASE_URL`` (PostgreSQL), the same data dir (a shared volume: takes, the watermark
key, catalog roots) and, for retrieval, a Qdrant server (``AUDIORAG_QDRANT_URL``).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from audiorag.settings import Settings, get_settings

console = Console(stderr=True)


class Signals:
    """SIGTERM/SIGINT: the first asks for a drain, a second for an immediate stop."""

    def __init__(self) -> None:
        self.drain = threading.Event()
        self.stop_now = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.drain.is_set():
            self.stop_now.set()
        self.drain.set()


def worker_command(
    threads: Annotated[
        int, typer.Option(min=1, help="Render threads in this process (one per device).")
    ] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Render in a Ray actor pool instead: alone → Ray started on this machine; or a "
            "cluster address (auto, host:6379, ray://host:10001). One actor per GPU when the "
            "cluster has GPUs, else --actors. Default: AUDIORAG_RENDER_RAY_ADDRESS, else threads "
            "in this process.",
        ),
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(min=1, help="CPU render actors on Ray (AUDIORAG_RENDER_RAY_ACTORS)."),
    ] = None,
    drain_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="On SIGTERM/SIGINT, claim no new job and let running ones finish for up to this "
            "long; a job cut off then is queued again (not counted as a try). A second signal "
            "stops now.",
        ),
    ] = 120.0,
) -> None:
    """Render generation jobs from the shared queue (no HTTP)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    signals = Signals()
    address = ray or settings.render_ray_address
    if address:
        _run_pool(
            settings, address, actors or settings.render_ray_actors, threads, drain_seconds, signals
        )
    else:
        _run_threads(settings, threads, drain_seconds, signals)


def _run_threads(settings: Settings, threads: int, drain_s: float, signals: Signals) -> None:
    from audiorag.api.db import CorruptDatabase
    from audiorag.render_worker import load_worker
    from index.store import StoreUnavailable
    from index.store.edge import StoreInUse

    signals.install()  # a signal while the models load: drained as soon as they are
    try:
        loaded = load_worker(settings, threads)
    except StoreInUse as err:
        console.print(
            f"[red]{err}\nThe embedded store belongs to one process: run workers beside the API "
            "with a Qdrant server (AUDIORAG_QDRANT_URL) or their own AUDIORAG_COLLECTION."
        )
        raise typer.Exit(2) from err
    except (CorruptDatabase, StoreUnavailable) as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from err
    loaded.start()
    console.print(f"worker {loaded.worker.worker_id}: {threads} render thread(s)", soft_wrap=True)
    signals.drain.wait()
    console.print(f"draining: running jobs may finish for up to {drain_s:g} s")
    loaded.shutdown(drain_s, signals.stop_now)


def _run_pool(
    settings: Settings, address: str, actors: int, threads: int, drain_s: float, signals: Signals
) -> None:
    try:
        from audiorag.render_pool import RenderPool, ray_session
    except ImportError as err:
        console.print("[red]rendering on Ray needs ray: pip install 'audiorag[scale]'")
        raise typer.Exit(1) from err
    with ray_session(address, num_cpus=actors):
        signals.install()  # after ray.init, whose own SIGTERM handler aborts the process
        pool = RenderPool(settings, cpu_actors=actors, threads=threads)
        try:
            reports = pool.start()
        except Exception as err:
            console.print(f"[red]a render actor failed to start: {err}")
            raise typer.Exit(2) from err
        for report in reports:
            console.print(f"render actor {report['worker']} on {report['device']}")
        pool.watch(signals.drain)
        console.print(f"draining: running jobs may finish for up to {drain_s:g} s")
        pool.shutdown(drain_s)
