"""Who the caller is, what its catalogs hold (facets for filters), and tracing a file's
watermark back to the take that made it."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool

from audiorag.api.auth import Principal, Tenant
from audiorag.api.bodies import _save_audio
from audiorag.api.deps import ReadyService, Scope, ServiceDep
from audiorag.api.schemas import (
    FacetsOut,
    MeCatalog,
    MeOut,
    Problem,
    SeedSummary,
    TakeSummary,
    WatermarkOut,
)
from audiorag.api.service import Service
from audiorag.api.tenancy import TenantScope, scope_for

router = APIRouter(prefix="/v1", tags=["account"])

FACETS_TTL_S = 60.0  # also covers catalogs re-indexed by the CLI or another API process


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
def facets(scope: Scope, service: ReadyService) -> FacetsOut:
    assert service.store is not None
    names = tuple(sorted(scope.store_names))
    view = scope.view(service.store)
    generations = tuple(service.catalog_generations.get(n, 0) for n in names)
    key = (names, generations, view.count())
    cached = service.facets_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < FACETS_TTL_S:
        return FacetsOut(**cached[1])
    found: dict[str, set[str]] = {f: set() for f in ("instruments", "genres", "keys", "kinds")}
    uses: set[str] = set()
    items = 0
    for point in view.scroll():
        items += 1
        p = point.payload
        for field, value in (
            ("instruments", p.get("instrument")),
            ("genres", p.get("genre")),
            ("keys", p.get("key")),
            ("kinds", p.get("kind")),
        ):
            if isinstance(value, str) and value:
                found[field].add(value)
        licence = p.get("licence") if isinstance(p.get("licence"), dict) else {}
        uses.update(u for u in licence.get("allowed_uses") or [] if isinstance(u, str))
    result: dict[str, Any] = {k: sorted(v) for k, v in found.items()}
    result["keys"] = sorted(found["keys"], key=_key_order)
    result["uses"] = sorted(uses)
    result["items"] = items
    if len(service.facets_cache) > 256:
        service.facets_cache.clear()
    service.facets_cache[key] = (time.monotonic(), result)
    return FacetsOut(**result)


_NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def _key_order(key: str) -> tuple[int, int, str]:
    """Majors before minors, each by pitch class; anything unparsed last."""
    tonic, _, mode = key.partition(" ")
    if tonic in _NOTES:
        return (0 if mode == "major" else 1, _NOTES.index(tonic), key)
    return (2, 0, key)


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
    service: ServiceDep,
    file: Annotated[UploadFile, File(description="The audio file to check.")],
) -> WatermarkOut:
    folder = service.scratch_dir / uuid.uuid4().hex
    try:
        path = await run_in_threadpool(
            _save_audio, file, folder, "file", service.settings.upload_max_file_bytes
        )
        return await run_in_threadpool(_detect, service, principal, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _detect(service: Service, principal: Principal, path: Path) -> WatermarkOut:
    from audio.decode import Limits, UnusableFile, decode_audio

    settings = service.settings
    try:
        limits = Limits(
            max_bytes=settings.upload_max_file_bytes, max_seconds=settings.upload_max_seconds
        )
        audio = decode_audio(path, limits)
    except UnusableFile as err:
        raise HTTPException(422, detail=f"file: {err}") from err
    marker = service.watermarker()
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
    job = service.db.one(
        "SELECT * FROM jobs WHERE tenant = ? AND status = 'succeeded' "
        "AND json_extract(manifest, '$.watermark.payload') = ? ORDER BY finished DESC LIMIT 1",
        principal.tenant,
        payload,
    )
    if job is not None:
        scope = scope_for(service.db, principal.tenant)
        return WatermarkOut(
            **out,
            origin="yours",
            message="Marked by this deployment: a take one of your jobs made.",
            take=_summary(job, scope),
        )
    # Known here (the provenance log, or another tenant's job) — but not the caller's: say so,
    # and nothing about whose or what it is.
    known = service.provenance().find(int(payload, 16)) is not None
    if not known:
        known = (
            service.db.one(
                "SELECT 1 AS x FROM jobs WHERE json_extract(manifest, '$.watermark.payload') = ?",
                payload,
            )
            is not None
        )
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
