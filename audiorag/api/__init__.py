"""The HTTP service: search, items, catalog uploads, generation jobs, sessions, health/metrics.

``create_app(settings)`` builds the FastAPI app; ``audiorag serve`` runs it.
"""

from audiorag.api.app import create_app

__all__ = ["create_app"]
