"""The sound-design web page end to end, in real headless Chromium (Debian's ``chromium`` driven
by Playwright for Python), against the real app on loopback: uvicorn in a thread, the embedded
store, a tiny real CLAP and a tiny real generator, a small demo catalog indexed for one tenant.

Set ``AUDIORAG_WEB_SCREENSHOTS=DIR`` to keep screenshots of the main states in DIR (that is how
``docs/screenshots/make_screenshots.py`` makes the committed ones).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("AUDIORAG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason="chromium is not installed (Debian: apt-get install -y chromium); "
        "the web page's end-to-end test needs a real browser",
    ),
]
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)

PROMPT = "warm funk groove with tight drums"
BLOCKED = "Daft Punk"


class Paced:
    """The real orchestrator, with a short pause after each denoiser step so that the page's
    progress bar can be watched (and photographed) mid-render. Everything else is forwarded."""

    def __init__(self, inner: Any, step_s: float) -> None:
        self._inner = inner
        self._step_s = step_s

    def generate(self, request: Any, out_dir: Path, *, progress: Any = None, cancel: Any = None):
        def paced(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)
            if done < total:
                time.sleep(self._step_s)

        return self._inner.generate(request, out_dir, progress=paced, cancel=cancel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_clap_folder, tiny_generator_folder) -> Iterator[dict[str, Any]]:
    import httpx
    import uvicorn

    from audiorag.api import create_app
    from audiorag.api.auth import create_key
    from audiorag.democatalog.catalog import build_demo_catalog
    from audiorag.web import mount_web
    from tests.test_api_support import api_settings

    base = tmp_path_factory.mktemp("web")
    catalog = base / "demo"
    build_demo_catalog(catalog, count=6, seed=3)
    settings = api_settings(
        base / "data",
        tiny_clap_folder,
        generator_model=str(tiny_generator_folder),
        blocked_terms=[BLOCKED],
        api_queue_size=4,
        upload_max_file_bytes=8 * 2**20,
        upload_max_request_bytes=64 * 2**20,
    )
    app = mount_web(create_app(settings))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        service = app.state.service
        models = service.models
        assert models.wait_ready(180), models.readiness()
        assert models.orchestrator is not None, models.generator_error
        models.orchestrator = Paced(models.orchestrator, step_s=0.25)
        key = create_key(service.db, "mira", name="web-e2e")[1]
        url = f"http://127.0.0.1:{port}"
        files = sorted(p for p in catalog.rglob("*") if p.suffix in {".wav", ".mid"})
        with httpx.Client(base_url=url, timeout=120) as client:
            report = client.post(
                "/v1/catalogs/mira-kit/items",
                headers={"Authorization": f"Bearer {key}"},
                files=[
                    ("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in files
                ],
                data={"manifest": (catalog / "licences.jsonl").read_text()},
            )
            assert report.status_code == 200, report.text
            assert report.json()["counts"] == {"indexed": len(files)}, report.text
            page = client.get("/")
            assert page.status_code == 200 and "audiorag" in page.text
            assert (
                client.get("/web/app.js")
                .headers["content-type"]
                .startswith(("text/javascript", "application/javascript"))
            )
        yield {"url": url, "key": key, "app": app}
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("dialog", lambda d: d.dismiss())
    page.goto(server["url"] + "/")
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def shot(page, name: str) -> None:
    folder = os.environ.get("AUDIORAG_WEB_SCREENSHOTS")
    if folder:
        page.wait_for_timeout(400)  # let transitions settle
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def _marked_clip(app: Any, payload: int, seconds: float = 8.0) -> bytes:
    """An 8 s WAV marked with ``payload`` by the service's own watermarker."""
    import io

    import numpy as np
    import soundfile as sf

    sr = 44100
    t = np.arange(int(sr * seconds)) / sr
    noise = np.random.default_rng(0).standard_normal(t.size)
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t) + 0.05 * noise
    audio = np.stack([x, x]).astype(np.float32)
    marked = app.state.service.models.watermarker().embed(audio, sr, payload)
    buffer = io.BytesIO()
    sf.write(buffer, marked.T, sr, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def sign_in(page, key: str) -> None:
    expect = playwright_api.expect
    expect(page.get_by_label("API key")).to_be_visible()
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()


def test_session_flow_search_pin_render_rerun(page, server):
    expect = playwright_api.expect

    # A wrong key is refused with a readable message, then the right one signs in.
    page.get_by_label("API key").fill("ark_000000000000.not-a-real-key-at-all-xxxx")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("not accepted")
    shot(page, "0-sign-in")
    sign_in(page, server["key"])
    assert page.evaluate("sessionStorage.getItem('audiorag.key')") == server["key"]
    # The top bar names the tenant (GET /v1/me); the filters offer what the catalog holds.
    expect(page.locator("#whoami-tenant")).to_have_text("mira")
    page.wait_for_function(
        "[...document.querySelectorAll('#instruments option')].some(o => o.value === 'pad')"
    )
    instruments = page.evaluate(
        "[...document.querySelectorAll('#instruments option')].map(o => o.value)"
    )
    assert "vocals" not in instruments and "drums" in instruments, instruments
    keys = page.evaluate("[...document.querySelectorAll('select[name=key] option')].length")
    assert 1 < keys < 25  # "any" + the catalog's keys, not all 24

    # Create a session scoped to the catalog.
    page.get_by_role("button", name="+ New session").click()
    page.get_by_label("Name").fill("Mira Okafor — night drive")
    page.locator("#catalog-checks input[value=mira-kit]").check()
    page.get_by_role("button", name="Create session").click()
    expect(page.locator("#session-info .session-name")).to_have_text("Mira Okafor — night drive")

    # An item licensed for search only cannot be pinned: the refusal reads as a message.
    page.get_by_label("Describe what you are looking for").fill("trap drums")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true", timeout=30_000)
    trap = page.locator("#results .result", has_text="trap_drums").first
    expect(trap).to_be_visible()
    trap.get_by_role("button", name=re.compile("^Pin ")).click()
    expect(page.locator("#toasts")).to_contain_text("not licensed for generation-seed")
    expect(page.locator("#pins .pin-item")).to_have_count(0)

    # Search with text + a filter; results show BPM, key, licence holder and a waveform.
    page.get_by_label("Describe what you are looking for").fill("funk drums groove")
    page.locator("select[name=use]").select_option("generation-seed")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true", timeout=30_000)
    results = page.locator("#results .result")
    expect(results.first).to_be_visible()
    count = results.count()
    assert count >= 3
    expect(results.first.locator(".holder")).not_to_be_empty()
    expect(results.first.locator(".tag.num").first).to_contain_text("bpm")
    page.wait_for_function(
        "document.querySelectorAll('#results .wave-wrap.loaded').length >= 3", timeout=60_000
    )

    # Keyboard: focus the list, move down, play with space, stop, pin with p.
    page.locator("#results").focus()
    page.keyboard.press("ArrowDown")
    expect(results.nth(1)).to_have_class(re.compile(r"\bactive\b"))
    page.keyboard.press(" ")
    expect(results.nth(1)).to_have_class(re.compile(r"\bplaying\b"), timeout=30_000)
    page.wait_for_function("!document.getElementById('player').paused", timeout=10_000)
    page.wait_for_function("document.getElementById('player').currentTime > 0", timeout=10_000)
    page.keyboard.press(" ")
    expect(results.nth(1)).not_to_have_class(re.compile(r"\bplaying\b"))
    page.keyboard.press("p")
    expect(page.locator("#pins .pin-item")).to_have_count(1)
    expect(results.nth(1).locator(".pin")).to_have_text("Pinned")
    # And one more pin with the mouse.
    results.nth(0).get_by_role("button", name=re.compile("^Pin ")).click()
    expect(page.locator("#pins .pin-item")).to_have_count(2)
    expect(page.locator("#licences .licence").first).to_be_visible()
    pinned_ids = page.evaluate(
        "[...document.querySelectorAll('#pins .pin-item')].map(e => e.dataset.id)"
    )
    page.wait_for_function(
        "document.querySelectorAll('#pins .wave-wrap.loaded').length >= 2", timeout=60_000
    )
    shot(page, "1-search-and-pins")

    # Find similar (f) runs a search by example.
    page.locator("#results").focus()
    page.keyboard.press("f")
    expect(page.locator("#drop")).to_have_class(re.compile("has-clip"))
    expect(page.locator("#results")).not_to_have_attribute("aria-busy", "true", timeout=30_000)
    expect(page.locator("#results-count")).to_contain_text("like")
    expect(results.first).to_be_visible()

    # Render a take; the progress bar follows the job to 100 %.
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.locator("input[name=duration_s]").fill("2")
    page.locator("input[name=steps]").fill("12")
    page.locator("input[name=top_k]").fill("2")
    page.locator("input[name=seed]").fill("7")
    page.get_by_role("button", name="Render take").click()
    bar = page.get_by_role("progressbar", name="Render progress")
    expect(bar).to_be_visible()
    page.wait_for_function(
        "(() => { const v = +document.getElementById('job-bar').getAttribute('aria-valuenow');"
        " return v > 10 && v < 90; })()",
        timeout=60_000,
    )
    seen = [int(bar.get_attribute("aria-valuenow") or 0)]
    shot(page, "2-render-in-progress")
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=120_000)
    expect(page.locator("#job-label")).to_contain_text("100 %")
    assert 0 < seen[0] < 100

    # The take is in the history with its audio, spectrogram and manifest.
    takes = page.locator("#takes .take[data-status=succeeded]")
    expect(takes).to_have_count(1, timeout=30_000)
    take = takes.first
    expect(take.locator(".take-prompt")).to_have_text(PROMPT)
    # The <audio> streams from a signed URL; the spectrogram is the server's PNG.
    page.wait_for_function(
        "(() => { const a = document.querySelector('#takes .take audio');"
        " return a && a.src.includes('/audio?') && a.src.includes('token='); })()",
        timeout=30_000,
    )
    page.wait_for_function(
        "(() => { const i = document.querySelector('#takes .take img.spec');"
        " return i && i.complete && i.naturalWidth > 100 && i.src.includes('/spectrogram?'); })()",
        timeout=30_000,
    )
    take.locator("summary", has_text="Manifest").click()
    manifest = take.locator(".manifest")
    expect(manifest.locator(".enriched")).to_contain_text(PROMPT)
    seeds = manifest.locator("table.seeds tbody tr")
    assert seeds.count() >= 2
    expect(manifest.locator(".pin-badge")).to_have_count(2)
    expect(manifest.locator("table.seeds")).to_contain_text(
        page.locator("#licences .holder-name").first.inner_text()
    )
    take.scroll_into_view_if_needed()
    shot(page, "3-take-with-manifest")

    # The take plays, and its WAV downloads with the key.
    take.get_by_role("button", name=re.compile("^Play take")).click()
    page.wait_for_function("document.getElementById('player').currentTime > 0", timeout=10_000)
    with page.expect_download() as download:
        take.get_by_role("link", name="⤓ WAV").click()
    assert download.value.suggested_filename.endswith(".wav")
    take_wav = download.value.path()
    first_take_id = take.locator(".take-id").inner_text()

    # Re-run with a new seed: a second take, a child of the first, with another seed.
    take.get_by_role("button", name="↻ Re-run, new seed").click()
    expect(page.locator("#takes .take[data-status=succeeded]")).to_have_count(2, timeout=120_000)
    newest = page.locator("#takes .take").first
    expect(newest.locator(".badge.parent")).to_contain_text("↻")
    seeds_shown = page.locator("#takes .take .take-sub .facts").all_inner_texts()
    assert len(set(seeds_shown)) == 2, seeds_shown

    # In-paint a range: drag across the newest take's waveform, send the in-paint job.
    newest = page.locator("#takes .take").first
    wave = newest.locator(".take-wave-wrap")
    wave.scroll_into_view_if_needed()
    box = wave.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
    page.mouse.up()
    expect(newest.locator(".sel-label")).to_contain_text("selected")
    newest.get_by_role("button", name="In-paint selection").click()
    inpainted = page.locator("#takes .take[data-status=succeeded] .badge.inpaint")
    expect(inpainted).to_have_count(1, timeout=120_000)
    expect(inpainted).to_contain_text("in-paint 0.5")
    expect(page.locator("#takes .take[data-status=succeeded]")).to_have_count(3)

    # The server agrees: three session takes; the in-paint is a child of the re-run.
    import httpx

    headers = {"Authorization": f"Bearer {server['key']}"}
    sid = page.evaluate("sessionStorage.getItem('audiorag.session')")
    body = httpx.get(f"{server['url']}/v1/sessions/{sid}/takes", headers=headers).json()
    assert len(body["takes"]) == 3
    for t in body["takes"][:2]:
        pinned = {s["id"] for s in t["manifest"]["seeds"] if s["pinned"]}
        assert pinned == set(pinned_ids)
    assert body["takes"][1]["parent_take"] == body["takes"][0]["job"]["take_id"]
    painted = body["takes"][2]
    assert painted["parent_take"] == body["takes"][1]["job"]["take_id"]
    assert painted["inpaint"]["from_s"] == pytest.approx(0.5, abs=0.05)
    assert painted["inpaint"]["to_s"] == pytest.approx(1.5, abs=0.05)
    assert painted["manifest"]["mode"] == "in-paint", painted["manifest"]["mode"]
    assert (body["takes"][1]["origin"], painted["origin"]) == ("rerun", "inpaint")

    # Re-run the in-painted take: the new card says both — a re-run, of the same range.
    page.locator("#takes .take").first.get_by_role("button", name="↻ Re-run, new seed").click()
    expect(page.locator("#takes .take[data-status=succeeded]")).to_have_count(4, timeout=120_000)
    newest = page.locator("#takes .take").first
    expect(newest.locator(".badge.parent")).to_contain_text("↻")
    expect(newest.locator(".badge.inpaint")).to_contain_text("in-paint 0.5")
    assert not page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('audiorag'))")

    # Trace a file carrying the first take's watermark back to its prompt and licences. The
    # tiny random-weight generator's 2 s takes are too short and too odd for the detector (it
    # wants ~6 s of real audio), so the take's own payload is embedded, with the service's own
    # watermarker, into an 8 s clip: the route and the page then resolve the real job's record.
    first = body["takes"][0]
    assert first["job"]["take_id"] == first_take_id
    marked = _marked_clip(server["app"], first["manifest"]["watermark"]["payload_int"])
    page.get_by_role("button", name="Trace a file").click()
    dialog = page.get_by_role("dialog", name="Trace a file")
    expect(dialog).to_be_visible()
    # the real 2 s take first: read, answered in words whatever the detector makes of it
    page.locator("#trace-file").set_input_files(
        {"name": "take.wav", "mimeType": "audio/wav", "buffer": Path(take_wav).read_bytes()}
    )
    result = page.locator("#trace-result")
    expect(result).to_have_attribute("data-state", "done", timeout=30_000)
    expect(result.locator(".trace-verdict")).not_to_be_empty()
    page.locator("#trace-file").set_input_files(
        {"name": "mystery.wav", "mimeType": "audio/wav", "buffer": marked}
    )
    expect(result).to_contain_text("mystery.wav", timeout=30_000)
    expect(result).to_have_attribute("data-state", "done", timeout=30_000)
    expect(result.locator(".trace-verdict")).to_contain_text("Your take")
    expect(result.locator(".trace-take")).to_have_text(first_take_id)
    expect(result.locator(".trace-prompt")).to_have_text(PROMPT)
    expect(result.locator(".trace-payload")).to_have_text(re.compile(r"^[0-9a-f]{8}$"))
    assert result.locator(".trace-seeds tbody tr").count() >= 2
    expect(result.locator(".trace-seeds")).to_contain_text("generation-seed")
    shot(page, "5-trace-a-file")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_blocked_prompt_term_reads_as_a_message(page, server):
    expect = playwright_api.expect
    sign_in(page, server["key"])
    # The session created by the other test (or a fresh one) is opened.
    if page.locator("#session-select option").count() <= 1:
        page.get_by_role("button", name="+ New session").click()
        page.get_by_label("Name").fill("guardrails")
        page.get_by_role("button", name="Create session").click()
    expect(page.locator("#session-info .session-name")).to_be_visible()
    page.get_by_label("Prompt", exact=True).fill("drums like d.a.f.t. punk")
    page.locator("input[name=steps]").fill("4")
    page.get_by_role("button", name="Render take").click()
    toast = page.locator("#render-error")
    # The server may still be busy with the other test's render: wait as long as for results.
    expect(toast).to_contain_text(BLOCKED, timeout=30_000)
    expect(toast).to_contain_text("blocked")
    assert "Traceback" not in toast.inner_text() and "{" not in toast.inner_text()
    shot(page, "4-error-blocked-term")

    # A bad upload is refused in words too.
    page.locator("#clip").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not audio"}
    )
    expect(page.locator("#toasts")).to_contain_text("not an audio file")

    # Signing out forgets the key.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('audiorag.key')") is None
