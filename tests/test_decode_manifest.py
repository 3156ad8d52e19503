"""Decoding refuses bad files with a reason; manifests report bad rows and keep the rest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio.decode import Limits, UnusableFile, decode_audio
from audio.signal import resample
from index.manifest import find_manifest, load_manifest

SR = 44_100


@pytest.fixture
def tone() -> np.ndarray:
    t = np.arange(SR) / SR
    return np.stack([np.sin(2 * np.pi * 330 * t)] * 2, axis=1).astype(np.float32) * 0.5


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_every_accepted_format_decodes(tmp_path, tone, fmt):
    path = tmp_path / f"x.{fmt}"
    sf.write(path, tone, SR)
    audio = decode_audio(path)
    assert audio.sr == SR and audio.samples.shape[0] == 2
    assert audio.duration_s == pytest.approx(1.0, abs=0.06)  # lossy codecs pad a little


def test_bad_files_get_reasons(tmp_path, tone):
    sf.write(tmp_path / "ok.wav", tone, SR, subtype="PCM_16")
    data = (tmp_path / "ok.wav").read_bytes()
    cases = {
        "empty.wav": (b"", "empty file"),
        "garbage.wav": (b"RIFF" + bytes(64), "not decodable"),
        "truncated.wav": (data[: len(data) // 2], "truncated"),
        "text.flac": (b"hello, I am not audio at all" * 10, "not decodable"),
    }
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UnusableFile, match=reason):
            decode_audio(tmp_path / name)
    sf.write(tmp_path / "silent.wav", np.zeros_like(tone), SR)
    with pytest.raises(UnusableFile, match="silent"):
        decode_audio(tmp_path / "silent.wav")
    with pytest.raises(UnusableFile, match="oversized"):
        decode_audio(tmp_path / "ok.wav", Limits(max_bytes=1000))
    with pytest.raises(UnusableFile, match="too long"):
        decode_audio(tmp_path / "ok.wav", Limits(max_seconds=0.5))
    with pytest.raises(UnusableFile, match="too short"):
        decode_audio(tmp_path / "ok.wav", Limits(min_seconds=5))


def test_resample_lengths():
    assert resample(np.zeros((2, 44_100), np.float32), 44_100, 48_000).shape == (2, 48_000)


def test_manifest_jsonl_keeps_good_rows_and_names_bad_ones(tmp_path):
    good = {
        "path": "stems/a.wav",
        "licence": {"id": "L1", "holder": "Label", "allowed_uses": ["Search", "generation-seed"]},
        "meta": {"instrument": "bass", "bpm": 120, "key": "Am", "tags": ["dark"]},
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps(
            {
                **good,
                "path": "stems/b.wav",
                "licence": {"id": "", "holder": "x", "allowed_uses": ["search"]},
            }
        ),
        json.dumps({**good, "path": "../escape.wav"}),
        json.dumps(
            {
                **good,
                "path": "stems/c.wav",
                "licence": {**good["licence"], "allowed_uses": ["resell"]},
            }
        ),
        json.dumps(good),
        "",
    ]
    (tmp_path / "licences.jsonl").write_text("\n".join(lines))
    manifest = load_manifest(find_manifest(tmp_path))
    assert list(manifest.entries) == ["stems/a.wav"]
    entry = manifest.get("stems/a.wav")
    assert entry.licence.allowed_uses == ["generation-seed", "search"]
    assert entry.meta.key == "A minor"
    errors = "\n".join(manifest.errors)
    assert "line 2: not valid JSON" in errors
    assert "line 3: licence.id" in errors
    assert "line 4: path" in errors
    assert "line 5: licence.allowed_uses" in errors and "resell" in errors
    assert "line 6: duplicate entry" in errors


def test_manifest_csv(tmp_path):
    (tmp_path / "licences.csv").write_text(
        "path,licence_id,holder,allowed_uses,attribution,instrument,bpm,key,tags\n"
        "loops/a.wav,L-1,Label,search;commercial,(c) Label,drums,128,,groovy;dark\n"
        "loops/b.wav,,Label,search,,,,,\n"
    )
    manifest = load_manifest(tmp_path / "licences.csv")
    entry = manifest.get("loops/a.wav")
    assert entry.licence.allowed_uses == ["commercial", "search"]
    assert entry.meta.bpm == 128 and entry.meta.tags == ["groovy", "dark"]
    assert len(manifest.errors) == 1 and "line 3" in manifest.errors[0]


def test_mp3_without_length_header_decodes_and_a_cut_mp3_does_not(tmp_path, tone):
    # sine_no_xing_header.mp3: `ffmpeg -f lavfi -i sine=f=330:d=0.5 -ac 1 -b:a 32k -write_xing 0`.
    # Its header declares 24801 frames from the bitrate; the decoder returns 24192. Real CBR
    # libraries (e.g. the tonejs-instruments samples) all look like this.
    audio = decode_audio(Path(__file__).parent / "fixtures" / "sine_no_xing_header.mp3")
    assert audio.container == "MP3" and audio.duration_s == pytest.approx(0.55, abs=0.02)
    sf.write(tmp_path / "whole.mp3", tone, SR)
    data = (tmp_path / "whole.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnusableFile, match="truncated"):
        decode_audio(tmp_path / "cut.mp3")
