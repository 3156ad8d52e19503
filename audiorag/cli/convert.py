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


@convert_app.command("stable-audio-3")
def convert_stable_audio_3_command(
    source: Annotated[
        Path,
        typer.Argument(
            exists=True,
            help="Stable Audio 3 release: a folder with model.safetensors and model_config.json "
            "(stabilityai/stable-audio-3-medium as downloaded), or the .safetensors with its "
            "model_config.json beside it.",
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write (new or empty).")],
    text_encoder: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="google/t5gemma-b-b-ul2 folder (config, weights, tokenizer). Default: the "
            "local Hugging Face cache, offline.",
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="Weights dtype to write: float32, bfloat16 or float16.")
    ] = "float32",
) -> None:
    """Convert a Stable Audio 3 release (stable-audio-tools layout) into a diffusers folder."""
    from audiorag.convert import ConversionError
    from audiorag.convert.stable_audio_3 import convert_stable_audio_3

    try:
        with console.status(f"converting {source.name}") as status:
            report = convert_stable_audio_3(
                source,
                out,
                text_encoder=text_encoder,
                dtype=dtype,
                progress=lambda message: status.update(message),
            )
    except ConversionError as err:
        console.print(str(err), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err
    console.print(f"[green]wrote {report.out}")
    millions = ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in report.params.items())
    console.print(f"  parameters: {millions}", markup=False)
    console.print(
        f"  sampler: {report.sampler}; durations up to {report.max_duration_s:g} s", markup=False
    )
    source_of_text = "the release" if report.text_weights_from_release else report.text_encoder
    console.print(f"  text encoder weights from {source_of_text}", markup=False, soft_wrap=True)
    if report.dropped:
        console.print(f"  {report.dropped} entries left out (noise_scaling_factor)", markup=False)
    console.print(
        f"  use it: AUDIORAG_GENERATOR_MODEL={report.out.resolve()}", markup=False, soft_wrap=True
    )
