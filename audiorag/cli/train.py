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
        list[Path],
        typer.Option(
            exists=True,
            file_okay=False,
            help="Demo catalog to train on; repeat to pool several (e.g. other SoundFonts).",
        ),
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
    timbre_augment: Annotated[
        bool, typer.Option(help="Also a random EQ curve and a short reverb per example.")
    ] = False,
    record_augment: Annotated[
        bool,
        typer.Option(
            help="Pass cached views through a random recording chain (room, EQ, compressor, "
            "noise, MP3/OGG, speed)."
        ),
    ] = False,
    init_from: Annotated[
        Path | None,
        typer.Option(
            exists=True, file_okay=False, help="Fine-tune this CLAP folder instead of a new one."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="torch intra-op threads (default: one per core). On a CPU shared with other "
            "jobs 1 is often 2-5x faster per step.",
        ),
    ] = None,
    share: Annotated[
        list[float] | None,
        typer.Option(
            min=0.0,
            help="Share of every epoch per --catalog, in their order (e.g. --share 0.4 "
            "--share 0.4 --share 0.2); default: pooled by size.",
        ),
    ] = None,
) -> None:
    """Contrastive audio–caption training of a small CLAP; saves a from_pretrained folder.
    Catalogs may be demo loops or one-shots (audiorag.democatalog.oneshots)."""
    from audiorag.training.train_clap import train_clap

    summary = train_clap(
        catalog,
        out,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        resume=resume,
        timbre_augment=timbre_augment,
        record_augment=record_augment,
        init_from=init_from,
        threads=threads,
        shares=share or None,
    )
    console.print(
        f"[green]trained on {summary.items} stems for {summary.epochs} epochs "
        f"({summary.steps} steps) in {summary.seconds / 60:.1f} min; final loss "
        f"{summary.epoch_losses[-1]:.4f}; {summary.size_bytes / 2**20:.1f} MiB in {out}"
    )
    console.print(f"use it: AUDIORAG_CLAP_MODEL={out}")


@train_app.command("timbre-net")
def train_timbre_net_command(
    catalog: Annotated[
        list[Path],
        typer.Option(exists=True, file_okay=False, help="Training catalog; repeat for several."),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the net to.")] = Path(
        "index/models/timbre-net"
    ),
    epochs: Annotated[int, typer.Option(min=1)] = 16,
    seed: int = 0,
) -> None:
    """Train the timbre net — the small CNN whose embedding is every item's timbre vector — on
    training catalogs (never a held-out set). Refit the prototypes after it (`train timbre`)."""
    import time

    from rich.progress import Progress

    from audiorag.training.fit_timbre import audio_files
    from audiorag.training.train_timbre_net import train_timbre_net
    from index.timbre_net import NET_FOLDER

    started = time.perf_counter()
    with Progress(console=console) as bar:
        hearing = bar.add_task("hearing audio", total=len(audio_files(catalog)))
        training = bar.add_task("training", total=epochs)

        def on_file(path: Path, error: str | None) -> None:
            if error:
                console.print(f"[yellow]skipped {path}: {error}")
            bar.advance(hearing)

        def on_epoch(epoch: int, loss: float) -> None:
            bar.update(training, advance=1, description=f"training (loss {loss:.3f})")

        net = train_timbre_net(catalog, out, epochs=epochs, seed=seed, on_file=on_file,
                               on_epoch=on_epoch)  # fmt: skip
    console.print(
        f"[green]timbre net trained in {(time.perf_counter() - started) / 60:.1f} min: "
        f"{len(net.config.families)} families, {len(net.config.sounds)} sounds, in {out}"
    )
    if out.resolve() == NET_FOLDER:
        console.print("now refit the prototypes on it: audiorag train timbre --catalog …")
    else:
        console.print(
            f"now fit prototypes on it: audiorag train timbre --net {out} --catalog … --out "
            f"MODEL.json; then index and search with AUDIORAG_TIMBRE_NET={out} "
            "AUDIORAG_TIMBRE_MODEL=MODEL.json (into a new store)"
        )


@train_app.command("timbre")
def train_timbre_command(
    catalog: Annotated[
        list[Path],
        typer.Option(exists=True, file_okay=False, help="Training catalog; repeat for several."),
    ],
    out: Annotated[Path, typer.Option(help="Timbre model file to write.")] = Path(
        "index/models/timbre.json"
    ),
    scale_from: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Keep this timbre model's scale and fit only the prototypes: vectors already "
            "stored stay valid.",
        ),
    ] = None,
    net: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Fit on this timbre net (a `train timbre-net --out` folder) instead of the one "
            "in use (AUDIORAG_TIMBRE_NET, else the bundled net).",
        ),
    ] = None,
) -> None:
    """Fit the timbre model — the net embedding's per-dimension scale and each family's and
    named sound's prototype — on training catalogs (never a held-out set)."""
    import os

    from rich.progress import Progress

    from index.timbre_net import NET_ENV

    if net is not None:  # before any net is loaded; describing workers inherit it
        os.environ[NET_ENV] = str(net.resolve())

    from audiorag.training.fit_timbre import audio_files, fit_timbre_model
    from index.timbre import TimbreModel

    with Progress(console=console) as bar:
        task = bar.add_task("describing audio", total=len(audio_files(catalog)))

        def on_file(path: Path, error: str | None) -> None:
            if error:
                console.print(f"[yellow]skipped {path}: {error}")
            bar.advance(task)

        scale = TimbreModel.load(scale_from).scale if scale_from else None
        model, count = fit_timbre_model(catalog, out, scale=scale, on_file=on_file)
    console.print(
        f"[green]timbre model fitted on {count} files: {len(model.prototypes.families)} "
        f"family and {len(model.prototypes.sounds)} sound prototypes in {out}"
    )


@eval_app.command("retrieval")
def eval_retrieval_command(
    catalog: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="Held-out catalog (with manifest)."),
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Folder of labelled real recordings (labels.csv + licences.jsonl, as "
            "bench/real_audio/build.py writes): text → instrument, one-shot type, by example.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="JSON results file.")] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Scratch folder for the evaluation store.")
    ] = None,
    hide_names: Annotated[
        bool,
        typer.Option(
            help="With --real: rename the files to numbers first, so fused search cannot read "
            "what their names say."
        ),
    ] = False,
) -> None:
    """Index a held-out catalog (or a real set) with the configured CLAP and print its
    retrieval measures."""
    from audiorag.cli.common import RichProgress, progress_bar
    from audiorag.components import load_embedder
    from audiorag.evaluation.eval_retrieval import (
        evaluate_real,
        evaluate_retrieval,
        markdown_table,
        real_markdown_table,
    )
    from audiorag.settings import get_settings

    if (catalog is None) == (real is None):
        raise typer.BadParameter("give either --catalog or --real")
    settings = get_settings()
    embedder = load_embedder(settings)
    scratch = workdir or settings.data_dir / "eval" / ("real" if real else "retrieval")
    with progress_bar() as progress:
        if real is not None:
            result = evaluate_real(
                real, embedder, workdir=scratch, progress=RichProgress(progress),
                hide_names=hide_names,
            )  # fmt: skip
        else:
            result = evaluate_retrieval(
                catalog, embedder, workdir=scratch, progress=RichProgress(progress)
            )
    typer.echo(real_markdown_table(result) if real is not None else markdown_table(result))
    name = "eval-retrieval-real.json" if real is not None else "eval-retrieval.json"
    target = out or settings.data_dir / "reports" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"results written to {target}")


@train_app.command("generator")
def train_generator_command(
    catalog: Annotated[
        list[Path],
        typer.Option(
            exists=True,
            file_okay=False,
            help="Catalog to train on (demo loops or one-shots); repeat to pool several.",
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Pipeline folder to write (checkpoints in out/checkpoint).")
    ],
    stage: Annotated[
        str, typer.Option(help="vae, dit (needs a finished vae stage) or all.")
    ] = "all",
    vae_steps: Annotated[int, typer.Option(min=1, help="Autoencoder steps (LR schedule).")] = 4000,
    dit_steps: Annotated[int, typer.Option(min=1, help="DiT steps (LR schedule).")] = 6000,
    minutes: Annotated[
        float | None, typer.Option(min=0.0, help="Wall-time cap per stage; ends it early.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, data and steps → same weights.")] = 0,
    device: Annotated[str, typer.Option(help="torch device: cpu, cuda, …")] = "cpu",
    resume: Annotated[
        bool, typer.Option(help="Continue from out/checkpoint when it holds this run's state.")
    ] = True,
    share: Annotated[
        list[float] | None,
        typer.Option(
            min=0.0,
            help="Share of the steps per --catalog, in their order; default: pooled by size.",
        ),
    ] = None,
    vae_from: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="A finished autoencoder folder (e.g. the bundled generator's vae/): train "
            "only the DiT on its latents.",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch intra-op threads (default: one per core).")
    ] = None,
) -> None:
    """Train a small Stable Audio Open–style generator; saves a StableAudioPipeline folder."""
    from audiorag.training.train_generator import train_generator

    summary = train_generator(
        catalog, out, stage=stage, vae_steps=vae_steps, dit_steps=dit_steps, minutes=minutes,
        seed=seed, device=device, resume=resume, shares=share or None, vae_from=vae_from,
        threads=threads,
    )  # fmt: skip
    console.print(
        f"[green]{summary.items} stems; autoencoder {summary.vae_steps} steps, DiT "
        f"{summary.dit_steps} steps; latent scale {summary.latent_scale:.3f}"
    )
    if summary.size_bytes:
        console.print(f"[green]{summary.size_bytes / 2**20:.1f} MiB pipeline in {out}")
        console.print(f"use it: AUDIORAG_GENERATOR_MODEL={out}")


@eval_app.command("generator")
def eval_generator_command(
    catalog: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Held-out demo catalog.")
    ],
    model: Annotated[
        Path | None, typer.Option(help="Pipeline folder (default: the bundled generator).")
    ] = None,
    clap: Annotated[
        Path | None, typer.Option(help="CLAP folder (default: the bundled CLAP).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="JSON results file.")] = None,
    requests: Annotated[int, typer.Option(min=1, help="Text-to-audio and seeded renders.")] = 18,
    sweep_requests: Annotated[int, typer.Option(min=1, help="Requests in the sweep.")] = 9,
    autoencoder_stems: Annotated[int, typer.Option(min=1, help="Round-trip stems.")] = 45,
    duration: Annotated[
        float, typer.Option(min=0.5, help="Seconds per render (one-shots: ≤ 3).")
    ] = 8.0,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Measure the generator: autoencoder round trip, text-to-audio, retrieval-seeded renders."""
    from audiorag.evaluation.eval_generator import (
        BUNDLED_CLAP,
        BUNDLED_GENERATOR,
        evaluate_generator,
        markdown_table,
    )

    result = evaluate_generator(
        catalog, model or BUNDLED_GENERATOR, clap or BUNDLED_CLAP, requests=requests,
        sweep_requests=sweep_requests, autoencoder_stems=autoencoder_stems, duration_s=duration,
        seed=seed,
    )  # fmt: skip
    typer.echo(markdown_table(result))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        console.print(f"results written to {out}")
