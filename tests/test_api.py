"""The HTTP API in-process: the real app over the embedded Edge store and a tiny real CLAP.

Two tenants upload the same small demo catalog under the same catalog name; everything below
checks what each may see and do. Generation here runs through :class:`SteppingGenerator` (queue
mechanics); ``test_api_generate.py`` runs the real orchestrator end to end.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from pathlib import Path

import pytest

from audiorag.democatalog.catalog import build_demo_catalog
from tests.test_api_support import (
    LICENCE,
    Api,
    SteppingGenerator,
    api_settings,
    running_api,
    upload_folder,
    wait_job,
    wav_bytes,
)


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_clap_folder):
    base = tmp_path_factory.mktemp("api")
    catalog = base / "demo"
    build_demo_catalog(catalog, count=4, seed=3)
    generator = SteppingGenerator()
    with running_api(api_settings(base / "data", tiny_clap_folder), orchestrator=generator) as api:
        for tenant in ("acme", "globex"):
            report = upload_folder(api, tenant, "loops", catalog)
            assert report["counts"] == {"indexed": 8}, report
            api.items[tenant] = report["files"]
        yield api


def ids(api: Api, tenant: str) -> set[str]:
    return {f["id"] for f in api.items[tenant]}


# --- health, metrics, auth -----------------------------------------------------------------------


def test_health_readiness_and_metrics(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    api.client.post("/v1/search", json={"text": "drums"}, headers=api.auth("acme"))
    text = api.client.get("/metrics").text
    assert 'route="/v1/search"' in text and "audiorag_http_requests_total" in text
    assert "audiorag_search_seconds_count" in text
    assert "audiorag_generation_queue_depth" in text and "audiorag_render_seconds" in text
    assert api.client.get("/docs").status_code == 200
    assert "/v1/search" in api.client.get("/openapi.json").json()["paths"]


PROTECTED = [
    ("post", "/v1/search", {"json": {"text": "x"}}),
    ("get", f"/v1/items/{uuid.uuid4()}", {}),
    ("get", "/v1/catalogs", {}),
    ("post", "/v1/generate", {"json": {"prompt": "x"}}),
    ("get", f"/v1/jobs/{uuid.uuid4().hex}", {}),
    ("get", "/v1/sessions", {}),
    ("post", "/v1/sessions", {"json": {"name": "x"}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED)
def test_missing_wrong_or_revoked_key_is_401(api, method, path, kwargs):
    from audiorag.api.auth import create_key, revoke_key

    call = getattr(api.client, method)
    _, revoked = create_key(api.service.db, "acme")
    revoke_key(api.service.db, revoked.split(".")[0].removeprefix("ark_"))
    forged = api.keys["acme"][:-4] + ("AAAA" if not api.keys["acme"].endswith("AAAA") else "BBBB")
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {forged}"},
        {"X-API-Key": forged},
        {"Authorization": f"Bearer {revoked}"},
        {"Authorization": f"Basic {api.keys['acme']}"},
    ):
        response = call(path, headers=headers, **kwargs)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    # both header forms work with a live key
    assert api.client.get("/v1/catalogs", headers={"X-API-Key": api.keys["acme"]}).is_success
    assert api.client.get("/v1/catalogs", headers=api.auth("acme")).is_success


def test_keys_are_hashed_at_rest(api):
    rows = api.service.db.all("SELECT * FROM api_keys")
    stored = json.dumps(rows)
    for key in api.keys.values():
        assert key not in stored and key.split(".")[1] not in stored


# --- catalogs, search, items ---------------------------------------------------------------------


def test_each_tenant_sees_its_own_catalog_under_the_same_name(api):
    for tenant in ("acme", "globex"):
        body = api.client.get("/v1/catalogs", headers=api.auth(tenant)).json()
        assert body == {"catalogs": [{"name": "loops", "items": 8, "writable": True}]}
    assert ids(api, "acme").isdisjoint(ids(api, "globex"))  # same files, separate items


def test_search_json_stays_inside_the_tenant(api):
    for tenant, other in (("acme", "globex"), ("globex", "acme")):
        response = api.client.post(
            "/v1/search", json={"text": "drum loop", "limit": 50}, headers=api.auth(tenant)
        )
        assert response.status_code == 200, response.text
        hits = response.json()["hits"]
        assert {h["id"] for h in hits} == ids(api, tenant)
        assert all(h["catalog"] == "loops" == h["payload"]["catalog"] for h in hits)
        assert {h["id"] for h in hits}.isdisjoint(ids(api, other))
    filtered = api.client.post(
        "/v1/search", json={"kind": "midi", "instrument": "drums"}, headers=api.auth("acme")
    ).json()["hits"]
    assert filtered and all(
        h["payload"]["kind"] == "midi" and h["payload"]["instrument"] == "drums" for h in filtered
    )


@pytest.mark.parametrize(
    "body",
    [
        {"catalogs": ["nope"]},
        {"catalogs": ["globex/loops"]},  # the other tenant's store name
        {"catalogs": ["acme/loops"]},  # even one's own store name is not a catalog name
    ],
)
def test_search_in_a_catalog_that_is_not_yours_is_404(api, body):
    response = api.client.post("/v1/search", json=body, headers=api.auth("acme"))
    assert response.status_code == 404


def test_search_rejects_unknown_fields_and_bad_keys(api):
    headers = api.auth("acme")
    assert api.client.post("/v1/search", json={"catalog": "x"}, headers=headers).status_code == 422
    bad_key = api.client.post("/v1/search", json={"key": "Q minor"}, headers=headers)
    assert bad_key.status_code == 422 and "not a key" in bad_key.text
    assert api.client.post("/v1/search", content=b"text", headers=headers).status_code == 415


def test_search_by_uploaded_example_clip(api):
    headers = api.auth("acme")
    stem = next(f for f in api.items["acme"] if f["stored_as"].endswith(".wav"))
    clip = (api.service.folders.uploads / "acme" / "loops" / stem["stored_as"]).read_bytes()
    response = api.client.post(
        "/v1/search",
        files={"clip": ("ref.wav", clip, "audio/wav")},
        data={"query": json.dumps({"limit": 20})},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    hits = {h["id"] for h in response.json()["hits"]}
    assert hits and hits <= ids(api, "acme")
    assert stem["id"] not in hits  # the reference itself is left out
    fake = api.client.post(
        "/v1/search",
        files={"clip": ("ref.wav", b"%PDF-1.7 not audio", "audio/wav")},
        headers=headers,
    )
    assert fake.status_code == 422 and "not an audio file" in fake.text
    midi = api.client.post(
        "/v1/search",
        files={"clip": ("x.wav", b"MThd\x00\x00\x00\x06", "audio/wav")},
        headers=headers,
    )
    assert midi.status_code == 422
    assert not list(api.service.folders.scratch.rglob("*.*"))  # reference clips are not kept


def test_item_metadata_and_audio_with_range_requests(api):
    headers = api.auth("acme")
    stem = next(f for f in api.items["acme"] if f["stored_as"].endswith(".wav"))
    item = api.client.get(f"/v1/items/{stem['id']}", headers=headers).json()
    assert item["catalog"] == "loops" and item["kind"] == "stem"
    assert item["payload"]["licence"]["holder"] and item["audio_url"].endswith("/audio")
    original = (api.service.folders.uploads / "acme" / "loops" / stem["stored_as"]).read_bytes()
    full = api.client.get(item["audio_url"], headers=headers)
    assert full.status_code == 200 and full.content == original
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "audio/wav"
    part = api.client.get(item["audio_url"], headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == original[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(original)}"
    tail = api.client.get(item["audio_url"], headers={**headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == original[-10:]
    beyond = api.client.get(
        item["audio_url"], headers={**headers, "Range": f"bytes={len(original) + 10}-"}
    )
    assert beyond.status_code == 416

    midi = next(f for f in api.items["acme"] if f["stored_as"].endswith(".mid"))
    preview = api.client.get(f"/v1/items/{midi['id']}/audio", headers=headers)
    assert preview.status_code == 200 and preview.content[:4] == b"RIFF"
    assert preview.headers["content-type"] == "audio/wav"


# --- uploads ------------------------------------------------------------------------------------


def test_hostile_uploads_are_rejected_with_reasons(api):
    headers = api.auth("acme")
    root = api.service.folders.uploads / "acme" / "hostile"
    good = wav_bytes(1.0)
    too_long = wav_bytes(31.0, sr=4000)  # over upload_max_seconds (30 s), under the byte cap
    files = [
        ("files", ("evil.wav", b"\x89PNG\r\n\x1a\n" + b"\x00" * 4000, "audio/wav")),
        ("files", ("../../etc/passwd", good, "audio/wav")),
        ("files", ("/etc/absolute.wav", wav_bytes(1.0, freq=330), "audio/wav")),
        ("files", ("..\\..\\windows\\x.wav", wav_bytes(1.0, freq=550), "audio/wav")),
        ("files", (".hidden\x07bell.wav", wav_bytes(1.0, freq=660), "audio/wav")),
        ("files", ("flac-named.mp3", _flac(), "audio/mpeg")),
        ("files", ("big.wav", b"RIFF" + b"\x00" * (3 * 2**20), "audio/wav")),
        ("files", ("long.wav", too_long, "audio/wav")),
        ("files", ("empty.wav", b"", "audio/wav")),
    ]
    response = api.client.post(
        "/v1/catalogs/hostile/items",
        files=files,
        data={"licence": json.dumps(LICENCE)},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    by_name = {f["filename"]: f for f in response.json()["files"]}
    assert "not WAV, FLAC" in by_name["evil.wav"]["reason"]
    assert by_name["passwd"]["stored_as"] == "passwd.wav"
    assert by_name["passwd"]["status"] == "indexed"
    assert by_name["absolute.wav"]["stored_as"] == "absolute.wav"
    assert by_name["x.wav"]["status"] == "indexed"
    # (httpx escapes the control character on the wire; safe_name's doctest covers raw ones)
    hidden = next(f for name, f in by_name.items() if name.startswith("hidden"))
    assert hidden["stored_as"].isprintable() and not hidden["stored_as"].startswith(".")
    assert by_name["flac-named.mp3"]["stored_as"] == "flac-named.flac"  # content decides
    assert by_name["flac-named.mp3"]["status"] == "indexed"
    assert "oversized" in by_name["big.wav"]["reason"]
    assert by_name["long.wav"]["status"] == "failed" and "too long" in by_name["long.wav"]["reason"]
    assert "empty" in by_name["empty.wav"]["reason"]
    # Only indexed files stay; everything under the catalog folder, nothing anywhere else.
    kept = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    assert kept == sorted(
        [
            "absolute.wav",
            "flac-named.flac",
            hidden["stored_as"],
            "licences.jsonl",
            "passwd.wav",
            "x.wav",
        ]
    )
    data = api.settings.data_dir
    assert not (data / "etc").exists() and not (data.parent / "etc").exists()
    assert not Path("/etc/absolute.wav").exists()
    staging = api.service.folders.uploads / ".staging"
    assert not staging.exists() or not list(staging.rglob("*"))
    manifest = [json.loads(line) for line in (root / "licences.jsonl").read_text().splitlines()]
    assert sorted(m["path"] for m in manifest) == [n for n in kept if n != "licences.jsonl"]


def test_upload_needs_a_licence_record(api):
    response = api.client.post(
        "/v1/catalogs/unlicensed/items",
        files=[("files", ("a.wav", wav_bytes(), "audio/wav"))],
        headers=api.auth("acme"),
    )
    assert response.status_code == 200
    (only,) = response.json()["files"]
    assert only["status"] == "rejected" and "no licence record" in only["reason"]
    bad = api.client.post(
        "/v1/catalogs/unlicensed/items",
        files=[("files", ("a.wav", wav_bytes(), "audio/wav"))],
        data={"licence": json.dumps({**LICENCE, "allowed_uses": ["everything"]})},
        headers=api.auth("acme"),
    )
    assert bad.status_code == 422 and "unknown use" in bad.text
    bad_name = api.client.post(
        "/v1/catalogs/..%2F..%2Fescape/items",
        files=[("files", ("a.wav", wav_bytes(), "audio/wav"))],
        data={"licence": json.dumps(LICENCE)},
        headers=api.auth("acme"),
    )
    assert bad_name.status_code in (404, 422)


def test_replacing_a_file_with_bad_content_keeps_the_old_one(api):
    headers = api.auth("globex")
    first = api.client.post(
        "/v1/catalogs/replace/items",
        files=[("files", ("tone.wav", wav_bytes(1.0), "audio/wav"))],
        data={"licence": json.dumps(LICENCE)},
        headers=headers,
    ).json()["files"][0]
    assert first["status"] == "indexed"
    silent = wav_bytes(1.0, freq=0.0)  # all zeros: refused as silent
    second = api.client.post(
        "/v1/catalogs/replace/items",
        files=[("files", ("tone.wav", silent, "audio/wav"))],
        data={"licence": json.dumps(LICENCE)},
        headers=headers,
    ).json()["files"][0]
    assert second["status"] == "failed" and "silent" in second["reason"]
    root = api.service.folders.uploads / "globex" / "replace"
    assert (root / "tone.wav").read_bytes() == wav_bytes(1.0)
    assert api.client.get(f"/v1/items/{first['id']}/audio", headers=headers).is_success


async def _raw(app, headers: list[tuple[bytes, bytes]], chunks, counter: list[int]):
    """Drive the ASGI app directly, counting how many body chunks it pulls."""
    sent: list[dict] = []

    async def receive():
        counter[0] += 1
        if counter[0] > 1000:
            raise AssertionError("the app kept reading past the cap")
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/catalogs/loops/items",
        "raw_path": b"/v1/catalogs/loops/items",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("test", 1),
        "server": ("test", 80),
        "state": {},
        "app": app,
    }
    await app(scope, receive, send)
    return sent


def test_huge_declared_body_is_refused_unread(api):
    counter = [0]
    headers = [
        (b"content-type", b"multipart/form-data; boundary=x"),
        (b"content-length", str(10**12).encode()),
        (b"authorization", f"Bearer {api.keys['acme']}".encode()),
    ]
    sent = asyncio.run(_raw(api.app, headers, iter(()), counter))
    assert sent[0]["status"] == 413 and counter[0] == 0


def test_endless_chunked_body_is_cut_at_the_cap(api):
    counter = [0]
    chunk = b"x" * 2**20

    def endless():
        # a well-formed start of a file part, then a file that never ends
        yield (
            b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\nRIFF"
        )
        while True:
            yield chunk

    headers = [
        (b"content-type", b"multipart/form-data; boundary=x"),
        (b"authorization", f"Bearer {api.keys['acme']}".encode()),
    ]
    sent = asyncio.run(_raw(api.app, headers, endless(), counter))
    assert sent[0]["status"] == 413
    cap_chunks = api.settings.upload_max_request_bytes // len(chunk)
    assert counter[0] <= cap_chunks + 2


def test_json_bodies_get_a_small_cap(api):
    response = api.client.post(
        "/v1/search",
        content=b'{"text": "' + b"a" * (2 << 20) + b'"}',
        headers={**api.auth("acme"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_too_many_files_in_one_request(api):
    api.settings.upload_max_files, saved = 2, api.settings.upload_max_files
    try:
        response = api.client.post(
            "/v1/catalogs/many/items",
            files=[("files", (f"{n}.wav", wav_bytes(0.2), "audio/wav")) for n in range(3)],
            data={"licence": json.dumps(LICENCE)},
            headers=api.auth("acme"),
        )
    finally:
        api.settings.upload_max_files = saved
    assert response.status_code == 413


# --- jobs ---------------------------------------------------------------------------------------


def test_generate_job_lifecycle(api):
    headers = api.auth("acme")
    response = api.client.post(
        "/v1/generate",
        json={"prompt": "dark techno loop", "duration_s": 1, "seed": 7},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in ("queued", "running", "succeeded")
    done = wait_job(api, "acme", job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"done": 4, "total": 4, "fraction": 1.0}
    request = api.generator.requests[-1]
    assert "acme/loops" in request.catalogs
    assert all(c.startswith("acme/") for c in request.catalogs)
    wav = api.client.get(done["links"]["audio_wav"], headers=headers)
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    flac = api.client.get(f"/v1/jobs/{job['id']}/audio?format=flac", headers=headers)
    assert flac.status_code == 200 and flac.content[:4] == b"fLaC"
    ranged = api.client.get(done["links"]["audio_wav"], headers={**headers, "Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.content == b"RIFF"
    manifest = api.client.get(f"/v1/jobs/{job['id']}/manifest", headers=headers).json()
    assert manifest["seed"] == 7 and manifest["prompt"] == "dark techno loop"
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=api.auth("globex")).status_code == 404


def test_generate_scope_is_forced_to_the_tenant(api):
    headers = api.auth("globex")
    mine = api.client.post(
        "/v1/generate",
        json={"prompt": "x", "duration_s": 1, "catalogs": ["loops"]},
        headers=headers,
    )
    assert wait_job(api, "globex", mine.json()["id"])["status"] == "succeeded"
    assert api.generator.requests[-1].catalogs == ("globex/loops",)
    for body in (
        {"prompt": "x", "catalogs": ["acme/loops"]},
        {"prompt": "x", "pinned": [next(iter(ids(api, "acme")))]},
        {"prompt": "x", "pinned": [str(uuid.uuid4())]},
    ):
        response = api.client.post("/v1/generate", json=body, headers=headers)
        assert response.status_code == 404, (body, response.text)


def test_queue_full_answers_429_with_retry_after_and_cancel_works(api):
    headers = api.auth("acme")
    generator: SteppingGenerator = api.generator
    generator.gate.clear()
    generator.started.clear()
    try:
        running = api.client.post("/v1/generate", json={"prompt": "a"}, headers=headers).json()
        assert generator.started.wait(10)  # the worker holds it; the queue is empty again
        queued = [
            api.client.post("/v1/generate", json={"prompt": f"q{n}"}, headers=headers)
            for n in range(2)
        ]
        assert [r.status_code for r in queued] == [202, 202]
        full = api.client.post("/v1/generate", json={"prompt": "over"}, headers=headers)
        assert full.status_code == 429
        assert int(full.headers["retry-after"]) >= 1
        assert 'route="/v1/generate",status="429"' in api.client.get("/metrics").text
        assert "audiorag_generation_queue_depth 2.0" in api.client.get("/metrics").text
        # cancel one waiting job and the running one
        first = queued[0].json()["id"]
        cancelled = api.client.delete(f"/v1/jobs/{first}", headers=headers).json()
        assert cancelled["status"] == "cancelled"
        api.client.delete(f"/v1/jobs/{running['id']}", headers=headers)
        assert wait_job(api, "acme", running["id"])["status"] == "cancelled"
    finally:
        generator.gate.set()
    last = wait_job(api, "acme", queued[1].json()["id"])
    assert last["status"] == "succeeded"
    assert wait_job(api, "acme", first)["status"] == "cancelled"
    # the cancelled running job left no take behind
    takes = api.settings.outputs_dir / "acme"
    assert not [p for p in takes.iterdir() if p.name.startswith(".partial")]
    # and a finished job cannot be fetched before it succeeded / after cancel
    assert api.client.get(f"/v1/jobs/{first}/audio", headers=headers).status_code == 409


# --- sessions -----------------------------------------------------------------------------------


def test_session_pins_generate_history_and_rerun(api):
    headers = api.auth("acme")
    acme = sorted(ids(api, "acme"))
    created = api.client.post(
        "/v1/sessions",
        json={
            "name": "night drive",
            "catalogs": ["loops"],
            "pins": [acme[0]],
            "defaults": {"prompt": "moody synthwave", "duration_s": 1, "strength": 0.5},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    session = created.json()
    sid = session["id"]
    assert session["pins"] == [acme[0]] and session["catalogs"] == ["loops"]
    assert api.client.put(f"/v1/sessions/{sid}/pins/{acme[1]}", headers=headers).json()["pins"] == [
        acme[0],
        acme[1],
    ]
    removed = api.client.delete(f"/v1/sessions/{sid}/pins/{acme[0]}", headers=headers)
    assert removed.json()["pins"] == [acme[1]]
    assert (
        api.client.delete(f"/v1/sessions/{sid}/pins/{acme[0]}", headers=headers).status_code == 404
    )
    # another tenant's item cannot be pinned
    other = next(iter(ids(api, "globex")))
    assert api.client.put(f"/v1/sessions/{sid}/pins/{other}", headers=headers).status_code == 404

    take = api.client.post(f"/v1/sessions/{sid}/generate", json={"seed": 3}, headers=headers)
    assert take.status_code == 202, take.text
    first = wait_job(api, "acme", take.json()["id"])
    assert first["status"] == "succeeded" and first["session_id"] == sid
    request = api.generator.requests[-1]
    assert request.pinned == (acme[1],) and request.catalogs == ("acme/loops",)
    assert request.prompt == "moody synthwave" and request.seed == 3 and request.strength == 0.5

    rerun = api.client.post(
        f"/v1/sessions/{sid}/takes/{first['take_id']}/rerun",
        json={"seed": 11, "strength": 0.9},
        headers=headers,
    )
    assert rerun.status_code == 202, rerun.text
    second = wait_job(api, "acme", rerun.json()["id"])
    assert second["status"] == "succeeded"
    request = api.generator.requests[-1]
    assert (request.seed, request.strength, request.pinned) == (11, 0.9, (acme[1],))
    assert request.prompt == "moody synthwave"

    history = api.client.get(f"/v1/sessions/{sid}/takes", headers=headers).json()["takes"]
    assert [t["job"]["id"] for t in history] == [first["id"], second["id"]]
    assert history[1]["parent_take"] == first["take_id"]
    assert [t["manifest"]["seed"] for t in history] == [3, 11]
    assert history[1]["settings"]["strength"] == 0.9
    listed = api.client.get("/v1/sessions", headers=headers).json()["sessions"]
    assert any(s["id"] == sid and s["takes"] == 2 for s in listed)
    missing = api.client.post(
        f"/v1/sessions/{sid}/takes/{uuid.uuid4().hex}/rerun", json={}, headers=headers
    )
    assert missing.status_code == 404


def test_session_refuses_foreign_catalogs_and_pins(api):
    headers = api.auth("globex")
    other = next(iter(ids(api, "acme")))
    for body in (
        {"name": "x", "catalogs": ["acme/loops"]},
        {"name": "x", "catalogs": ["hostile"]},  # acme's catalog name, not globex's
        {"name": "x", "pins": [other]},
        {"name": "x", "pins": ["not-a-uuid"]},
    ):
        response = api.client.post("/v1/sessions", json=body, headers=headers)
        assert response.status_code == 404, (body, response.text)
    no_prompt = api.client.post("/v1/sessions", json={"name": "empty"}, headers=headers).json()
    response = api.client.post(f"/v1/sessions/{no_prompt['id']}/generate", json={}, headers=headers)
    assert response.status_code == 422 and "prompt" in response.text


# --- isolation, randomised -----------------------------------------------------------------------


def _acme_ids(api: Api) -> dict[str, list[str]]:
    db = api.service.db
    return {
        "item": sorted(ids(api, "acme")),
        "session": [r["id"] for r in db.all("SELECT id FROM sessions WHERE tenant = 'acme'")],
        "job": [r["id"] for r in db.all("SELECT id FROM jobs WHERE tenant = 'acme'")],
        "take": [
            r["take_id"]
            for r in db.all(
                "SELECT take_id FROM jobs WHERE tenant = 'acme' AND take_id IS NOT NULL"
            )
        ],
    }


def test_another_tenants_ids_are_never_200(api):
    """Every id acme owns (plus random ones), on every route that takes an id, as globex: 404."""
    headers = api.auth("acme")
    pin = sorted(ids(api, "acme"))[0]
    sid = api.client.post(
        "/v1/sessions",
        json={"name": "acme's", "pins": [pin], "defaults": {"prompt": "x", "duration_s": 1}},
        headers=headers,
    ).json()["id"]
    job = api.client.post(f"/v1/sessions/{sid}/generate", json={}, headers=headers).json()
    assert wait_job(api, "acme", job["id"])["status"] == "succeeded"
    known = _acme_ids(api)
    assert all(known.values()), known
    before = _acme_state(api)
    rng = random.Random(20261121)
    pool = {k: [*v, str(uuid.UUID(int=rng.getrandbits(128)))] for k, v in known.items()}
    own_session = api.client.post(
        "/v1/sessions", json={"name": "mine"}, headers=api.auth("globex")
    ).json()["id"]
    routes = [
        ("get", "/v1/items/{item}", None),
        ("get", "/v1/items/{item}/audio", None),
        ("get", "/v1/jobs/{job}", None),
        ("get", "/v1/jobs/{job}/audio", None),
        ("get", "/v1/jobs/{job}/manifest", None),
        ("delete", "/v1/jobs/{job}", None),
        ("get", "/v1/sessions/{session}", None),
        ("get", "/v1/sessions/{session}/takes", None),
        ("put", "/v1/sessions/{session}/pins/{item}", None),
        ("delete", "/v1/sessions/{session}/pins/{item}", None),
        ("post", "/v1/sessions/{session}/generate", {"prompt": "x"}),
        ("post", "/v1/sessions/{session}/takes/{take}/rerun", {}),
        ("put", f"/v1/sessions/{own_session}/pins/{{item}}", None),
        ("post", f"/v1/sessions/{own_session}/takes/{{take}}/rerun", {}),
    ]
    for _ in range(60):
        method, template, body = rng.choice(routes)
        path = template.format(**{k: rng.choice(v) for k, v in pool.items()})
        kwargs = {"json": body} if body is not None else {}
        response = getattr(api.client, method)(path, headers=api.auth("globex"), **kwargs)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
    # and nothing of acme's was changed by those attempts
    assert _acme_state(api) == before


def _acme_state(api: Api):
    db = api.service.db
    jobs = db.all("SELECT id, status, cancel_requested FROM jobs WHERE tenant = 'acme'")
    pins = db.all(
        "SELECT session_id, item_id FROM pins WHERE session_id IN "
        "(SELECT id FROM sessions WHERE tenant = 'acme')"
    )
    return jobs, pins


def _flac() -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    t = np.arange(8000) / 8000
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 8000, format="FLAC")
    return buffer.getvalue()
