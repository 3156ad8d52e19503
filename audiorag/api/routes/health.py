"""Liveness, readiness and Prometheus metrics (no API key: probes and scrapers carry none, and
nothing here names a tenant)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from audiorag.api.parts import Jobs, MetricsDep, ModelsDep
from audiorag.api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Store, CLAP and generator are loaded (503 until then)",
    responses={503: {"model": Readiness}},
)
def readyz(models: ModelsDep) -> Response:
    state = Readiness(**models.readiness())
    return JSONResponse(state.model_dump(), status_code=200 if state.ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(metrics: MetricsDep, jobs: Jobs) -> Response:
    metrics.queue_depth.set(jobs.depth)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
