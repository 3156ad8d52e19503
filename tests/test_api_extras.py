"""The API's smaller routes: who am I, facets, spectrograms, signed URLs, in-painting a session
take, pin-time licence checks and watermark tracing — each with its tenant boundary.

Generation runs through :class:`SteppingGenerator` (the queue, not a model); the in-paint route
through the real orchestrator is covered in ``test_api_generate.py``.
"""

from __future__ import annotations

import io
import json
import time
import uuid

import numpy as np
import pytest
import soundfile as sf

from audiorag.api.db import now
from audiorag.democatalog.catalog import build_demo_catalog
from tests.test_api_support import (
    LICENCE,
    SteppingGenerator,
    api_settings,
    running_api,
    upload_folder,
    wait_job,
    wav_bytes,
)

SEARCH_ONLY = {**LICENCE, "id": "LIC-SEARCH-ONLY", "allowed_uses": ["search", "preview"]}


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_clap_folder):
    base = tmp_path_factory.mktemp("api-extras")
    catalog = base / "demo"
    build_demo_catalog(catalog, count=3, seed=4)
    generator = SteppingGenerator(steps=2, step_s=0)
    settings = api_settings(base / "data", tiny_clap_folder, api_queue_size=8)
    with running_api(settings, orchestrator=generator) as api:
        api.items["acme"] = upload_folder(api, "acme", "loops", catalog)["files"]
        report = api.client.post(
            "/v1/catalogs/tones/items",
            files=[("files", ("tone.wav", wav_bytes(1.0, freq=330), "audio/wav"))],
            data={"licence": json.dumps(LICENCE)},
            headers=api.auth("globex"),
        ).json()
        assert report["counts"] == {"indexed": 1}, report
        api.items["globex"] = report["files"]
        yield api


def _job(api, tenant: str, **body) -> dict:
    response = api.client.post(
        "/v1/generate", json={"prompt": "x", "duration_s": 1, **body}, headers=api.auth(tenant)
    )
    assert response.status_code == 202, response.text
    job = wait_job(api, tenant, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def _unauthenticated(api, url: str, **kwargs):
    """A request with no key at all (the client sends no default headers)."""
    return api.client.get(url, **kwargs)


# --- /v1/me and /v1/facets ----------------------------------------------------------------------


def test_me_names_the_tenant_key_and_catalogs(api):
    body = api.client.get("/v1/me", headers=api.auth("acme")).json()
    assert body["tenant"] == "acme"
    assert api.keys["acme"].startswith(f"ark_{body['key_id']}.")
    assert body["catalogs"] == [{"name": "loops", "writable": True}]
    other = api.client.get("/v1/me", headers=api.auth("globex")).json()
    assert other["tenant"] == "globex" and [c["name"] for c in other["catalogs"]] == ["tones"]
    assert api.client.get("/v1/me").status_code == 401


def test_facets_cover_only_the_callers_catalogs(api):
    acme = api.client.get("/v1/facets", headers=api.auth("acme")).json()
    payloads = [
        api.client.get(f"/v1/items/{f['id']}", headers=api.auth("acme")).json()["payload"]
        for f in api.items["acme"]
    ]
    assert acme["items"] == len(payloads)
    assert acme["instruments"] == sorted({p["instrument"] for p in payloads if p["instrument"]})
    assert acme["genres"] == sorted({p["genre"] for p in payloads if p.get("genre")})
    assert set(acme["keys"]) == {p["key"] for p in payloads if p.get("key")}
    assert set(acme["kinds"]) == {"stem", "midi"}
    assert "search" in acme["uses"]
    globex = api.client.get("/v1/facets", headers=api.auth("globex")).json()
    # globex's one tone has no instrument / style / key ground truth: nothing of acme's leaks
    assert globex["items"] == 1 and globex["kinds"] == ["stem"]
    assert set(globex["instruments"]).isdisjoint(acme["instruments"]) or not globex["instruments"]
    assert globex["uses"] == sorted(LICENCE["allowed_uses"])
    # cached, and refreshed by an upload into the catalog
    assert api.client.get("/v1/facets", headers=api.auth("globex")).json() == globex
    api.client.post(
        "/v1/catalogs/tones/items",
        files=[("files", ("tone2.wav", wav_bytes(1.0, freq=550), "audio/wav"))],
        data={"licence": json.dumps(SEARCH_ONLY)},
        headers=api.auth("globex"),
    )
    again = api.client.get("/v1/facets", headers=api.auth("globex")).json()
    assert again["items"] == 2 and "preview" in again["uses"]


# --- spectrogram and signed URLs ----------------------------------------------------------------


def test_job_spectrogram_and_signed_links(api):
    job = _job(api, "acme")
    links = job["links"]
    assert links["spectrogram"] == f"/v1/jobs/{job['id']}/spectrogram"
    png = api.client.get(links["spectrogram"], headers=api.auth("acme"))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    # the signed URLs work with no key at all, range requests included
    signed_png = _unauthenticated(api, links["signed_spectrogram"])
    assert signed_png.status_code == 200 and signed_png.content == png.content
    audio = _unauthenticated(api, links["signed_audio_wav"])
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    partial = _unauthenticated(api, links["signed_audio_wav"], headers={"Range": "bytes=0-99"})
    assert partial.status_code == 206 and len(partial.content) == 100
    flac = _unauthenticated(api, links["signed_audio_flac"])
    assert flac.status_code == 200 and flac.content[:4] == b"fLaC"
    # Bearer still works on those routes
    assert api.client.get(links["audio_wav"], headers=api.auth("acme")).status_code == 200
    # another tenant: 404 with its key, and its key's token cannot reach it either
    assert api.client.get(links["spectrogram"], headers=api.auth("globex")).status_code == 404
    globex_key = api.client.get("/v1/me", headers=api.auth("globex")).json()["key_id"]
    stolen = api.service.signer.url(globex_key, links["spectrogram"])
    assert _unauthenticated(api, stolen).status_code == 404
    # a job that has not finished has no spectrogram
    assert (
        api.client.get(
            f"/v1/jobs/{uuid.uuid4().hex}/spectrogram", headers=api.auth("acme")
        ).status_code
        == 404
    )


def test_signed_tokens_expire_are_bound_to_path_and_key(api):
    job = _job(api, "acme")
    path = f"/v1/jobs/{job['id']}/audio"
    signer = api.service.signer
    key_id = api.client.get("/v1/me", headers=api.auth("acme")).json()["key_id"]
    token, expires = signer.token(key_id, path)
    assert expires - time.time() <= signer.ttl_s + 1
    assert _unauthenticated(api, path, params={"token": token}).status_code == 200

    expired, _ = signer.token(key_id, path, now=time.time() - signer.ttl_s - 5)
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    kid, exp, sig = token.split(".")
    extended = f"{kid}.{int(exp) + 3600}.{sig}"  # a longer life is a different signature
    other_path, _ = signer.token(key_id, f"/v1/jobs/{job['id']}/spectrogram")
    for bad in (expired, forged, extended, other_path, "garbage", f"{kid}.x.{sig}"):
        response = _unauthenticated(api, path, params={"token": bad})
        assert response.status_code == 401, (bad, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    # a token is no key: the JSON routes refuse it
    job_url = f"/v1/jobs/{job['id']}"
    assert _unauthenticated(api, job_url, params={"token": token}).status_code == 401
    item = api.items["acme"][0]["id"]
    item_token, _ = signer.token(key_id, f"/v1/jobs/{job['id']}")
    assert (
        _unauthenticated(api, f"/v1/jobs/{job['id']}", params={"token": item_token}).status_code
        == 401
    )
    # a revoked key takes its tokens with it
    from audiorag.api.auth import create_key, revoke_key

    short_key_id, short_key = create_key(api.service.db, "acme", name="short-lived")
    headers = {"Authorization": f"Bearer {short_key}"}
    hit = api.client.get(f"/v1/items/{item}", headers=headers).json()
    assert hit["links"]["audio"] == f"/v1/items/{item}/audio"
    signed = hit["links"]["audio_signed"]
    assert f"token={short_key_id}." in signed
    assert _unauthenticated(api, signed).status_code == 200
    revoke_key(api.service.db, short_key_id)
    assert _unauthenticated(api, signed).status_code == 401


def test_search_hits_carry_signed_preview_links(api):
    hits = api.client.post(
        "/v1/search", json={"text": "drums", "limit": 3}, headers=api.auth("acme")
    ).json()["hits"]
    assert hits
    for hit in hits:
        response = _unauthenticated(api, hit["links"]["audio_signed"])
        assert response.status_code == 200 and response.headers["content-type"].startswith("audio/")
    # the token of acme's item, replayed on globex's item path, is refused
    globex_item = api.items["globex"][0]["id"]
    token = hits[0]["links"]["audio_signed"].split("token=")[1]
    replay = _unauthenticated(api, f"/v1/items/{globex_item}/audio", params={"token": token})
    assert replay.status_code == 401


# --- pins must be licensed for generation-seed --------------------------------------------------


def test_pinning_an_item_without_the_seed_licence_is_422(api):
    headers = api.auth("acme")
    report = api.client.post(
        "/v1/catalogs/loops/items",
        files=[("files", ("search-only.wav", wav_bytes(1.0, freq=880), "audio/wav"))],
        data={"licence": json.dumps(SEARCH_ONLY)},
        headers=headers,
    ).json()
    item = report["files"][0]["id"]
    session = api.client.post("/v1/sessions", json={"name": "lic"}, headers=headers).json()
    refused = api.client.put(f"/v1/sessions/{session['id']}/pins/{item}", headers=headers)
    assert refused.status_code == 422
    assert "not licensed for generation-seed" in refused.json()["detail"]
    assert "search-only.wav" in refused.json()["detail"]
    assert api.client.get(f"/v1/sessions/{session['id']}", headers=headers).json()["pins"] == []
    created = api.client.post("/v1/sessions", json={"name": "x", "pins": [item]}, headers=headers)
    assert created.status_code == 422 and "generation-seed" in created.text
    generate = api.client.post(
        "/v1/generate", json={"prompt": "x", "pinned": [item]}, headers=headers
    )
    assert generate.status_code == 422 and "generation-seed" in generate.text
    # globex cannot learn about it through the licence message: still a 404 for them
    other = api.client.post("/v1/sessions", json={"name": "g"}, headers=api.auth("globex")).json()
    assert (
        api.client.put(
            f"/v1/sessions/{other['id']}/pins/{item}", headers=api.auth("globex")
        ).status_code
        == 404
    )


# --- in-painting a session take -----------------------------------------------------------------


def test_inpaint_a_session_take_uses_its_stored_audio(api):
    headers = api.auth("acme")
    seedable = [
        f["id"]
        for f in api.items["acme"]
        if "generation-seed"
        in api.client.get(f"/v1/items/{f['id']}", headers=headers).json()["payload"]["licence"][
            "allowed_uses"
        ]
    ]
    session = api.client.post(
        "/v1/sessions",
        json={
            "name": "paint",
            "pins": seedable[:1],
            "defaults": {"prompt": "moody pads", "duration_s": 2, "strength": 0.4},
        },
        headers=headers,
    ).json()
    sid = session["id"]
    first = wait_job(
        api,
        "acme",
        api.client.post(f"/v1/sessions/{sid}/generate", json={"seed": 2}, headers=headers).json()[
            "id"
        ],
    )
    assert first["status"] == "succeeded"
    url = f"/v1/sessions/{sid}/takes/{first['take_id']}/inpaint"
    response = api.client.post(
        url, json={"from_s": 0.5, "to_s": 1.25, "seed": 5, "prompt": "brighter"}, headers=headers
    )
    assert response.status_code == 202, response.text
    painted = wait_job(api, "acme", response.json()["id"])
    assert painted["status"] == "succeeded" and painted["session_id"] == sid
    request = api.generator.requests[-1]
    assert (request.inpaint_from_s, request.inpaint_to_s) == (0.5, 1.25)
    assert request.prompt == "brighter" and request.seed == 5
    assert request.strength is None  # in-painting's own default, not the parent's 0.4
    assert request.pinned == tuple(seedable[:1])
    # the source is a copy of the take's own audio, kept with the job's inputs
    assert request.inpaint is not None and request.inpaint.is_file()
    original = api.client.get(first["links"]["audio_wav"], headers=headers).content
    assert request.inpaint.read_bytes() == original
    assert str(request.inpaint).startswith(str(api.service.folders.inputs))

    takes = api.client.get(f"/v1/sessions/{sid}/takes", headers=headers).json()["takes"]
    assert [t["job"]["id"] for t in takes] == [first["id"], painted["id"]]
    assert takes[1]["parent_take"] == first["take_id"]
    assert takes[1]["inpaint"] == {"from_s": 0.5, "to_s": 1.25}
    assert (takes[0]["origin"], takes[1]["origin"]) == (None, "inpaint")
    assert takes[0]["inpaint"] is None
    assert takes[1]["settings"]["prompt"] == "brighter"
    assert "signed_audio_wav" in takes[1]["job"]["links"]

    # the in-painted take can be re-run (same range, new seed) and in-painted again
    rerun = api.client.post(
        f"/v1/sessions/{sid}/takes/{painted['take_id']}/rerun", json={"seed": 8}, headers=headers
    )
    assert wait_job(api, "acme", rerun.json()["id"])["status"] == "succeeded"
    assert api.generator.requests[-1].inpaint_to_s == 1.25
    again = api.client.get(f"/v1/sessions/{sid}/takes", headers=headers).json()["takes"][-1]
    # a re-run of an in-paint: told apart from the in-paint itself, its range kept
    assert again["origin"] == "rerun" and again["parent_take"] == painted["take_id"]
    assert again["inpaint"] == {"from_s": 0.5, "to_s": 1.25}

    # refusals: bad range, unknown take, another tenant's session
    bad = api.client.post(url, json={"from_s": 1.0, "to_s": 0.5}, headers=headers)
    assert bad.status_code == 422
    assert api.client.post(url, json={"from_s": 0.1}, headers=headers).status_code == 422
    missing = f"/v1/sessions/{sid}/takes/{uuid.uuid4().hex}/inpaint"
    assert (
        api.client.post(missing, json={"from_s": 0, "to_s": 1}, headers=headers).status_code == 404
    )
    foreign = api.client.post(url, json={"from_s": 0, "to_s": 1}, headers=api.auth("globex"))
    assert foreign.status_code == 404


# --- watermark ----------------------------------------------------------------------------------


def _music(seconds: float = 8.0, sr: int = 44100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    x = x + 0.05 * rng.standard_normal(t.size)
    return np.stack([x, x]).astype(np.float32)


def _wav(audio: np.ndarray, sr: int = 44100) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, sr, subtype="PCM_16", format="WAV")  # 8 s stereo < 2 MiB
    return buffer.getvalue()


def _detect(api, tenant: str, data: bytes, name: str = "take.wav"):
    return api.client.post(
        "/v1/watermark/detect",
        files={"file": (name, data, "application/octet-stream")},
        headers=api.auth(tenant),
    )


def test_watermark_detect_traces_only_the_callers_takes(api):
    from audiorag.components import provenance_log

    service = api.service
    marker = service.models.watermarker()
    item = api.items["acme"][0]["id"]
    payload_item = api.client.get(f"/v1/items/{item}", headers=api.auth("acme")).json()
    licence = payload_item["payload"]["licence"]
    # An 8 s take of acme's (the tiny test generator renders at most ~4 s; detection wants ~6):
    # marked with the service's own watermarker, its manifest recorded as a real render's is.
    payload = 0x5EED1234
    manifest = {
        "take_id": "20250101-000000-abcdef",
        "created_at": "2025-01-01T00:00:00Z",
        "prompt": {"user": "late night groove", "enriched": "late night groove, funk"},
        "request": {"prompt": "late night groove"},
        "model": {"id": "tiny"},
        "seeds": [
            {
                "id": item,
                "path": payload_item["payload"]["path"],
                "catalog": "acme/loops",
                "licence": licence,
            }
        ],
        "watermark": {"scheme": marker.id, "payload": f"{payload:08x}", "payload_int": payload},
    }
    provenance_log(api.settings).record(payload, manifest)
    service.db.run(
        "INSERT INTO jobs (id, tenant, status, spec, take_id, manifest, created, finished) "
        "VALUES (?, 'acme', 'succeeded', '{}', ?, json(?), ?, ?)",
        "wmjob",
        manifest["take_id"],
        json.dumps(manifest),
        now(),
        now(),
    )
    marked = _wav(marker.embed(_music(), 44100, payload))

    mine = _detect(api, "acme", marked)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["present"] is True and body["payload"] == "5eed1234"
    assert body["confidence"] > 0.9 and body["scheme"] == marker.id
    assert body["origin"] == "yours" and body["details"]
    take = body["take"]
    assert take["job_id"] == "wmjob" and take["take_id"] == manifest["take_id"]
    assert take["prompt"] == "late night groove"
    assert take["seeds"][0]["id"] == item and take["seeds"][0]["catalog"] == "loops"
    assert take["seeds"][0]["holder"] == licence["holder"]
    assert take["seeds"][0]["allowed_uses"] == licence["allowed_uses"]

    # globex learns it is this deployment's mark, and nothing else
    theirs = _detect(api, "globex", marked).json()
    assert theirs["present"] is True and theirs["origin"] == "this-deployment"
    assert theirs["take"] is None
    text = json.dumps(theirs)
    for secret in ("late night groove", item, "wmjob", manifest["take_id"], licence["holder"]):
        assert secret not in text

    # a mark with a payload nobody recorded, and a file with no mark
    stray = _detect(api, "acme", _wav(marker.embed(_music(seed=1), 44100, 0x0BADF00D))).json()
    assert stray["present"] is True and stray["origin"] == "unknown" and stray["take"] is None
    clean = _detect(api, "acme", _wav(_music(seed=2))).json()
    assert clean["present"] is False and clean["origin"] is None and clean["payload"] is None

    # uploads are checked like any other: content, size; and the key is required
    assert _detect(api, "acme", b"%PDF-1.7 not audio", "x.wav").status_code == 422
    too_big = b"RIFF" + b"\0" * (api.settings.upload_max_file_bytes + 10)
    assert _detect(api, "acme", too_big).status_code in (413, 422)
    assert (
        api.client.post(
            "/v1/watermark/detect", files={"file": ("t.wav", marked, "audio/wav")}
        ).status_code
        == 401
    )
