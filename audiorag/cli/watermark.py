"""``audiorag watermark``: read a file's watermark and trace it to the take that made it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from audiorag.settings import get_settings
from generation.watermark import Detection
from rag.provenance import take_summary

watermark_app = typer.Typer(no_args_is_help=True, help=__doc__)
console = Console()
errors = Console(stderr=True)


@watermark_app.callback()
def watermark() -> None:
    """Watermark tools (a callback keeps ``detect`` a subcommand even while it is the only one)."""


@watermark_app.command("detect")
def detect(
    file: Annotated[Path, typer.Argument(help="Audio file (WAV, FLAC, OGG, MP3).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a summary.")
    ] = False,
) -> None:
    """Report whether FILE carries this deployment's watermark, and the take it came from.

    Exit status: 0 when the file was read (marked or not), 2 when it could not be decoded.
    """
    from audio.decode import UnusableFile, decode_audio
    from audiorag.components import load_watermarker, provenance_log

    settings = get_settings()
    try:
        audio = decode_audio(file)
    except (UnusableFile, FileNotFoundError) as err:
        errors.print(f"[red]cannot read {file}: {err}")
        raise typer.Exit(2) from err
    marker = load_watermarker(settings)
    found = marker.detect(audio.samples, audio.sr)
    manifest = None
    if found.present and found.payload is not None:
        manifest = provenance_log(settings).find(found.payload)
    report = detection_report(file, marker.id, found, manifest)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        print_report(report)


def detection_report(
    file: Path, scheme: str, found: Detection, manifest: dict[str, Any] | None
) -> dict[str, Any]:
    """The JSON-able result: detection, plus the take's summary and manifest when known."""
    return {
        "file": str(file),
        "scheme": scheme,
        "present": found.present,
        "confidence": round(found.confidence, 4),
        "payload": f"{found.payload:08x}" if found.payload is not None else None,
        "details": found.details,
        "known_take": manifest is not None,
        "take": take_summary(manifest) if manifest is not None else None,
        "manifest": manifest,
    }


def print_report(report: dict[str, Any]) -> None:
    """Human summary with rich."""
    if report["present"]:
        console.print(
            f"[green]watermark present[/] ({report['scheme']}), confidence "
            f"{report['confidence']:.3f}, payload [bold]{report['payload']}[/]"
        )
    else:
        console.print(
            f"[yellow]no watermark found[/] ({report['scheme']}), confidence "
            f"{report['confidence']:.3f}"
        )
        return
    take = report["take"]
    if take is None:
        console.print("payload not in this deployment's provenance log (another deployment?)")
        return
    console.print(f"take [bold]{take['take_id']}[/]  created {take['created_at'] or '?'}")
    console.print(f"prompt: {take['prompt'] or '?'}")
    if take["model"]:
        console.print(f"model: {take['model']}")
    if not take["seeds"]:
        console.print("no seeding items")
        return
    table = Table("seed", "path", "licence holder", "allowed uses", title="seeding items")
    for seed in take["seeds"]:
        table.add_row(
            str(seed.get("id") or ""),
            str(seed.get("path") or ""),
            str(seed.get("holder") or ""),
            ", ".join(map(str, seed.get("allowed_uses") or [])),
        )
    console.print(table)
