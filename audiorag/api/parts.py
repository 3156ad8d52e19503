"""The service's parts as FastAPI dependencies: a route names the parts it uses (``Db``,
``Ready``, ``Jobs``…) and gets only those, never the whole service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from audiorag.api.db import Database
from audiorag.api.facets import FacetsCache
from audiorag.api.folders import Folders
from audiorag.api.ingest import CatalogUploads
from audiorag.api.jobs import JobQueue
from audiorag.api.metrics import Metrics
from audiorag.api.models import Loaded, Models
from audiorag.api.service import Service
from audiorag.api.signing import UrlSigner
from audiorag.settings import Settings


def _service(request: Request) -> Service:
    return request.app.state.service


def _settings(request: Request) -> Settings:
    return _service(request).settings


def _db(request: Request) -> Database:
    return _service(request).db


def _models(request: Request) -> Models:
    return _service(request).models


def _loaded(request: Request) -> Loaded:
    """Store and CLAP, once loaded; 503 with Retry-After before."""
    models = _models(request)
    loaded = models.loaded()
    if loaded is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=models.load_error or "the service is still loading its models and store",
            headers={"Retry-After": "5"},
        )
    return loaded


def _jobs(request: Request) -> JobQueue:
    return _service(request).jobs


def _folders(request: Request) -> Folders:
    return _service(request).folders


def _signer(request: Request) -> UrlSigner:
    return _service(request).signer


def _metrics(request: Request) -> Metrics:
    return _service(request).metrics


def _facets(request: Request) -> FacetsCache:
    return _service(request).facets


def _uploads(request: Request) -> CatalogUploads:
    return _service(request).uploads


Config = Annotated[Settings, Depends(_settings)]
Db = Annotated[Database, Depends(_db)]
ModelsDep = Annotated[Models, Depends(_models)]
Ready = Annotated[Loaded, Depends(_loaded)]
Jobs = Annotated[JobQueue, Depends(_jobs)]
FoldersDep = Annotated[Folders, Depends(_folders)]
Signer = Annotated[UrlSigner, Depends(_signer)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
Facets = Annotated[FacetsCache, Depends(_facets)]
Uploads = Annotated[CatalogUploads, Depends(_uploads)]
