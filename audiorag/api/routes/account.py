"""Who the caller is, what its catalogs hold (facets for filters), and tracing a file's
watermark back to the take that made it."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool

from audiorag.api.auth import Principal, Tenant
from audiorag.api.bodies import _save_audio
from audiorag.api.db import Database
from audiorag.api.deps import Scope
from audiorag.api.models import Models
from audiorag.api.parts import Config, Db, Facets, FoldersDep, ModelsDep, Ready
from audiorag.api.repos import jobs as jobs_repo
from audiorag.api.schemas import (
    FacetsOut,
    MeCatalog,
    MeOut,
    Problem,
    SeedSummary,
    TakeSummary,
    WatermarkOut,
)
from audiorag.api.tenancy import TenantScope, scope_for
from audiorag.settings import Settings

router = APIRouter(prefix="/v1", tags=["account"])


@router.get("/me", response_model=MeOut, summary="The caller: tenant, key id and catalogs")
def me(principal: Tenant, scope: Scope) -> MeOut:
    return MeOut(
        tenant=principal.tenant,
        key_id=principal.key_id,
        catalogs=[MeCatalog(name=c.name, writable=c.writable) for c in scope.catalogs],
    )


@router.get(
    "/facets",
    response_model=FacetsOut,
    summary="Distinct instruments, styles, keys, kinds and licence uses in your catalogs",
    description="For filter inputs. Cached per set of catalogs until an upload changes one of "
    "them (or for a minute).",
)
def facets(scope: Scope, loaded: Ready, cache: Facets) -> FacetsOut:
    return FacetsOut(**cache.facets(scope.view(loaded.store)))


# --- watermark ------------------------------------------------------------------------------------


@router.post(
    "/watermark/detect",
    response_model=WatermarkOut,
    tags=["provenance"],
    summary="Read a file's watermark and, when the take is yours, trace it to its manifest",
    description="Multipart upload of one audio file (`file`: WAV, FLAC, Ogg or MP3, recognised "
    "by content; same size and duration limits as other uploads). Detection needs a few "
    "seconds of the take (about 6 s with the default scheme). The take's summary (prompt, "
    "seeding items with their licences) is returned only when one of your jobs made it; a take "
    "of another tenant answers `origin: this-deployment` and nothing more.",
    responses={413: {"model": Problem}, 422: {"model": Problem}},
)
async def detect_watermark(
    principal: Tenant,
    db: Db,
    models: ModelsDep,
    config: Config,
    folders: FoldersDep,
    file: Annotated[UploadFile, File(description="The audio file to check.")],
) -> WatermarkOut:
    folder = folders.scratch / uuid.uuid4().hex
    try:
        path = await run_in_threadpool(
            _save_audio, file, folder, "file", config.upload_max_file_bytes
        )
        return await run_in_threadpool(_detect, db, models, config, principal, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _detect(
    db: Database, models: Models, settings: Settings, principal: Principal, path: Path
) -> WatermarkOut:
    from audio.decode import Limits, UnusableFile, decode_audio

    try:
        limits = Limits(
            max_bytes=settings.upload_max_file_bytes, max_seconds=settings.upload_max_seconds
        )
        audio = decode_audio(path, limits)
    except UnusableFile as err:
        raise HTTPException(422, detail=f"file: {err}") from err
    marker = models.watermarker()
    found = marker.detect(audio.samples, audio.sr)
    out: dict[str, Any] = {
        "scheme": marker.id,
        "present": bool(found.present),
        "confidence": round(float(found.confidence), 4),
        "payload": f"{found.payload:08x}" if found.payload is not None else None,
        "details": _plain(found.details or {}),
    }
    if not found.present or found.payload is None:
        return WatermarkOut(
            **out, origin=None, message="No watermark of this deployment found in this file."
        )
    payload = out["payload"]
    job = jobs_repo.by_watermark(db, payload, principal.tenant)
    if job is not None:
        scope = scope_for(db, principal.tenant)
        return WatermarkOut(
            **out,
            origin="yours",
            message="Marked by this deployment: a take one of your jobs made.",
            take=_summary(job, scope),
        )
    # Known here (the provenance log, or another tenant's job) — but not the caller's: say so,
    # and nothing about whose or what it is.
    known = models.provenance().find(int(payload, 16)) is not None
    if not known:
        known = jobs_repo.by_watermark(db, payload) is not None
    if known:
        return WatermarkOut(
            **out,
            origin="this-deployment",
            message="Marked by this deployment, but not by one of your takes: no details.",
        )
    return WatermarkOut(
        **out,
        origin="unknown",
        message="Carries this deployment's watermark scheme, but the payload is not in its "
        "records (an older data dir, or another deployment sharing the key?).",
    )


def _summary(job: dict[str, Any], scope: TenantScope) -> TakeSummary:
    """The take as the CLI's ``watermark detect`` reads it, with the job's ids and the seeds'
    catalogs named as this tenant knows them."""
    from rag.provenance import take_summary

    summary = take_summary(job["manifest"] or {})
    seeds = []
    for seed in summary["seeds"]:
        catalog = scope.by_store_name(str(seed.get("catalog")))
        fields = ("id", "path", "licence_id", "holder", "attribution")
        seeds.append(
            SeedSummary(
                **{key: _str(seed.get(key)) for key in fields},
                catalog=catalog.name if catalog else None,
                allowed_uses=[str(use) for use in seed.get("allowed_uses") or []],
            )
        )
    return TakeSummary(
        take_id=job["take_id"],
        job_id=job["id"],
        session_id=job["session_id"],
        created_at=_str(summary["created_at"]),
        prompt=summary["prompt"],
        model=_str(summary["model"]),
        seeds=seeds,
    )


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def _plain(value: Any) -> Any:
    """Detector details as JSON-able values (numpy scalars and arrays included)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
