"""Helpers every sub-command shares: the console, progress bars, opening the components."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from audiorag.settings import Settings

console = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[status]}", justify="left"),
        console=console,
        transient=False,
    )


class RichProgress:
    """Adapts a rich Progress to the indexer's Progress protocol."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None

    def start(self, total: int, description: str) -> None:
        self.task = self.progress.add_task(description, total=total, status="")

    def advance(self, status: str = "") -> None:
        self.progress.update(self.task, advance=1, status=status[-60:])


def components(settings: Settings):
    from audiorag.components import load_embedder

    embedder = load_embedder(settings)
    return embedder, open_store_or_exit(settings, embedder)


def open_store_or_exit(settings: Settings, embedder):
    """The configured store, or a clear message and exit code 2 when it cannot be opened."""
    from audiorag.components import load_store
    from index.store import EmbedderMismatch, StaleSchema
    from index.store.edge import StoreInUse

    try:
        return load_store(settings, embedder)
    except EmbedderMismatch as err:
        why = (
            "This store was built by another version of audiorag"
            if isinstance(err, StaleSchema)
            else "The configured CLAP model changed since this store was built"
        )
        console.print(
            f"[red]{err}.[/] {why}: delete {settings.store_path} (or set AUDIORAG_COLLECTION) "
            "and index again."
        )
    except StoreInUse as err:
        console.print(f"[red]{err}")
    raise typer.Exit(2)
