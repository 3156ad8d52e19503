"""Generation as asynchronous jobs: submit (202), poll with progress, fetch audio and manifest,
cancel."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from rag.api.auth import Tenant
from rag.api.bodies import openapi_body, parse_body
from rag.api.deps import (
    ReadyService,
    Scope,
    ServiceDep,
    catalogs_in_scope,
    check_item_id,
    not_found,
)
from rag.api.generation import make_spec
from rag.api.jobs import QueueFull
from rag.api.schemas import GenerateBody, JobOut, Problem, Progress
from rag.api.service import Service
from rag.api.tenancy import TenantScope

router = APIRouter(prefix="/v1", tags=["generation"])

ACCEPTED = {
    202: {"description": "Accepted: poll the job.", "model": JobOut},
    404: {"model": Problem},
    422: {"model": Problem},
    429: {"description": "Queue full; see Retry-After.", "model": Problem},
    503: {"description": "Generator not loaded.", "model": Problem},
}


def job_out(row: dict[str, Any]) -> JobOut:
    done, total = int(row["done"]), int(row["total"])
    links = {"self": f"/v1/jobs/{row['id']}"}
    if row["status"] == "succeeded":
        for fmt in row.get("audio") or {}:
            links[f"audio_{fmt}"] = f"/v1/jobs/{row['id']}/audio?format={fmt}"
        links["manifest"] = f"/v1/jobs/{row['id']}/manifest"
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


def tenant_job(service: Service, tenant: str, job_id: str) -> dict[str, Any]:
    row = service.db.one("SELECT * FROM jobs WHERE id = ? AND tenant = ?", job_id, tenant)
    if row is None:
        raise not_found("no such job")
    return row


def check_pins(service: Service, scope: TenantScope, store_names: list[str], pins: list[str]):
    """Every pinned id must be one of the caller's items in these catalogs (else 404)."""
    assert service.store is not None
    ids = [check_item_id(p) for p in pins]
    if not ids:
        return []
    visible = {
        p.id
        for p in scope.view(service.store).retrieve(ids)
        if p.payload.get("catalog") in store_names
    }
    for item_id in ids:
        if item_id not in visible:
            raise not_found(f"no item {item_id} in this scope")
    return list(dict.fromkeys(ids))


def enqueue(
    service: Service,
    tenant: str,
    spec: dict[str, Any],
    response: Response,
    *,
    session_id: str | None = None,
    parent_take: str | None = None,
) -> JobOut:
    if service.orchestrator is None:
        raise HTTPException(
            503,
            detail=f"the generator is not loaded ({service.generator_error or 'still loading'})",
            headers={"Retry-After": "30"},
        )
    precheck(service, spec)
    try:
        job_id = service.jobs.submit(tenant, spec, session_id=session_id, parent_take=parent_take)
    except QueueFull as err:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=str(err),
            headers={"Retry-After": str(err.retry_after)},
        ) from err
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    row = service.db.one("SELECT * FROM jobs WHERE id = ?", job_id)
    assert row is not None
    return job_out(row)


def precheck(service: Service, spec: dict[str, Any]) -> None:
    from rag.api.generation import build_generate_request, precheck

    try:
        precheck(service.orchestrator, build_generate_request(spec))
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
    request: Request, response: Response, scope: Scope, service: ReadyService
) -> JobOut:
    folder = service.inputs_dir / uuid.uuid4().hex
    body, files = await parse_body(
        request,
        GenerateBody,
        json_field="request",
        file_fields=("like", "inpaint"),
        folder=folder,
        max_file_bytes=service.settings.upload_max_file_bytes,
    )
    try:
        return await run_in_threadpool(_submit, service, scope, body, files, response)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _submit(
    service: Service,
    scope: TenantScope,
    body: GenerateBody,
    files: dict[str, Path],
    response: Response,
) -> JobOut:
    store_names = catalogs_in_scope(scope, body.catalogs)
    pinned = check_pins(service, scope, store_names, body.pinned)
    spec = make_spec(
        body.model_dump(exclude={"catalogs", "pinned"}),
        catalogs=store_names,
        pinned=pinned,
        like=files.get("like"),
        inpaint=files.get("inpaint"),
    )
    return enqueue(service, scope.tenant, spec, response)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="A job's status and progress (denoiser steps done / total)",
    responses={404: {"model": Problem}},
)
def get_job(job_id: str, principal: Tenant, service: ServiceDep) -> JobOut:
    return job_out(tenant_job(service, principal.tenant, job_id))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel a job (queued: dropped; running: stops at its next step)",
    responses={404: {"model": Problem}},
)
def cancel_job(job_id: str, principal: Tenant, service: ServiceDep) -> JobOut:
    tenant_job(service, principal.tenant, job_id)
    service.jobs.cancel(job_id)
    return job_out(tenant_job(service, principal.tenant, job_id))


def finished_job(service: Service, tenant: str, job_id: str) -> dict[str, Any]:
    row = tenant_job(service, tenant, job_id)
    if row["status"] != "succeeded":
        raise HTTPException(409, detail=f"job is {row['status']}; no take to fetch")
    return row


@router.get(
    "/jobs/{job_id}/audio",
    summary="The take's audio (HTTP range requests supported)",
    response_class=FileResponse,
    responses={
        200: {"content": {"audio/wav": {}, "audio/flac": {}}},
        404: {"model": Problem},
        409: {"description": "The job has not succeeded.", "model": Problem},
    },
)
def job_audio(
    job_id: str,
    principal: Tenant,
    service: ServiceDep,
    format: Annotated[str, Query(pattern="^(wav|flac)$")] = "wav",
) -> FileResponse:
    row = finished_job(service, principal.tenant, job_id)
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
def job_manifest(job_id: str, principal: Tenant, service: ServiceDep) -> dict[str, Any]:
    return finished_job(service, principal.tenant, job_id)["manifest"] or {}
