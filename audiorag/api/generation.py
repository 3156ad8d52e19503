"""From API bodies to the orchestrator's requests.

A job's *spec* (stored as JSON with the job) holds everything needed to run it again: the merged
generation settings, the catalogs (as store names, resolved when the job was accepted), the
pinned item ids and its input files: the reference clip and the in-paint source, as local paths
under data_dir/inputs, or — with shared storage (``AUDIORAG_STORAGE_URL``) — as the URLs they
were uploaded to when the job was accepted (``api.storage``; a worker fetches them first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Settings that map one to one onto GenerateRequest fields.
SETTING_FIELDS = (
    "prompt",
    "negative_prompt",
    "duration_s",
    "bpm",
    "key",
    "top_k",
    "strength",
    "steps",
    "cfg",
    "seed",
    "retrieval",
    "instrument",
    "genre",
    "inpaint_from_s",
    "inpaint_to_s",
    "formats",
    "roles",
)


def make_spec(
    settings: dict[str, Any],
    *,
    catalogs: list[str],
    pinned: list[str],
    like: Path | str | None = None,
    inpaint: Path | str | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """A job's stored spec. ``origin``: how a session take came from its parent ("rerun" or
    "inpaint"); a re-run of an in-painted take is both an in-paint and a re-run. ``like`` and
    ``inpaint``: a local path, or the URL of a copy on shared storage (kept as it is)."""
    return {
        "settings": {k: v for k, v in settings.items() if k in SETTING_FIELDS and v is not None},
        "catalogs": list(catalogs),
        "pinned": list(dict.fromkeys(pinned)),
        "like": str(like) if like else None,
        "inpaint": str(inpaint) if inpaint else None,
        "origin": origin,
    }


def build_generate_request(spec: dict[str, Any]) -> Any:
    """The orchestrator's ``GenerateRequest`` for a stored spec."""
    from rag.orchestrate import GenerateRequest

    fields: dict[str, Any] = dict(spec["settings"])
    for name in ("formats", "roles"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return GenerateRequest(
        **fields,
        # Always a tuple, never None: None would mean "every catalog in the store".
        catalogs=tuple(spec["catalogs"]),
        pinned=tuple(spec["pinned"]),
        like=Path(spec["like"]) if spec.get("like") else None,
        inpaint=Path(spec["inpaint"]) if spec.get("inpaint") else None,
    )
