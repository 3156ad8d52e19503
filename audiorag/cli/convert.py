"""``audiorag convert``: other projects' checkpoints → model folders audiorag loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from audiorag.cli.common import console

convert_app = typer.Typer(
    no_args_is_help=True, help="Convert checkpoints from other projects into model folders."
)


@convert_app.command("clap")
def convert_clap_command(
    checkpoint: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="LAION-AI/CLAP .pt checkpoint.")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write (new or empty).")],
    base: Annotated[
        str | None,
        typer.Option(
            help="Audio tower the weights must be: htsat-tiny, htsat-base, htsat-large, or "
            "custom (any shape). Default: read from the weights, one of LAION's."
        ),
    ] = None,
    text: Annotated[
        str, typer.Option(help="Text tower the weights must be: roberta (roberta-base) or custom.")
    ] = "roberta",
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="roberta-base tokenizer folder (vocab.json, merges.txt). Default: the local "
            "Hugging Face cache, offline.",
        ),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(help="Read a checkpoint that holds more than tensors (runs its pickles)."),
    ] = False,
) -> None:
    """Convert a LAION CLAP .pt (HTS-AT + RoBERTa, unfused) into a transformers CLAP folder."""
    from audiorag.convert import ConversionError, convert_laion_clap

    try:
        with console.status(f"converting {checkpoint.name}"):
            report = convert_laion_clap(
                checkpoint,
                out,
                base=base,
                text=text,
                tokenizer=tokenizer,
                allow_pickle=allow_pickle,
            )
    except ConversionError as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err
    console.print(f"[green]wrote {report.out}")
    console.print(f"  audio: {report.audio}", markup=False)
    console.print(f"  text:  {report.text}, captions cut at 77 tokens", markup=False)
    console.print(
        f"  {report.tensors} tensors, projection {report.projection_dim}; "
        f"{report.dropped} checkpoint entries left out (loss MLPs, AudioSet classifier, STFT/mel "
        "layers, rebuilt buffers)",
        markup=False,
    )
    console.print(
        f"  use it: AUDIORAG_CLAP_MODEL={report.out.resolve()}", markup=False, soft_wrap=True
    )
    console.print(
        "  (a collection indexed with another CLAP must be re-indexed: its vectors are "
        "not comparable)",
        markup=False,
    )
