"""``audiorag train …`` and ``audiorag eval …``: train the bundled CLAP, measure any CLAP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

train_app = typer.Typer(no_args_is_help=True, help="Train models on a catalog.")
eval_app = typer.Typer(no_args_is_help=True, help="Measure the configured models.")
console = Console(stderr=True)


@train_app.command("clap")
def train_clap_command(
    catalog: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Demo catalog to train on.")
    ],
    out: Annotated[
        Path, typer.Option(help="Model folder to write (checkpoints in out/checkpoint).")
    ],
    epochs: Annotated[int, typer.Option(min=1)] = 120,
    batch_size: Annotated[int, typer.Option(min=2)] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Same seed and data → same weights.")] = 0,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, …")] = "cpu",
    resume: Annotated[
        bool, typer.Option(help="Continue from out/checkpoint when it holds this run's state.")
    ] = True,
) -> None:
    """Contrastive audio–caption training of a small CLAP; saves a from_pretrained folder."""
    from index.train_clap import train_clap

    summary = train_clap(
        catalog,
        out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        resume=resume,
    )
    console.print(
        f"[green]trained on {summary.items} stems for {summary.epochs} epochs "
        f"({summary.steps} steps) in {summary.seconds / 60:.1f} min; final loss "
        f"{summary.epoch_losses[-1]:.4f}; {summary.size_bytes / 2**20:.1f} MiB in {out}"
    )
    console.print(f"use it: AUDIORAG_CLAP_MODEL={out}")


@eval_app.command("retrieval")
def eval_retrieval_command(
    catalog: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Held-out catalog (with manifest).")
    ],
    out: Annotated[Path | None, typer.Option(help="JSON results file.")] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Scratch folder for the evaluation store.")
    ] = None,
) -> None:
    """Index a held-out catalog with the configured CLAP and print its retrieval measures."""
    from rag.cli import RichProgress, _progress
    from rag.components import load_embedder
    from rag.eval_retrieval import evaluate_retrieval, markdown_table
    from rag.settings import get_settings

    settings = get_settings()
    embedder, notice = load_embedder(settings)
    if notice:
        console.print(f"[yellow]{notice}")
    scratch = workdir or settings.data_dir / "eval" / "retrieval"
    with _progress() as progress:
        result = evaluate_retrieval(
            catalog, embedder, workdir=scratch, progress=RichProgress(progress)
        )
    typer.echo(markdown_table(result))
    target = out or settings.data_dir / "reports" / "eval-retrieval.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"results written to {target}")
