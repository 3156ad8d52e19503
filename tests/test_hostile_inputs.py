"""Hostile inputs: one catalog of everything a real sample library or a bad day holds, indexed in
one run with worker processes. Nothing crashes, nothing is lost: every file is either indexed or
reported with a reason code and a message that names it."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from index.ingest import Indexer
from index.manifest import load_manifest
from index.prepare import ProblemReason
from index.store import open_store

SR = 44_100
RNG = np.random.default_rng(0)


def _noise(seconds: float, channels: int = 2, decay: float = 0.0) -> np.ndarray:
    n = max(1, round(seconds * SR))
    envelope = np.exp(-decay * np.arange(n) / SR)[:, None]
    return (RNG.standard_normal((n, channels)) * 0.3 * envelope).astype(np.float32)


def _wav_header(data_bytes: int, channels: int = 2) -> bytes:
    """A 16-bit PCM RIFF/WAVE header whose data chunk declares ``data_bytes``."""
    fmt = struct.pack("<HHIIHH", 1, channels, SR, SR * channels * 2, channels * 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _midi(path: Path, notes: bool) -> None:
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0)
    if notes:
        piano.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=0.5))
    pm.instruments.append(piano)
    pm.write(str(path))


def build_hostile_catalog(root: Path, outside: Path) -> dict[str, str]:
    """Write the hostile files; return {path in the catalog: expected outcome}, where the outcome
    is "indexed" or a :class:`ProblemReason` value."""
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    sf.write(outside / "secret.wav", _noise(1.5), SR)
    (outside / "folder").mkdir()
    sf.write(outside / "folder" / "also_secret.wav", _noise(1.5), SR)
    expected: dict[str, str] = {}

    def wav(name: str, data: np.ndarray, outcome: str, **kwargs) -> None:
        sf.write(root / name, data, SR, **kwargs)
        expected[name] = outcome

    def raw(name: str, data: bytes, outcome: str) -> None:
        (root / name).write_bytes(data)
        expected[name] = outcome

    raw("empty.wav", b"", "empty")
    raw("header_only.wav", _wav_header(88_200)[:20], "undecodable")
    raw("random_bytes.wav", RNG.bytes(4096), "undecodable")
    raw("huge_declared_length.wav", _wav_header(0x7FFF_FFF0) + RNG.bytes(1000), "truncated")
    wav("eight_channels.wav", _noise(1.5, channels=8), "indexed")
    wav("one_sample.wav", _noise(1 / SR), "too_short")
    wav("click_5ms.wav", _noise(0.005, decay=800.0), "indexed")
    wav("hihat_40ms.wav", _noise(0.04, channels=1, decay=120.0), "indexed")
    wav("silent.wav", np.zeros((SR, 2), np.float32), "silent")
    nan = _noise(0.5)
    nan[100] = np.nan
    wav("nan_samples.wav", nan, "non_finite", subtype="FLOAT")
    inf = _noise(0.5)
    inf[200, 1] = np.inf
    wav("inf_samples.wav", inf, "non_finite", subtype="FLOAT")
    sf.write(root / "flac_named.wav", _noise(1.2), SR, format="FLAC")
    expected["flac_named.wav"] = "indexed"
    sf.write(root / "ogg_named.mp3", _noise(1.2), SR, format="OGG")
    expected["ogg_named.mp3"] = "indexed"
    _midi(root / "no_notes.mid", notes=False)
    expected["no_notes.mid"] = "no_notes"
    raw("corrupt.mid", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff", "undecodable")
    _midi(root / "tiny_pattern.mid", notes=True)
    expected["tiny_pattern.mid"] = "indexed"
    raw("notes.xyz", b"not audio", "unsupported_type")
    # links: out of the folder (file, folder), dangling, loops, and one inside (fine)
    os.symlink(outside / "secret.wav", root / "outside_file.wav")
    expected["outside_file.wav"] = "outside_catalog"
    os.symlink(outside / "folder", root / "outside_folder")
    expected["outside_folder"] = "outside_catalog"
    os.symlink(root / "nowhere.wav", root / "dangling.wav")
    expected["dangling.wav"] = "broken_link"
    os.symlink(root / "loop_b.wav", root / "loop_a.wav")
    os.symlink(root / "loop_a.wav", root / "loop_b.wav")
    expected["loop_a.wav"] = expected["loop_b.wav"] = "broken_link"
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")
    expected["sub/up"] = "broken_link"
    (root / "originals").mkdir()
    sf.write(root / "originals" / "kick.wav", _noise(0.3, decay=30.0), SR)
    expected["originals/kick.wav"] = "no_licence"  # only its link inside the folder is listed
    os.symlink(root / "originals" / "kick.wav", root / "kick_link.wav")
    expected["kick_link.wav"] = "indexed"
    # a file name that is not UTF-8 (Latin-1 "café")
    bad_name = os.fsdecode(b"caf\xe9.wav")
    with (root / bad_name).open("wb") as f:  # soundfile cannot encode such a name itself
        sf.write(f, _noise(1.2), SR, format="WAV")
    expected["caf\\udce9.wav"] = "bad_name"
    if os.geteuid() != 0:  # root reads anything: the case cannot be made
        sf.write(root / "no_permission.wav", _noise(1.2), SR)
        (root / "no_permission.wav").chmod(0)
        expected["no_permission.wav"] = "unreadable"

    licensed = [p for p in expected if p != "originals/kick.wav"] + [bad_name]
    rows = [
        {"path": p, "licence": {"id": "L-H", "holder": "Test", "allowed_uses": ["search"]}}
        for p in licensed
    ]
    (root / "licences.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return expected


@pytest.fixture
def store(tmp_path, embedder):
    s = open_store(embedder.embedder, path=tmp_path / "store")
    yield s
    s.close()


def test_hostile_catalog_indexes_in_one_run_with_nothing_lost(tmp_path, store, embedder):
    root = tmp_path / "catalog"
    expected = build_hostile_catalog(root, tmp_path / "outside")
    assert len(expected) >= 25

    indexer = Indexer(store, embedder, workers=2, batch_size=4)
    report = indexer.run(root, catalog="hostile", manifest=load_manifest(root / "licences.jsonl"))

    outcome: dict[str, str] = dict.fromkeys(report.indexed, "indexed")
    for problem in report.skipped + report.failed:
        assert isinstance(problem.code, ProblemReason)
        assert problem.path not in outcome, f"{problem.path} reported twice"
        outcome[problem.path] = problem.code.value
    assert outcome == expected  # every file accounted for, each with the reason we expect
    assert not [p for p in report.failed if p.code is ProblemReason.WORKER_CRASHED]

    problems = {p.path: p for p in report.skipped + report.failed}
    assert "outside the catalog folder" in problems["outside_file.wav"].reason
    assert str(tmp_path / "outside" / "secret.wav") in problems["outside_file.wav"].reason
    assert str(tmp_path / "outside" / "folder") in problems["outside_folder"].reason
    assert "too short" in problems["one_sample.wav"].reason
    assert "five channels" not in json.dumps(report.to_json())

    payloads = {p.payload["path"]: p.payload for p in store.scroll()}
    assert set(payloads) == {p for p, o in expected.items() if o == "indexed"}
    assert not any("secret" in p for p in payloads)  # nothing read from outside the folder
    assert payloads["eight_channels.wav"]["analysis"]["channels"] == 8
    hihat = payloads["hihat_40ms.wav"]
    assert hihat["one_shot"] is True and hihat["bpm"] is None and hihat["key"] is None
    assert {"bpm", "key"} <= set(hihat["analysis"]["not_applicable"])
    assert payloads["click_5ms.wav"]["one_shot"] is True
    assert payloads["eight_channels.wav"]["one_shot"] is False
    assert payloads["flac_named.wav"]["analysis"]["container"] == "FLAC"
    assert payloads["ogg_named.mp3"]["analysis"]["container"] == "OGG"
    notes = {n.path: n for n in report.notes}
    assert set(notes) == {"flac_named.wav", "ogg_named.mp3"}
    assert all(n.code is ProblemReason.CONTAINER_MISMATCH for n in notes.values())
    assert "holds FLAC" in notes["flac_named.wav"].reason

    # The report is plain JSON with the codes as strings, and prints with the bad name escaped.
    data = json.loads(json.dumps(report.to_json()))
    assert {p["code"] for p in data["failed"]} >= {"empty", "undecodable", "non_finite"}
    shutil.rmtree(root)  # (no_permission.wav is removable: its folder is writable)
