"""Stem-library search and item metadata / audio previews, within the caller's catalogs."""

from __future__ import annotations

import mimetypes
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from audiorag.api.auth import Principal, Tenant, TenantOrToken
from audiorag.api.bodies import openapi_body, parse_body
from audiorag.api.deps import Scope, catalogs_in_scope, check_item_id, not_found
from audiorag.api.models import Loaded
from audiorag.api.parts import Config, Db, FoldersDep, MetricsDep, Ready, Signer
from audiorag.api.schemas import ItemOut, Problem, SearchBody, SearchHitOut, SearchResponse
from audiorag.api.signing import UrlSigner
from audiorag.api.tenancy import LockedStore, ScopedStore, TenantScope, scope_for
from audiorag.settings import Settings
from rag.catalogs import CatalogRoots

router = APIRouter(prefix="/v1", tags=["search"])

AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
}


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Search your catalogs by text, by an example clip, or both, under filters",
    description="JSON body, or multipart/form-data with the same JSON in the `query` field and "
    "an example clip in `clip` (WAV, FLAC, Ogg or MP3, recognised by content).",
    openapi_extra=openapi_body(SearchBody, "query", {"clip": "Example clip: find similar audio."}),
    responses={404: {"model": Problem}, 415: {"model": Problem}, 422: {"model": Problem}},
)
async def search_route(
    request: Request,
    principal: Tenant,
    scope: Scope,
    loaded: Ready,
    config: Config,
    folders: FoldersDep,
    signer: Signer,
    metrics: MetricsDep,
) -> SearchResponse:
    folder = folders.scratch / uuid.uuid4().hex
    body, files = await parse_body(
        request,
        SearchBody,
        json_field="query",
        file_fields=("clip",),
        folder=folder,
        max_file_bytes=config.upload_max_file_bytes,
    )
    try:
        hits = await run_in_threadpool(_search, loaded, config, scope, body, files.get("clip"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    metrics.search_seconds.observe(hits[1])
    out = []
    for hit in hits[0]:
        payload = scope.public_payload(hit.payload)
        out.append(
            SearchHitOut(
                id=hit.id,
                catalog=str(payload.get("catalog")),
                score=round(hit.score, 4),
                scores=hit.scores,
                payload=payload,
                links=_links(signer, principal, hit.id),
            )
        )
    return SearchResponse(hits=out)


def _search(
    loaded: Loaded,
    config: Settings,
    scope: TenantScope,
    body: SearchBody,
    clip: Path | None,
) -> tuple[list[Any], float]:
    """The hits, and the seconds the search took."""
    from rag.search import SearchError, SearchRequest, search

    names = catalogs_in_scope(scope, body.catalogs)
    request = SearchRequest(
        text=body.text,
        like=clip,
        catalog=None,
        # The scoped view below already holds only these catalogs; the filter says it again.
        catalogs=tuple(names),
        kind=body.kind,
        instrument=body.instrument,
        genre=body.genre,
        bpm=body.bpm,
        bpm_tolerance=body.bpm_tolerance,
        half_double=body.half_double,
        key=body.key,
        compatible_key=body.compatible_key,
        uses=tuple(dict.fromkeys(["search", *body.uses])),
        limit=min(body.limit, config.api_max_search_results),
    )
    view = ScopedStore(loaded.store, names)
    started = time.perf_counter()
    try:
        hits = search(view, loaded.embedder, request)
    except SearchError as err:
        raise HTTPException(422, detail=str(err)) from err
    return hits, time.perf_counter() - started


def _links(signer: UrlSigner, principal: Principal, item_id: str) -> dict[str, str]:
    path = f"/v1/items/{item_id}/audio"
    return {"audio": path, "audio_signed": signer.url(principal.key_id, path)}


def find_item(store: LockedStore, scope: TenantScope, item_id: str) -> dict[str, Any]:
    """The payload of one of the tenant's items; 404 for any other id."""
    item_id = check_item_id(item_id)
    points = scope.view(store).retrieve([item_id])
    if not points:
        raise not_found("no such item")
    return points[0].payload


@router.get(
    "/items/{item_id}",
    response_model=ItemOut,
    summary="One item's metadata: analysis, licence, caption",
    responses={404: {"model": Problem}},
)
def get_item(
    item_id: str, principal: Tenant, scope: Scope, loaded: Ready, signer: Signer
) -> ItemOut:
    payload = find_item(loaded.store, scope, item_id)
    public = scope.public_payload(payload)
    item_id = check_item_id(item_id)
    return ItemOut(
        id=item_id,
        catalog=str(public.get("catalog")),
        kind=payload.get("kind"),
        payload=public,
        audio_url=f"/v1/items/{item_id}/audio",
        links=_links(signer, principal, item_id),
    )


@router.get(
    "/items/{item_id}/audio",
    summary="Stream an item's audio (HTTP range requests supported)",
    description="Stems are served as stored; MIDI patterns as a WAV rendered through the "
    "General MIDI SoundFont (cached). Authenticate with the key, or with `token` from an item's "
    "or hit's `audio_signed` link.",
    response_class=FileResponse,
    responses={
        200: {"content": {m: {} for m in {*AUDIO_TYPES.values()}}},
        206: {"description": "Partial content (Range request)."},
        401: {"model": Problem},
        404: {"model": Problem},
    },
)
async def get_item_audio(
    item_id: str,
    principal: TenantOrToken,
    loaded: Ready,
    db: Db,
    config: Config,
    folders: FoldersDep,
) -> FileResponse:
    # Read per request, like every scope: a catalog revoked since the URL was signed is gone.
    scope = scope_for(db, principal.tenant)
    payload = await run_in_threadpool(find_item, loaded.store, scope, item_id)
    path = await run_in_threadpool(_audio_file, config.data_dir, folders.previews, scope, payload)
    media_type = AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    # Starlette's FileResponse answers Range / If-Range with 206 (single and multi-range) and
    # 416 for unsatisfiable ranges, and advertises Accept-Ranges: bytes.
    return FileResponse(path, media_type=media_type or "application/octet-stream")


def _audio_file(
    data_dir: Path, previews: Path, scope: TenantScope, payload: dict[str, Any]
) -> Path:
    catalog = scope.by_store_name(str(payload.get("catalog")))
    root = catalog.root if catalog and catalog.root else None
    if root is None:
        root = CatalogRoots(data_dir).root(str(payload.get("catalog")))
    relative = str(payload.get("path", ""))
    if root is None or not relative:
        raise not_found("this item's audio is not available on this server")
    base = root.resolve()
    path = (base / relative).resolve()
    # The payload path came from our own indexer, but a preview must never leave the catalog.
    if not path.is_relative_to(base) or not path.is_file():
        raise not_found("this item's audio is not available on this server")
    if payload.get("kind") == "midi":
        return _midi_preview(previews, path, str(payload.get("sha256") or uuid.uuid4().hex))
    return path


def _midi_preview(previews: Path, midi: Path, sha256: str) -> Path:
    target = previews / f"{sha256}.wav"
    if target.is_file():
        return target
    import soundfile as sf

    from index.render import render_midi

    audio = render_midi(midi.read_bytes(), sr=44100)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    sf.write(temp, audio.T, 44100, subtype="PCM_16", format="WAV")
    temp.replace(target)  # atomic: concurrent previews of one item never see half a file
    return target
