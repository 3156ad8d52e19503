"""Generation through the API with the real orchestrator (tiny CLAP + tiny generator, embedded
store): jobs, sessions with pins and re-runs, tenancy of seeds, guardrails as 422, and a restart
that keeps every session's history."""

from __future__ import annotations

import io
import json

import pytest
import soundfile as sf

from audiorag.api.db import now
from audiorag.democatalog.catalog import build_demo_catalog
from tests.test_api_support import LICENCE, api_settings, running_api, wait_job, wav_bytes

FAST = {"duration_s": 1.0, "steps": 3, "top_k": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clap_folder, tiny_generator_folder):
    base = tmp_path_factory.mktemp("api-gen")
    catalog = base / "demo"
    build_demo_catalog(catalog, count=2, seed=5)
    settings = api_settings(
        base / "data",
        tiny_clap_folder,
        generator_model=str(tiny_generator_folder),
        blocked_terms=["Daft Punk"],
        api_queue_size=4,
        upload_max_file_bytes=8 * 2**20,
        upload_max_request_bytes=32 * 2**20,
    )
    files = sorted(p for p in catalog.rglob("*") if p.suffix in {".wav", ".mid"})
    return {"settings": settings, "files": files}


def _upload(api, tenant: str, files) -> list[str]:
    response = api.client.post(
        "/v1/catalogs/kit/items",
        files=[("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in files],
        data={"licence": json.dumps(LICENCE)},
        headers=api.auth(tenant),
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["counts"] == {"indexed": len(files)}, report
    return [f["id"] for f in report["files"]]


def test_generation_sessions_and_restart(world):
    settings = world["settings"]
    with running_api(settings) as api:
        assert api.client.get("/readyz").json()["generator"] is True
        acme = _upload(api, "acme", world["files"])
        globex = _upload(api, "globex", world["files"][:2])
        headers = api.auth("acme")

        # a plain job: seeds come from acme's catalog only
        job = api.client.post(
            "/v1/generate", json={"prompt": "punchy drums", "seed": 1, **FAST}, headers=headers
        )
        assert job.status_code == 202, job.text
        done = wait_job(api, "acme", job.json()["id"])
        assert done["status"] == "succeeded", done
        # audio-to-audio starts part-way down the noise schedule: fewer steps than asked
        progress = done["progress"]
        assert 1 <= progress["total"] <= 3 and progress["done"] == progress["total"]
        manifest = api.client.get(done["links"]["manifest"], headers=headers).json()
        assert manifest["seeds"] and {s["id"] for s in manifest["seeds"]} <= set(acme)
        assert manifest["retrieval"]["filters"]["catalogs"] == ["acme/kit"]
        audio = api.client.get(done["links"]["audio_flac"], headers=headers)
        assert audio.status_code == 200 and audio.content[:4] == b"fLaC"

        # with an uploaded reference clip (multipart)
        like = api.client.post(
            "/v1/generate",
            data={"request": json.dumps({"prompt": "like this", **FAST})},
            files={"like": ("ref.wav", wav_bytes(1.0), "audio/wav")},
            headers=headers,
        )
        assert like.status_code == 202, like.text
        assert wait_job(api, "acme", like.json()["id"])["status"] == "succeeded"

        # refused at once: a blocked term, settings the model cannot honour
        blocked = api.client.post(
            "/v1/generate", json={"prompt": "drums like daft-punk", **FAST}, headers=headers
        )
        assert blocked.status_code == 422
        assert blocked.json()["detail"]["blocked_term"] == "Daft Punk"
        too_long = api.client.post(
            "/v1/generate", json={"prompt": "x", "duration_s": 500}, headers=headers
        )
        assert too_long.status_code == 422 and "duration" in too_long.text

        # globex renders from its own items only, even with the same prompt
        other = api.client.post(
            "/v1/generate", json={"prompt": "punchy drums", **FAST}, headers=api.auth("globex")
        )
        other_done = wait_job(api, "globex", other.json()["id"])
        other_manifest = api.client.get(
            other_done["links"]["manifest"], headers=api.auth("globex")
        ).json()
        assert {s["id"] for s in other_manifest["seeds"]} <= set(globex)

        # a session: pins always seed; a re-run changes only seed / strength
        session = api.client.post(
            "/v1/sessions",
            json={
                "name": "kit study",
                "catalogs": ["kit"],
                "pins": [acme[0]],
                "defaults": {"prompt": "warm groove", **FAST, "top_k": 1},
            },
            headers=headers,
        ).json()
        sid = session["id"]
        first = wait_job(
            api,
            "acme",
            api.client.post(
                f"/v1/sessions/{sid}/generate", json={"seed": 4}, headers=headers
            ).json()["id"],
        )
        assert first["status"] == "succeeded", first
        rerun = api.client.post(
            f"/v1/sessions/{sid}/takes/{first['take_id']}/rerun",
            json={"seed": 9, "strength": 0.8},
            headers=headers,
        )
        second = wait_job(api, "acme", rerun.json()["id"])
        assert second["status"] == "succeeded", second
        # in-paint a range of the first take, from its stored audio (no upload)
        painted = api.client.post(
            f"/v1/sessions/{sid}/takes/{first['take_id']}/inpaint",
            json={"from_s": 0.25, "to_s": 0.75, "seed": 3},
            headers=headers,
        )
        assert painted.status_code == 202, painted.text
        third = wait_job(api, "acme", painted.json()["id"])
        assert third["status"] == "succeeded", third
        takes = api.client.get(f"/v1/sessions/{sid}/takes", headers=headers).json()["takes"]
        assert len(takes) == 3
        assert takes[2]["parent_take"] == first["take_id"]
        assert takes[2]["inpaint"] == {"from_s": 0.25, "to_s": 0.75}
        assert takes[2]["manifest"]["mode"] == "in-paint"
        assert takes[2]["manifest"]["request"]["inpaint_to_s"] == 0.75
        # the in-painted take keeps the parent's length
        wavs = [
            api.client.get(t["job"]["links"]["audio_wav"], headers=headers).content
            for t in (takes[0], takes[2])
        ]
        lengths = [sf.info(io.BytesIO(w)).frames for w in wavs]
        assert lengths[0] == lengths[1], lengths
        takes = takes[:2]
        for take in takes:
            pinned = [s for s in take["manifest"]["seeds"] if s["pinned"]]
            assert [s["id"] for s in pinned] == [acme[0]]
        requests = [t["manifest"]["request"] for t in takes]
        assert [r["seed"] for r in requests] == [4, 9]
        assert requests[1]["strength"] == 0.8
        assert requests[0]["prompt"] == requests[1]["prompt"] == "warm groove"
        assert takes[1]["parent_take"] == first["take_id"]
        history = takes
        # a job left "running" by a crash, to see the restart deal with it
        api.service.db.run(
            "INSERT INTO jobs (id, tenant, session_id, status, spec, created) "
            "VALUES ('crashed', 'acme', ?, 'running', '{}', ?)",
            sid,
            now(),
        )

    # a restart keeps sessions, takes and manifests; the orphaned job is failed with a reason
    with running_api(settings, tenants=("acme",)) as api:
        headers = api.auth("acme")
        takes = api.client.get(f"/v1/sessions/{sid}/takes", headers=headers).json()["takes"]
        assert [t["manifest"] for t in takes[:2]] == [t["manifest"] for t in history]
        crashed = api.client.get("/v1/jobs/crashed", headers=headers).json()
        assert crashed["status"] == "failed" and "interrupted" in crashed["error"]
        audio = api.client.get(f"/v1/jobs/{first['id']}/audio?format=wav", headers=headers)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
        assert api.client.get(f"/v1/sessions/{sid}", headers=headers).json()["pins"] == [acme[0]]
