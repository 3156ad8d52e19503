"""Prometheus metrics, one registry per app (several apps in one test process must not clash).

Requests are labelled by the route *template* (``/v1/items/{item_id}``), never the raw path, so
ids cannot blow up the label cardinality. With several worker processes each exposes its own
counters; scrape them per process or run one worker per container.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "audiorag_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "audiorag_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "audiorag_generation_queue_depth",
            "Generation jobs waiting in this process's queue.",
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "audiorag_render_seconds",
            "Seconds to render one generation job.",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200),
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "audiorag_search_seconds",
            "Search latency (embedding the query + store searches + fusion).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.uploads = Counter(
            "audiorag_uploaded_files_total",
            "Uploaded files by outcome.",
            ["outcome"],
            registry=self.registry,
        )


class RequestMetrics:
    """ASGI middleware counting every response by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.request_seconds.labels(template).observe(time.perf_counter() - started)
