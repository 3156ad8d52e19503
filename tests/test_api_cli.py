"""`serve`, `keys` and `grants` commands, and a CLI-indexed catalog granted to one tenant."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from audiorag.api.service import DeploymentError
from audiorag.cli.serve import main
from audiorag.democatalog.catalog import build_demo_catalog
from audiorag.settings import get_settings
from tests.test_api_support import (
    LICENCE,
    SteppingGenerator,
    api_settings,
    running_api,
    wav_bytes,
)


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_clap_folder):
    monkeypatch.setenv("AUDIORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUDIORAG_CLAP_MODEL", str(tiny_clap_folder))
    monkeypatch.setenv("AUDIORAG_WORKERS", "0")
    monkeypatch.delenv("AUDIORAG_QDRANT_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_keys_create_list_revoke(env):
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--tenant", "acme", "--name", "ci"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("ark_")
    listed = json.loads(runner.invoke(main, ["keys", "list", "--json"]).stdout)
    assert [(k["tenant"], k["name"], k["revoked"]) for k in listed] == [("acme", "ci", None)]
    assert key not in json.dumps(listed)  # the key is shown once, never listed
    assert runner.invoke(main, ["keys", "revoke", listed[0]["id"]]).exit_code == 0
    assert runner.invoke(main, ["keys", "revoke", listed[0]["id"]]).exit_code == 1
    assert runner.invoke(main, ["keys", "create", "--tenant", "Bad Tenant!"]).exit_code == 2


def test_serve_refuses_several_workers_on_the_embedded_store(env, monkeypatch):
    result = CliRunner().invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "AUDIORAG_QDRANT_URL" in result.output and "one process" in result.output
    monkeypatch.setenv("AUDIORAG_API_WORKERS", "3")
    get_settings.cache_clear()
    from audiorag.api import create_app

    with pytest.raises(DeploymentError, match="Qdrant server"):
        create_app(get_settings())


def test_granted_catalog_is_read_only_and_only_for_its_tenant(env, tiny_clap_folder):
    from audiorag.cli.app import run_index

    folder = env / "label"
    build_demo_catalog(folder, count=2, seed=11)
    settings = get_settings()
    report = run_index(settings, folder, catalog="label")
    assert report.counts["indexed"] == 4
    runner = CliRunner()
    granted = runner.invoke(main, ["grants", "add", "acme", "label", "--as", "northside"])
    assert granted.exit_code == 0, granted.output
    assert runner.invoke(main, ["grants", "add", "acme", "globex/loops"]).exit_code == 2

    with running_api(
        api_settings(settings.data_dir, tiny_clap_folder), orchestrator=SteppingGenerator()
    ) as api:
        catalogs = api.client.get("/v1/catalogs", headers=api.auth("acme")).json()["catalogs"]
        assert catalogs == [{"name": "northside", "items": 4, "writable": False}]
        hits = api.client.post(
            "/v1/search", json={"catalogs": ["northside"], "limit": 10}, headers=api.auth("acme")
        ).json()["hits"]
        assert len(hits) == 4 and {h["catalog"] for h in hits} == {"northside"}
        audio = api.client.get(f"/v1/items/{hits[0]['id']}/audio", headers=api.auth("acme"))
        assert audio.status_code == 200  # the root recorded at indexing serves previews
        # the other tenant sees nothing of it, by any name
        for name in ("northside", "label"):
            response = api.client.post(
                "/v1/search", json={"catalogs": [name]}, headers=api.auth("globex")
            )
            assert response.status_code == 404
        assert api.client.post(
            "/v1/search", json={"limit": 50}, headers=api.auth("globex")
        ).json() == {"hits": []}
        assert (
            api.client.get(f"/v1/items/{hits[0]['id']}", headers=api.auth("globex")).status_code
            == 404
        )
        # granted catalogs take no uploads
        upload = api.client.post(
            "/v1/catalogs/northside/items",
            files=[("files", ("a.wav", wav_bytes(), "audio/wav"))],
            data={"licence": json.dumps(LICENCE)},
            headers=api.auth("acme"),
        )
        assert upload.status_code == 409
    assert runner.invoke(main, ["grants", "remove", "acme", "northside"]).exit_code == 0
    listed = runner.invoke(main, ["grants", "list"])
    assert "northside" not in listed.stdout
