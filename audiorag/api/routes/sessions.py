"""Sound-design sessions: a catalog scope, pinned reference items that seed every take, default
generation settings, and the history of takes (each with its manifest), re-runnable."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.concurrency import run_in_threadpool

from audiorag.api.auth import Tenant
from audiorag.api.db import Database
from audiorag.api.deps import Scope, catalogs_in_scope, check_item_id, not_found
from audiorag.api.generation import make_spec
from audiorag.api.jobs import JobQueue
from audiorag.api.models import Loaded, Models
from audiorag.api.parts import Db, FoldersDep, Jobs, ModelsDep, Ready, Signer
from audiorag.api.repos import jobs as jobs_repo
from audiorag.api.repos import sessions as repo
from audiorag.api.routes.jobs import ACCEPTED, check_pins, enqueue, job_out, signer_for
from audiorag.api.schemas import (
    InpaintBody,
    InpaintRange,
    JobOut,
    Problem,
    RerunBody,
    SessionCreate,
    SessionGenerateBody,
    SessionList,
    SessionOut,
    TakeList,
    TakeOut,
)
from audiorag.api.tenancy import TenantScope

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
NOT_FOUND = {404: {"model": Problem}}


def _session(db: Database, tenant: str, session_id: str) -> dict[str, Any]:
    row = repo.get(db, tenant, session_id)
    if row is None:
        raise not_found("no such session")
    return row


def _out(db: Database, row: dict[str, Any]) -> SessionOut:
    return SessionOut(
        id=row["id"],
        name=row["name"],
        catalogs=row["catalogs"],
        pins=repo.pins(db, row["id"]),
        defaults=row["defaults"],
        created=row["created"],
        takes=jobs_repo.count_in_session(db, row["id"]),
    )


@dataclass(frozen=True)
class Takes:
    """What making a session take needs: the loaded store (pin checks), the orchestrator (its
    pre-check) and the queue."""

    loaded: Loaded
    models: Models
    jobs: JobQueue

    @property
    def db(self) -> Database:
        return self.jobs.db


def _takes(loaded: Ready, models: ModelsDep, jobs: Jobs) -> Takes:
    return Takes(loaded, models, jobs)


TakesDep = Annotated[Takes, Depends(_takes)]


def _scope_names(scope: TenantScope, row: dict[str, Any]) -> list[str]:
    """The session's catalogs as store names, as the tenant holds them *now*: a catalog the
    tenant has lost access to since drops out rather than leaking."""
    names = [n for n in row["catalogs"] if scope.by_name(n) is not None]
    if row["catalogs"] and not names:
        raise HTTPException(409, detail="none of this session's catalogs is yours any more")
    return catalogs_in_scope(scope, names or None)


@router.post(
    "", status_code=201, response_model=SessionOut, summary="Start a session", responses=NOT_FOUND
)
def create_session(body: SessionCreate, scope: Scope, loaded: Ready, db: Db) -> SessionOut:
    store_names = catalogs_in_scope(scope, body.catalogs or None)
    pins = check_pins(loaded.store, scope, store_names, body.pins)
    session_id = uuid.uuid4().hex
    repo.create(
        db,
        session_id,
        scope.tenant,
        body.name,
        list(dict.fromkeys(body.catalogs)),
        body.defaults.model_dump_json(exclude_none=True),
        pins,
    )
    return _out(db, _session(db, scope.tenant, session_id))


@router.get("", response_model=SessionList, summary="Your sessions")
def list_sessions(scope: Scope, db: Db) -> SessionList:
    return SessionList(sessions=[_out(db, r) for r in repo.for_tenant(db, scope.tenant)])


@router.get(
    "/{session_id}",
    response_model=SessionOut,
    summary="One session: scope, pins, defaults",
    responses=NOT_FOUND,
)
def get_session(session_id: str, scope: Scope, db: Db) -> SessionOut:
    return _out(db, _session(db, scope.tenant, session_id))


@router.put(
    "/{session_id}/pins/{item_id}",
    response_model=SessionOut,
    summary="Pin a reference item (it seeds every take of the session)",
    responses=NOT_FOUND,
)
def add_pin(session_id: str, item_id: str, scope: Scope, loaded: Ready, db: Db) -> SessionOut:
    row = _session(db, scope.tenant, session_id)
    (item,) = check_pins(loaded.store, scope, _scope_names(scope, row), [item_id])
    repo.add_pin(db, session_id, item)
    return _out(db, row)


@router.delete(
    "/{session_id}/pins/{item_id}",
    response_model=SessionOut,
    summary="Unpin a reference item",
    responses=NOT_FOUND,
)
def remove_pin(session_id: str, item_id: str, scope: Scope, db: Db) -> SessionOut:
    row = _session(db, scope.tenant, session_id)
    if not repo.remove_pin(db, session_id, check_item_id(item_id)):
        raise not_found("that item is not pinned in this session")
    return _out(db, row)


@router.post(
    "/{session_id}/generate",
    status_code=202,
    response_model=JobOut,
    summary="A new take: the session's defaults, overridden by the body; pins always seed",
    responses=ACCEPTED,
)
async def session_generate(
    session_id: str,
    body: SessionGenerateBody,
    response: Response,
    scope: Scope,
    takes: TakesDep,
) -> JobOut:
    return await run_in_threadpool(_session_generate, takes, scope, session_id, body, response)


def _session_generate(
    takes: Takes,
    scope: TenantScope,
    session_id: str,
    body: SessionGenerateBody,
    response: Response,
) -> JobOut:
    row = _session(takes.db, scope.tenant, session_id)
    merged = {**row["defaults"], **body.model_dump(exclude_none=True)}
    if not merged.get("prompt"):
        raise HTTPException(422, detail="prompt: give one here or in the session's defaults")
    store_names = _scope_names(scope, row)
    # Pins are re-checked at every take: an item removed from the index since pinning is
    # reported instead of silently generating without it.
    pinned = check_pins(takes.loaded.store, scope, store_names, repo.pins(takes.db, session_id))
    spec = make_spec(merged, catalogs=store_names, pinned=pinned)
    return enqueue(takes.models, takes.jobs, scope.tenant, spec, response, session_id=session_id)


@router.get(
    "/{session_id}/takes",
    response_model=TakeList,
    summary="The session's takes, oldest first, each with its settings and manifest",
    responses=NOT_FOUND,
)
def list_takes(
    session_id: str, principal: Tenant, scope: Scope, db: Db, signer: Signer
) -> TakeList:
    _session(db, scope.tenant, session_id)
    rows = jobs_repo.in_session(db, scope.tenant, session_id)
    sign = signer_for(signer, principal)
    return TakeList(takes=[_take_out(r, sign) for r in rows])


def _take_out(row: dict[str, Any], sign: Any) -> TakeOut:
    spec = row["spec"] or {}
    settings = spec.get("settings", {})
    inpaint = None
    if spec.get("inpaint") and settings.get("inpaint_to_s") is not None:
        inpaint = InpaintRange(
            from_s=settings.get("inpaint_from_s") or 0.0, to_s=settings["inpaint_to_s"]
        )
    origin = spec.get("origin")
    if origin is None and row["parent_take"]:  # takes stored before origins were recorded
        origin = "inpaint" if inpaint else "rerun"
    return TakeOut(
        job=job_out(row, sign),
        settings=settings,
        parent_take=row["parent_take"],
        origin=origin,
        inpaint=inpaint,
        manifest=row["manifest"],
    )


@router.post(
    "/{session_id}/takes/{take_id}/rerun",
    status_code=202,
    response_model=JobOut,
    summary="Run a take again with a new seed and/or strength (same prompt, seeds, pins)",
    responses=ACCEPTED,
)
async def rerun_take(
    session_id: str,
    take_id: str,
    body: RerunBody,
    response: Response,
    scope: Scope,
    takes: TakesDep,
) -> JobOut:
    return await run_in_threadpool(_rerun, takes, scope, session_id, take_id, body, response)


def _take_job(db: Database, tenant: str, session_id: str, take_id: str) -> dict[str, Any]:
    job = jobs_repo.take_in_session(db, tenant, session_id, take_id)
    if job is None:
        raise not_found("no such take in this session")
    return job


def _rerun(
    takes: Takes,
    scope: TenantScope,
    session_id: str,
    take_id: str,
    body: RerunBody,
    response: Response,
) -> JobOut:
    row = _session(takes.db, scope.tenant, session_id)
    job = _take_job(takes.db, scope.tenant, session_id, take_id)
    spec = dict(job["spec"])
    settings = dict(spec["settings"])
    settings.update(body.model_dump(exclude_none=True))
    store_names = _scope_names(scope, row)
    pinned = check_pins(takes.loaded.store, scope, store_names, repo.pins(takes.db, session_id))
    new_spec = make_spec(
        settings,
        catalogs=store_names,
        pinned=pinned,
        like=spec.get("like"),
        inpaint=spec.get("inpaint"),
        origin="rerun",
    )
    return enqueue(
        takes.models,
        takes.jobs,
        scope.tenant,
        new_spec,
        response,
        session_id=session_id,
        parent_take=job["take_id"] or job["id"],
    )


@router.post(
    "/{session_id}/takes/{take_id}/inpaint",
    status_code=202,
    response_model=JobOut,
    summary="In-paint a range of a take: regenerate [from_s, to_s) of its audio, keep the rest",
    description="Works on the take's stored audio (no upload). The new take joins the session's "
    "history with this take as its parent; prompt defaults to the take's, pins always seed.",
    responses={**ACCEPTED, 409: {"description": "The take has not finished.", "model": Problem}},
)
async def inpaint_take(
    session_id: str,
    take_id: str,
    body: InpaintBody,
    response: Response,
    scope: Scope,
    takes: TakesDep,
    folders: FoldersDep,
) -> JobOut:
    return await run_in_threadpool(
        _inpaint, takes, folders.inputs, scope, session_id, take_id, body, response
    )


def _inpaint(
    takes: Takes,
    inputs: Path,
    scope: TenantScope,
    session_id: str,
    take_id: str,
    body: InpaintBody,
    response: Response,
) -> JobOut:
    row = _session(takes.db, scope.tenant, session_id)
    job = _take_job(takes.db, scope.tenant, session_id, take_id)
    if job["status"] != "succeeded":
        raise HTTPException(409, detail=f"that take is {job['status']}; in-paint a finished one")
    if body.to_s <= body.from_s:
        raise HTTPException(422, detail="to_s: the range must end after it starts (from_s)")
    audio = job.get("audio") or {}
    source = next((Path(audio[f]) for f in ("wav", "flac") if f in audio), None)
    if source is None or not source.is_file():
        raise not_found("this take's audio is no longer on the server")
    settings = dict((job["spec"] or {}).get("settings", {}))
    settings.pop("duration_s", None)  # the take's length decides it
    settings.update(
        {
            "inpaint_from_s": body.from_s,
            "inpaint_to_s": body.to_s,
            **body.model_dump(exclude_none=True, exclude={"from_s", "to_s"}),
        }
    )
    if body.strength is None:
        settings.pop("strength", None)  # in-painting's own default (1.0), not the parent's
    store_names = _scope_names(scope, row)
    pinned = check_pins(takes.loaded.store, scope, store_names, repo.pins(takes.db, session_id))
    # A copy of the take's audio, kept with the job's inputs: the new take can be re-run even
    # if the parent's folder goes.
    folder = inputs / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / f"inpaint-source{source.suffix}"
    shutil.copyfile(source, clip)
    spec = make_spec(
        settings,
        catalogs=store_names,
        pinned=pinned,
        like=(job["spec"] or {}).get("like"),  # a path or a shared-storage URL, kept as is
        inpaint=clip,
        origin="inpaint",
    )
    try:
        return enqueue(
            takes.models,
            takes.jobs,
            scope.tenant,
            spec,
            response,
            session_id=session_id,
            parent_take=job["take_id"] or job["id"],
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
