"""The caller's catalogs, and uploading stems / MIDI patterns into them with licence records."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from audiorag.api.deps import Scope
from audiorag.api.parts import Config, Db, FoldersDep, Ready, Uploads
from audiorag.api.schemas import CatalogList, CatalogOut, Problem, UploadResponse
from audiorag.api.tenancy import upload_catalog
from audiorag.api.uploads import safe_name
from index.manifest import Licence
from index.store import Filter, Match

router = APIRouter(prefix="/v1", tags=["catalogs"])


@router.get("/catalogs", response_model=CatalogList, summary="Your catalogs")
def list_catalogs(scope: Scope, loaded: Ready) -> CatalogList:
    return CatalogList(
        catalogs=[
            CatalogOut(
                name=c.name,
                items=loaded.store.count(Filter(must=(Match("catalog", c.store_name),))),
                writable=c.writable,
            )
            for c in scope.catalogs
        ]
    )


@router.post(
    "/catalogs/{catalog}/items",
    response_model=UploadResponse,
    summary="Upload stems / MIDI patterns with their licence records and index them",
    description=(
        "Each file is kept only if its content is WAV, FLAC, Ogg, MP3 or MIDI (sniffed, not "
        "taken from the name), within the size and duration limits, and covered by a licence "
        "record: an entry of `manifest` (JSON list or JSON Lines of "
        '`{"path": <file name>, "licence": {...}, "meta": {...}}`) or the `licence` given for '
        "all files. The catalog is created on first upload. Every file gets a status; "
        "rejected and failed ones say why and are not kept."
    ),
    responses={404: {"model": Problem}, 409: {"model": Problem}, 413: {"model": Problem}},
)
async def upload_items(
    catalog: str,
    files: Annotated[list[UploadFile], File(description="Stems and MIDI patterns.")],
    scope: Scope,
    loaded: Ready,
    db: Db,
    config: Config,
    folders: FoldersDep,
    uploads: Uploads,
    manifest: Annotated[
        str | None, Form(description="Licence records per file (JSON list or JSON Lines).")
    ] = None,
    licence: Annotated[
        str | None,
        Form(
            description='Licence for files without a record: {"id", "holder", '
            '"allowed_uses", "attribution"} as JSON.'
        ),
    ] = None,
) -> UploadResponse:
    if len(files) > config.upload_max_files:
        raise HTTPException(413, detail=f"at most {config.upload_max_files} files per request")
    records = _parse_records(manifest)
    default_licence = _parse_licence(licence)
    existing = scope.by_name(catalog)
    if existing is not None and not existing.writable:
        raise HTTPException(409, detail=f"catalog {catalog!r} is read-only (granted to you)")
    try:
        target = existing or upload_catalog(db, scope.tenant, catalog, folders.uploads)
    except ValueError as err:
        raise HTTPException(422, detail=str(err)) from err
    return await run_in_threadpool(uploads.ingest, loaded, target, files, records, default_licence)


def _parse_records(text: str | None) -> dict[str, dict[str, Any]]:
    """Licence records by file name, from a JSON list, one JSON object or JSON Lines."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
        rows = value if isinstance(value, list) else [value]
    except json.JSONDecodeError:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise HTTPException(
                422, detail=f"manifest: not JSON or JSON Lines ({err.msg})"
            ) from err
    records: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("path"), str):
            raise HTTPException(422, detail=f"manifest record {n}: needs a 'path' (the file name)")
        records[row["path"]] = row
        # A catalog's own licences.jsonl names files by their path in that folder; uploads
        # arrive as bare names, so the record is also found by its basename.
        records.setdefault(safe_name(row["path"]), row)
    return records


def _parse_licence(text: str | None) -> Licence | None:
    if not text or not text.strip():
        return None
    try:
        return Licence.model_validate_json(text)
    except ValidationError as err:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise HTTPException(422, detail=f"licence: {reasons}") from err
