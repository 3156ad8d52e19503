"""``audiorag serve``, API keys (``audiorag keys``) and catalog grants (``audiorag grants``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from audiorag.settings import Settings, get_settings

console = Console(stderr=True)

keys_app = typer.Typer(no_args_is_help=True, help="API keys: each maps to one tenant.")
grants_app = typer.Typer(
    no_args_is_help=True,
    help="Give tenants read access to catalogs indexed with `audiorag index`.",
)

# Idle keep-alive connections stay open this long (uvicorn's default is 5 s). A client that
# reuses a connection the server has just closed sees a TCP reset; clients and proxies keep
# theirs for 60 s or more, so the server outlives them and closes first only when truly idle.
KEEP_ALIVE_S = 75


def _db(settings: Settings):
    from audiorag.api.db import Database

    return Database.for_deployment(settings.data_dir, settings.database_url)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else ""


# --- serve --------------------------------------------------------------------------------------


def serve_command(
    host: Annotated[str | None, typer.Option(help="Listen address (AUDIORAG_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AUDIORAG_API_PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes (AUDIORAG_API_WORKERS); >1 needs a server."),
    ] = None,
    drain_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="On SIGTERM/SIGINT, let accepted jobs finish for up to this long (new ones get "
            "503 + Retry-After); what is left runs on the next start. A second signal stops now.",
        ),
    ] = 120.0,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from audiorag.api.db import CorruptDatabase
    from audiorag.api.jobs import recover_interrupted
    from audiorag.api.service import DeploymentError, check_deployment, check_provenance

    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or settings.api_workers
    try:
        check_deployment(settings, workers)
        check_provenance(settings)
        db = _db(settings)
    except (DeploymentError, CorruptDatabase) as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from err
    recovered = recover_interrupted(db)  # once, before any worker process takes jobs
    db.close()
    if recovered:
        console.print(f"[yellow]{recovered} job(s) left running by a crashed run marked failed")
    console.print(f"serving on http://{host}:{port} (docs: /docs), {workers} worker(s)")
    if workers == 1:
        from audiorag.api.app import create_app
        from audiorag.api.server import DrainingServer

        app = create_app(settings, recover_jobs=False)
        config = uvicorn.Config(app, host=host, port=port, timeout_keep_alive=KEEP_ALIVE_S)
        DrainingServer(config, app.state.service.jobs, drain_seconds).run()
    else:
        # Each worker process drains in its lifespan shutdown: running jobs stop at their next
        # step and, like queued ones, stay queued in the database for the next start.
        uvicorn.run(
            "audiorag.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_keep_alive=KEEP_ALIVE_S,
        )


# --- keys ---------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    name: Annotated[str, typer.Option(help="A label, e.g. who holds the key.")] = "",
) -> None:
    """Create a key and print it once (only its hash is kept)."""
    from audiorag.api.auth import KeyError_, create_key

    db = _db(get_settings())
    try:
        key_id, key = create_key(db, tenant, name)
    except KeyError_ as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from err
    finally:
        db.close()
    console.print(f"key {key_id} for tenant {tenant!r} — shown once, store it now:")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id (or the key itself).")]) -> None:
    """Revoke a key: it stops working at once."""
    from audiorag.api.auth import revoke_key

    db = _db(get_settings())
    try:
        revoked = revoke_key(db, key_id)
    finally:
        db.close()
    if not revoked:
        console.print(f"[red]no live key {key_id!r}")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys (ids, tenants, names; never the keys)."""
    from audiorag.api.auth import list_keys

    db = _db(get_settings())
    try:
        rows = list_keys(db)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "tenant", "name", "created", "revoked")
    for r in rows:
        table.add_row(r["id"], r["tenant"], r["name"], _when(r["created"]), _when(r["revoked"]))
    Console().print(table)


# --- grants -------------------------------------------------------------------------------------


@grants_app.command("add")
def grants_add(
    tenant: Annotated[str, typer.Argument(help="Tenant to give access to.")],
    catalog: Annotated[str, typer.Argument(help="Catalog name as indexed (`index --catalog`).")],
    as_name: Annotated[
        str | None, typer.Option("--as", help="Name the tenant sees (default: the same).")
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="Folder it was indexed from (default: the one recorded at indexing)."),
    ] = None,
) -> None:
    """Give a tenant read-only access to an indexed catalog."""
    from audiorag.api.auth import TENANT_PATTERN
    from audiorag.api.tenancy import grant_catalog
    from rag.catalogs import CatalogRoots

    settings = get_settings()
    if not TENANT_PATTERN.match(tenant):
        console.print(f"[red]{tenant!r} is not a valid tenant name")
        raise typer.Exit(2)
    if "/" in catalog:
        # "<tenant>/<name>" is where API uploads live: never hand one tenant's to another here.
        console.print("[red]catalogs uploaded through the API belong to their tenant")
        raise typer.Exit(2)
    root = root or CatalogRoots(settings.data_dir).root(catalog)
    db = _db(settings)
    try:
        granted = grant_catalog(db, tenant, catalog, name=as_name, root=root)
    except ValueError as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from err
    finally:
        db.close()
    console.print(
        f"tenant {tenant!r} can now read catalog {catalog!r} as {granted.name!r}"
        + ("" if root else " (no root folder known: audio previews unavailable)")
    )


@grants_app.command("remove")
def grants_remove(
    tenant: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument(help="The name the tenant sees.")],
) -> None:
    """Take a catalog away from a tenant."""
    from audiorag.api.tenancy import revoke_catalog

    db = _db(get_settings())
    try:
        removed = revoke_catalog(db, tenant, name)
    finally:
        db.close()
    if not removed:
        console.print(f"[red]tenant {tenant!r} has no catalog {name!r}")
        raise typer.Exit(1)
    console.print(f"removed {name!r} from {tenant!r}")


@grants_app.command("list")
def grants_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """Catalogs per tenant (granted and uploaded)."""
    from audiorag.api.repos import catalogs

    db = _db(get_settings())
    try:
        rows = catalogs.listing(db, tenant)
    finally:
        db.close()
    table = Table("tenant", "name", "store catalog", "writable", "root")
    for r in rows:
        table.add_row(
            r["tenant"],
            r["name"],
            r["store_name"],
            "yes" if r["writable"] else "no",
            r["root"] or "",
        )
    Console().print(table)


# `python -m audiorag.cli.serve serve | keys … | grants …`: the container's entry point, the same
# commands as `audiorag serve / keys / grants` without needing the main CLI.
main = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
main.command("serve")(serve_command)
main.add_typer(keys_app, name="keys")
main.add_typer(grants_app, name="grants")

if __name__ == "__main__":
    main()
