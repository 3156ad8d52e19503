"""The take registry, the deployment secret, and ``audiorag watermark detect``."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audiorag.cli.watermark import watermark_app
from audiorag.components import load_watermarker, provenance_log, watermark_secret
from audiorag.settings import Settings, get_settings
from generation.watermark import StftWatermark
from rag.provenance import ProvenanceLog
from tests.test_watermark import music

MANIFEST = {
    "take_id": "20250101-120000-abcd",
    "created_at": "2025-01-01T12:00:00+00:00",
    "request": {"prompt": "warm lo-fi keys", "duration_s": 10.0},
    "prompt": {"user": "warm lo-fi keys", "enriched": "warm lo-fi keys, 80 bpm"},
    "seeds": [
        {
            "id": "item-1",
            "path": "stems/keys/0001_keys.wav",
            "licence": {
                "id": "KSW:demo:0001",
                "holder": "Kestrel Sound Works",
                "allowed_uses": ["search", "generation-seed"],
                "attribution": "Kestrel Sound Works — demo",
            },
        }
    ],
    "model": {"id": "tiny-demo"},
}


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AUDIORAG_WATERMARK_KEY", raising=False)
    monkeypatch.delenv("AUDIORAG_WATERMARK_BACKEND", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_secret_created_once_with_0600(tmp_path):
    settings = Settings(data_dir=tmp_path / "d")
    first = watermark_secret(settings)
    path = tmp_path / "d" / "watermark.key"
    assert len(first) == 32 and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert watermark_secret(Settings(data_dir=tmp_path / "d")) == first
    assert watermark_secret(Settings(data_dir=tmp_path / "other")) != first


def test_secret_from_settings_wins(tmp_path):
    settings = Settings(data_dir=tmp_path, watermark_key="my deployment secret")
    assert watermark_secret(settings) == b"my deployment secret"
    assert not (tmp_path / "watermark.key").exists()


def test_registry_round_trip_across_instances(tmp_path):
    path = tmp_path / "provenance.sqlite"
    writer = ProvenanceLog(path)
    payloads = {writer.new_payload() for _ in range(50)}
    assert len(payloads) == 50 and all(0 <= p < 2**32 for p in payloads)
    payload = payloads.pop()
    assert writer.find(payload) is None  # reserved, not yet recorded
    writer.record(payload, MANIFEST)
    reader = ProvenanceLog(path)
    assert reader.find(payload) == MANIFEST
    assert reader.find((payload + 1) % 2**32) in (None, MANIFEST)
    assert reader.new_payload() not in payloads | {payload}
    changed = {**MANIFEST, "take_id": "again"}
    reader.record(payload, changed)
    assert writer.find(payload)["take_id"] == "again"
    with pytest.raises(ValueError):
        writer.record(2**32, MANIFEST)


def test_load_watermarker(tmp_path):
    marker = load_watermarker(Settings(data_dir=tmp_path, watermark_key="k"))
    assert isinstance(marker, StftWatermark) and marker.key == b"k"
    with pytest.raises(ValueError, match="AUDIOSEAL_MODEL"):
        load_watermarker(Settings(data_dir=tmp_path, watermark_backend="audioseal"))


def _take() -> np.ndarray:
    """A 10 s 44.1 kHz stereo musical test signal (chords, bass, drums)."""
    return music(10.0, 44_100, 2, seed=1)


def test_cli_detect_traces_a_marked_file(data_env, tmp_path):
    settings = get_settings()
    log = provenance_log(settings)
    payload = log.new_payload()
    log.record(payload, MANIFEST)
    marked = load_watermarker(settings).embed(_take(), 44_100, payload)
    wav = tmp_path / "take.wav"
    sf.write(wav, marked.T, 44_100, subtype="PCM_16")

    runner = CliRunner()
    result = runner.invoke(watermark_app, ["detect", str(wav), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["present"] and report["payload"] == f"{payload:08x}"
    assert report["known_take"] and report["manifest"] == MANIFEST
    assert report["take"]["take_id"] == MANIFEST["take_id"]
    assert report["take"]["prompt"] == "warm lo-fi keys"
    assert report["take"]["seeds"][0]["holder"] == "Kestrel Sound Works"

    result = runner.invoke(watermark_app, ["detect", str(wav)])
    assert result.exit_code == 0, result.output
    assert f"{payload:08x}" in result.stdout and MANIFEST["take_id"] in result.stdout
    assert "Kestrel Sound Works" in result.stdout


def test_cli_detect_unmarked_unknown_and_unreadable(data_env, tmp_path):
    runner = CliRunner()
    clean = tmp_path / "clean.wav"
    sf.write(clean, _take().T, 44_100)
    result = runner.invoke(watermark_app, ["detect", str(clean), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert not report["present"] and report["payload"] is None and report["take"] is None

    # Marked by this deployment's key, but never recorded: present, not traced.
    settings = get_settings()
    foreign = tmp_path / "unrecorded.wav"
    sf.write(foreign, load_watermarker(settings).embed(_take(), 44_100, 0x01020304).T, 44_100)
    result = runner.invoke(watermark_app, ["detect", str(foreign)])
    assert result.exit_code == 0, result.output
    assert "01020304" in result.stdout and "not in this deployment" in result.stdout

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    result = runner.invoke(watermark_app, ["detect", str(broken)])
    assert result.exit_code == 2
