"""docs/schema/ is rendered from the models: the committed files must match them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

RENDER = Path(__file__).resolve().parents[1] / "docs" / "schema" / "render.py"


def test_committed_schema_docs_match_the_models():
    spec = importlib.util.spec_from_file_location("render_schema", RENDER)
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    files = render.render()
    assert {p.name for p in files} == {
        "item-payload.schema.json",
        "take-manifest.schema.json",
        "README.md",
    }
    assert render.stale() == [], "run .venv/bin/python docs/schema/render.py"
    assert (
        "| `licence` | [PayloadLicence](#payloadlicence) | yes |"
        in files[RENDER.parent / "README.md"]
    )
