"""``audiorag generate``: a catalog-seeded take from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audiorag.settings import get_settings

console = Console(stderr=True)


def generate_command(
    prompt: Annotated[str, typer.Argument(help="What to make, in words.")],
    negative: Annotated[str | None, typer.Option(help="What to avoid.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds of audio.")] = 10.0,
    bpm: Annotated[float | None, typer.Option(help="Target tempo (default: the seeds').")] = None,
    key: Annotated[str | None, typer.Option(help='Target key, e.g. "A minor".')] = None,
    like: Annotated[Path | None, typer.Option(help="Reference clip to retrieve by.")] = None,
    top_k: Annotated[int, typer.Option(help="Catalog items to seed from.")] = 4,
    strength: Annotated[
        float | None,
        typer.Option(help="0 keeps the seeds' audio, 1 ignores it (default 0.6; 1 in-painting)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps (model default).")] = None,
    cfg: Annotated[float | None, typer.Option(help="Guidance scale (model default).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed + request → same audio.")] = 0,
    catalog: Annotated[
        list[str] | None, typer.Option(help="Seed only from this catalog (repeatable).")
    ] = None,
    instrument: Annotated[str | None, typer.Option(help="Seed only this family.")] = None,
    genre: Annotated[str | None, typer.Option(help="Seed only this style.")] = None,
    roles: Annotated[
        str | None,
        typer.Option(
            help="Parts to seed, one catalog item each, e.g. drums,bass,pad (synonyms such as "
            "beat, 808, chords work). Default: the parts the prompt names, else drums, bass and "
            "a harmonic part."
        ),
    ] = None,
    retrieval: Annotated[
        bool, typer.Option("--retrieval/--no-retrieval", help="Seed from the catalog.")
    ] = True,
    inpaint: Annotated[Path | None, typer.Option(help="Clip to regenerate a range of.")] = None,
    from_s: Annotated[float | None, typer.Option("--from", help="In-paint start (s).")] = None,
    to_s: Annotated[float | None, typer.Option("--to", help="In-paint end (s).")] = None,
    fmt: Annotated[
        list[str] | None, typer.Option("--format", help="wav and/or flac (default both).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Parent folder (default data/takes).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    window: Annotated[
        str | None,
        typer.Option(
            help="Stable Audio Open window: full (render the model's whole window, trim), fit "
            "(only the request's length) or auto (default: AUDIORAG_SAO_WINDOW)."
        ),
    ] = None,
) -> None:
    """Render a take seeded by licensed catalog items; writes audio, manifest and spectrogram."""
    from audiorag.cli.common import components
    from audiorag.components import load_orchestrator
    from rag.orchestrate import GenerateRequest, GenerationError

    settings = get_settings()
    if window is not None:
        if window not in ("auto", "full", "fit"):
            raise typer.BadParameter("must be auto, full or fit", param_hint="--window")
        settings = settings.model_copy(update={"sao_window": window})
    embedder, store = components(settings)
    request = GenerateRequest(
        prompt=prompt,
        negative_prompt=negative,
        duration_s=duration,
        bpm=bpm,
        key=key,
        like=like,
        top_k=top_k,
        strength=strength,
        steps=steps,
        cfg=cfg,
        seed=seed,
        catalogs=tuple(catalog) if catalog else None,
        retrieval=retrieval,
        instrument=instrument,
        genre=genre,
        roles=tuple(r.strip() for r in roles.split(",") if r.strip()) if roles else (),
        inpaint=inpaint,
        inpaint_from_s=from_s,
        inpaint_to_s=to_s,
        formats=tuple(fmt) if fmt else ("wav", "flac"),
    )
    orchestrator = load_orchestrator(settings, store=store, embedder=embedder)
    try:
        with Progress(
            TextColumn("rendering"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("render", total=None)
            take = orchestrator.generate(
                request,
                out or settings.outputs_dir,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except GenerationError as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from err
    finally:
        orchestrator.store.close()
    if as_json:
        typer.echo(json.dumps(take.manifest, indent=2, default=str))
        return
    print_take(take)


def alignment_done(align: dict) -> str:
    """What aligning a seed did, from its manifest record: the tempo change and transposition
    actually applied (the record's ``method`` names the tool, which runs even when it changes
    nothing), or why it was skipped.

    >>> alignment_done({"tempo_ratio": 1.0745, "source_bpm": 161.0, "target_bpm": 173.0,
    ...                 "semitones": -2})
    'tempo ×1.07 (161 → 173 BPM), -2 st'
    >>> alignment_done({"tempo_ratio": 1.0, "semitones": 0})
    'as is'
    >>> alignment_done({"skipped": "one-shot"})
    'skipped: one-shot'
    """
    if align.get("skipped"):
        return f"skipped: {align['skipped']}"
    done = []
    ratio = align.get("tempo_ratio")
    if ratio is not None and abs(ratio - 1.0) > 1e-3:
        bpm = ""
        if align.get("source_bpm") and align.get("target_bpm"):
            bpm = f" ({align['source_bpm']:g} → {align['target_bpm']:g} BPM)"
        done.append(f"tempo ×{ratio:.2f}{bpm}")
    if align.get("semitones"):
        done.append(f"{align['semitones']:+g} st")
    return ", ".join(done) or "as is"


def print_take(take) -> None:
    manifest = take.manifest
    console.print(f"[green]take {take.id}[/] ({manifest['mode']}) → {take.folder}")
    for fmt, path in take.audio.items():
        console.print(f"  {fmt}: {path}")
    console.print(f"  manifest: {take.folder / 'manifest.json'}")
    console.print(f"  spectrogram: {take.folder / 'spectrogram.png'}")
    console.print(f"  prompt: {manifest['prompt']['enriched']}")
    stack = manifest.get("stack")
    if stack:
        target = stack["target"]
        console.print(
            f"  stack ({stack.get('roles_from')}): "
            f"{target['bpm'] or '—'} BPM, {target['key'] or 'no key'}"
        )
        for role in stack["roles"]:
            chosen = role["chosen"]
            if chosen is None:
                console.print(f"    {role['role']}: [yellow]empty[/] ({role['reason']})")
            else:
                align = chosen.get("alignment") or {}
                console.print(
                    f"    {role['role']}: {chosen['path']} "
                    f"(tempo {align.get('tempo')}, key {align.get('key')})"
                )
    if manifest["seeds"]:
        table = Table(title="seeded by", title_justify="left")
        for column in ("weight", "instrument", "path", "licence", "alignment"):
            table.add_column(column, overflow="fold")
        for seed in manifest["seeds"]:
            align = seed["alignment"]
            table.add_row(
                f"{seed['weight']:.2f}",
                seed.get("instrument") or "—",
                seed.get("path") or "",
                f"{seed['licence'].get('holder')} ({seed['licence'].get('id')})",
                alignment_done(align),
            )
        console.print(table)
    elif manifest["retrieval"].get("status") == "empty":
        console.print("  no catalog item licensed for generation-seed matched: text-only render")
