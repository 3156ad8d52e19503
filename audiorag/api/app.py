"""The FastAPI app: ``create_app(settings)``; ``audiorag serve`` runs it under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from audiorag.api.jobs import Generates
from audiorag.api.metrics import RequestMetrics
from audiorag.api.routes import account, catalogs, health, jobs, search, sessions
from audiorag.api.service import Service
from audiorag.api.uploads import BodyLimit, body_cap
from audiorag.settings import Settings, get_settings
from audiorag.web import mount_web

log = logging.getLogger(__name__)

DESCRIPTION = """
Retrieval-augmented audio generation over licensed stem and MIDI catalogs.

Authenticate with an API key (`audiorag keys create --tenant T`) as `Authorization: Bearer <key>`
or `X-API-Key: <key>`. A key sees only its tenant's catalogs, items, sessions and jobs; any other
id answers 404.
"""


def create_app(
    settings: Settings | None = None,
    *,
    orchestrator: Generates | None = None,
    recover_jobs: bool = True,
) -> FastAPI:
    """The app for ``settings`` (default: from the environment).

    ``orchestrator`` replaces the one loaded from settings (anything with the orchestrator's
    ``generate``). ``recover_jobs`` fails jobs a previous run left unfinished; with several
    worker processes the parent does that once instead (see ``audiorag serve``).
    """
    settings = settings or get_settings()
    service = Service(settings, orchestrator=orchestrator)
    if recover_jobs:
        from audiorag.api.jobs import recover_interrupted

        recovered = recover_interrupted(service.db)
        if recovered:
            log.warning("%d unfinished job(s) from the previous run marked failed", recovered)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="audiorag",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    for router in (
        health.router,
        account.router,
        search.router,
        catalogs.router,
        jobs.router,
        sessions.router,
    ):
        app.include_router(router)
    mount_web(app)  # the sound-design page at /, served by the same app
    # Outermost first: count every request (413s included), then cap bodies before parsing.
    app.add_middleware(BodyLimit, max_bytes=body_cap(lambda: settings.upload_max_request_bytes))
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn's worker processes (``--factory``); the parent recovered jobs."""
    return create_app(get_settings(), recover_jobs=False)
