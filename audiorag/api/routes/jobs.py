"""Generation as asynchronous jobs: submit (202), poll with progress, fetch audio and manifest,
cancel."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from audiorag.api.auth import Principal, Tenant, TenantOrToken
from audiorag.api.bodies import openapi_body, parse_body
from audiorag.api.db import Database
from audiorag.api.deps import Scope, catalogs_in_scope, check_item_id, not_found
from audiorag.api.generation import build_generate_request, make_spec
from audiorag.api.jobs import Draining, Generates, JobQueue, QueueFull, StorageUnavailable
from audiorag.api.models import Models
from audiorag.api.parts import Config, Db, FoldersDep, Jobs, ModelsDep, Ready, Signer
from audiorag.api.repos import jobs as repo
from audiorag.api.schemas import GenerateBody, JobOut, Problem, Progress
from audiorag.api.signing import UrlSigner
from audiorag.api.storage import local_inputs
from audiorag.api.tenancy import LockedStore, TenantScope
from rag.errors import Refusal
from rag.rules import seed_refusal

router = APIRouter(prefix="/v1", tags=["generation"])

Sign = Callable[[str, str], str]


def signer_for(signer: UrlSigner, principal: Principal) -> Sign:
    """Signs URLs for ``principal``'s key (see :mod:`audiorag.api.signing`)."""
    return lambda path, query: signer.url(principal.key_id, path, query)


ACCEPTED = {
    202: {"description": "Accepted: poll the job.", "model": JobOut},
    404: {"model": Problem},
    422: {"model": Problem},
    429: {"description": "Queue full; see Retry-After.", "model": Problem},
    503: {"description": "Generator not loaded, or the service is restarting.", "model": Problem},
}


def job_out(row: dict[str, Any], sign: Sign | None = None) -> JobOut:
    """The job as JSON; with ``sign`` (the caller's signer), a finished take's links include
    signed URLs of its audio and spectrogram."""
    done, total = int(row["done"]), int(row["total"])
    base = f"/v1/jobs/{row['id']}"
    links = {"self": base}
    if row["status"] == "succeeded":
        for fmt in row.get("audio") or {}:
            links[f"audio_{fmt}"] = f"{base}/audio?format={fmt}"
            if sign is not None:
                links[f"signed_audio_{fmt}"] = sign(f"{base}/audio", f"format={fmt}")
        links["manifest"] = f"{base}/manifest"
        if row.get("folder"):
            links["spectrogram"] = f"{base}/spectrogram"
            if sign is not None:
                links["signed_spectrogram"] = sign(f"{base}/spectrogram", "")
    return JobOut(
        id=row["id"],
        status=row["status"],
        progress=Progress(done=done, total=total, fraction=round(done / total, 4) if total else 0),
        session_id=row["session_id"],
        take_id=row["take_id"],
        error=row["error"],
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        links=links,
    )


def tenant_job(db: Database, tenant: str, job_id: str) -> dict[str, Any]:
    row = repo.for_tenant(db, tenant, job_id)
    if row is None:
        raise not_found("no such job")
    return row


def check_pins(store: LockedStore, scope: TenantScope, store_names: list[str], pins: list[str]):
    """Every pinned id must be one of the caller's items in these catalogs (else 404)."""
    ids = [check_item_id(p) for p in pins]
    if not ids:
        return []
    found = {p.id: p.payload for p in scope.view(store).retrieve(ids)}
    # A pin always seeds, so the orchestrator's seed rule applies now, not at render time;
    # every unknown id (404) is reported before any unlicensed one (422).
    refusals = [seed_refusal(i, found.get(i), store_names) for i in ids]
    for refusal in sorted(filter(None, refusals), key=lambda r: r.reason != Refusal.NOT_FOUND):
        if refusal.reason == Refusal.NOT_FOUND:
            raise not_found(str(refusal))
        raise HTTPException(422, detail=str(refusal))
    return list(dict.fromkeys(ids))


def enqueue(
    models: Models,
    jobs: JobQueue,
    tenant: str,
    spec: dict[str, Any],
    response: Response,
    *,
    session_id: str | None = None,
    parent_take: str | None = None,
) -> JobOut:
    orchestrator = models.orchestrator
    if orchestrator is None:
        raise HTTPException(
            503,
            detail=f"the generator is not loaded ({models.generator_error or 'still loading'})",
            headers={"Retry-After": "30"},
        )
    precheck(orchestrator, spec)
    try:
        job_id = jobs.submit(tenant, spec, session_id=session_id, parent_take=parent_take)
    except QueueFull as err:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=str(err),
            headers={"Retry-After": str(err.retry_after)},
        ) from err
    except (Draining, StorageUnavailable) as err:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=str(err),
            headers={"Retry-After": str(err.retry_after)},
        ) from err
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    row = repo.get(jobs.db, job_id)
    assert row is not None
    return job_out(row)


def precheck(orchestrator: Generates, spec: dict[str, Any]) -> None:
    """What the orchestrator would refuse before rendering — invalid settings, a blocked term
    nobody in scope licensed — raised now (GenerationError / BlockedPrompt, both ValueError), so
    the client gets a 422 instead of a job that fails later."""
    try:
        with local_inputs(spec) as local:  # a re-run's inputs may be on shared storage
            orchestrator.check(build_generate_request(local))
    except ValueError as err:  # GenerationError / BlockedPrompt: the message names the fix
        term = getattr(err, "term", None)
        raise HTTPException(
            422, detail={"message": str(err), "blocked_term": term} if term else str(err)
        ) from err


@router.post(
    "/generate",
    status_code=202,
    response_model=JobOut,
    summary="Start a generation job",
    description="JSON body, or multipart/form-data with the same JSON in `request` plus an "
    "optional reference clip `like` and/or an `inpaint` source. Seeds come only from your "
    "catalogs (`catalogs`, default all) and pinned items.",
    openapi_extra=openapi_body(
        GenerateBody,
        "request",
        {"like": "Reference clip.", "inpaint": "Audio to in-paint (with inpaint_from_s/to_s)."},
    ),
    responses=ACCEPTED,
)
async def generate(
    request: Request,
    response: Response,
    scope: Scope,
    loaded: Ready,
    models: ModelsDep,
    jobs: Jobs,
    config: Config,
    folders: FoldersDep,
) -> JobOut:
    folder = folders.inputs / uuid.uuid4().hex
    body, files = await parse_body(
        request,
        GenerateBody,
        json_field="request",
        file_fields=("like", "inpaint"),
        folder=folder,
        max_file_bytes=config.upload_max_file_bytes,
    )
    try:
        return await run_in_threadpool(
            _submit, loaded.store, models, jobs, scope, body, files, response
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _submit(
    store: LockedStore,
    models: Models,
    jobs: JobQueue,
    scope: TenantScope,
    body: GenerateBody,
    files: dict[str, Path],
    response: Response,
) -> JobOut:
    store_names = catalogs_in_scope(scope, body.catalogs)
    pinned = check_pins(store, scope, store_names, body.pinned)
    spec = make_spec(
        body.model_dump(exclude={"catalogs", "pinned"}),
        catalogs=store_names,
        pinned=pinned,
        like=files.get("like"),
        inpaint=files.get("inpaint"),
    )
    return enqueue(models, jobs, scope.tenant, spec, response)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="A job's status and progress (denoiser steps done / total)",
    responses={404: {"model": Problem}},
)
def get_job(job_id: str, principal: Tenant, db: Db, signer: Signer) -> JobOut:
    return job_out(tenant_job(db, principal.tenant, job_id), signer_for(signer, principal))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel a job (queued: dropped; running: stops at its next step)",
    responses={404: {"model": Problem}},
)
def cancel_job(job_id: str, principal: Tenant, db: Db, jobs: Jobs, signer: Signer) -> JobOut:
    tenant_job(db, principal.tenant, job_id)
    jobs.cancel(job_id)
    return job_out(tenant_job(db, principal.tenant, job_id), signer_for(signer, principal))


def finished_job(db: Database, tenant: str, job_id: str) -> dict[str, Any]:
    row = tenant_job(db, tenant, job_id)
    if row["status"] != "succeeded":
        raise HTTPException(409, detail=f"job is {row['status']}; no take to fetch")
    return row


@router.get(
    "/jobs/{job_id}/audio",
    summary="The take's audio (HTTP range requests supported)",
    description="Authenticate with the key, or with `token` from the job's `signed_audio_<fmt>` "
    "link.",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/wav": {}, "audio/flac": {}}},
        401: {"model": Problem},
        404: {"model": Problem},
        409: {"description": "The job has not succeeded.", "model": Problem},
    },
)
def job_audio(
    job_id: str,
    principal: TenantOrToken,
    db: Db,
    format: Annotated[str, Query(pattern="^(wav|flac)$")] = "wav",
) -> FileResponse:
    row = finished_job(db, principal.tenant, job_id)
    path = (row.get("audio") or {}).get(format)
    if not path or not Path(path).is_file():
        raise not_found(f"this take has no {format} audio")
    media = "audio/flac" if format == "flac" else "audio/wav"
    return FileResponse(path, media_type=media, filename=f"{row['take_id']}.{format}")


@router.get(
    "/jobs/{job_id}/manifest",
    summary="The take's provenance manifest (seeds, licences, settings, model ids)",
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
def job_manifest(job_id: str, principal: Tenant, db: Db) -> dict[str, Any]:
    return finished_job(db, principal.tenant, job_id)["manifest"] or {}


@router.get(
    "/jobs/{job_id}/spectrogram",
    summary="The take's spectrogram (PNG, log frequency, dB)",
    description="Authenticate with the key, or with `token` from the job's `signed_spectrogram` "
    "link.",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}},
        401: {"model": Problem},
        404: {"model": Problem},
        409: {"description": "The job has not succeeded.", "model": Problem},
    },
)
def job_spectrogram(job_id: str, principal: TenantOrToken, db: Db) -> FileResponse:
    row = finished_job(db, principal.tenant, job_id)
    path = Path(row["folder"] or "") / "spectrogram.png" if row.get("folder") else None
    if path is None or not path.is_file():
        raise not_found("this take has no spectrogram")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private"})
