"""The real-audio retrieval evaluation (``audiorag eval retrieval --real``) and the pieces of
bench/real_audio/build.py that read the Debian packages (GUS patches, drum-kit names)."""

from __future__ import annotations

import csv
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiorag.components import BUNDLED_CLAP
from audiorag.evaluation.eval_retrieval import evaluate_real, real_markdown_table
from index.clap import ClapEmbedder

BUILD = Path(__file__).resolve().parents[1] / "bench" / "real_audio" / "build.py"


@pytest.fixture(scope="module")
def build_module():
    spec = importlib.util.spec_from_file_location("real_audio_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_instrument_names_give_one_shot_types(build_module):
    kinds = {
        name: build_module.one_shot_type(name)
        for name in ("Pearl Kick", "BassDrum", "Snare Rimshot", "Closed HH", "Sabian Hat Open",
                     "Hand Clap", "Tom Low", "Floor Tom", "Sabian Crash", "Ride Bell", "Stick",
                     "Cowbell", "23", "Sample: beats_01-39.flac", "")
    }  # fmt: skip
    assert kinds == {
        "Pearl Kick": "kick", "BassDrum": "kick", "Snare Rimshot": "snare",
        "Closed HH": "hi-hat", "Sabian Hat Open": "hi-hat", "Hand Clap": "clap",
        "Tom Low": "tom", "Floor Tom": "tom", "Sabian Crash": "cymbal", "Ride Bell": "cymbal",
        "Stick": "rim", "Cowbell": "percussion", "23": None,
        "Sample: beats_01-39.flac": None, "": None,
    }  # fmt: skip


def gus_patch(
    samples: list[np.ndarray], rate: int = 22050, loop: tuple[int, int] | None = None
) -> bytes:
    """A GUS patch as the format documents it: file, instrument, layer headers, then each
    16-bit signed sample's 96-byte header and data (looped over ``loop`` frames if given)."""
    header = b"GF1PATCH110\0ID#000002\0".ljust(129, b"\0")
    instrument = bytes(63)
    layer = bytearray(47)
    layer[6] = len(samples)
    body = b""
    for pcm in samples:
        data = (pcm * 32767).astype("<i2").tobytes()
        head = bytearray(96)
        struct.pack_into("<I", head, 8, len(data))
        struct.pack_into("<H", head, 20, rate)
        head[55] = 1  # 16-bit, signed
        if loop is not None:
            struct.pack_into("<II", head, 12, loop[0] * 2, loop[1] * 2)  # bytes
            head[55] |= 4
        body += bytes(head) + data
    return header + instrument + bytes(layer) + body


def test_gus_patches_are_read(build_module, tmp_path):
    first, second = np.linspace(-0.5, 0.5, 100), np.full(50, 0.25)
    path = tmp_path / "040_Violin.pat"
    path.write_bytes(gus_patch([first, second], rate=22050))
    samples = build_module.gus_samples(path)
    assert [(s.pcm.size, s.loop) for s in samples] == [(100, None), (50, None)]
    assert {s.rate for s in samples} == {22050}
    assert np.allclose(samples[0][0], first, atol=1e-4)
    assert np.allclose(samples[1][0], 0.25, atol=1e-4)
    (tmp_path / "bad.pat").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match="GUS"):
        build_module.gus_samples(tmp_path / "bad.pat")


def test_looped_gus_samples_play_as_held_notes(build_module, tmp_path):
    # A looped patch sample is attack + one cycle; played, the cycle repeats to the hold time.
    attack, cycle = np.linspace(0, 0.5, 200), 0.4 * np.sin(np.arange(100) * 2 * np.pi / 100)
    path = tmp_path / "073_Flute.pat"
    path.write_bytes(gus_patch([np.concatenate([attack, cycle])], rate=8000, loop=(200, 300)))
    (sample,) = build_module.gus_samples(path)
    assert sample.loop == (200, 300) and not sample.pingpong
    note = build_module.played_note(sample, hold=1.0)
    assert note.size == round((1.0 + build_module.NOTE_RELEASE) * 8000)
    assert np.allclose(note[:300], sample.pcm, atol=1e-4)
    assert np.allclose(note[300:400], note[400:500])  # the loop repeats
    assert abs(note[-1]) < 1e-3 and np.abs(note[4000:4100]).max() > 0.3  # held, then released
    unlooped = build_module.GusSample(sample.pcm, 8000)
    assert np.array_equal(build_module.played_note(unlooped), sample.pcm)


def write_real_set(folder: Path) -> None:
    """A small labelled set: noise bursts labelled hi-hat, low thumps labelled kick, sustained
    tones labelled keys; the measures only need labels, any audio indexes."""
    rng = np.random.default_rng(0)
    sr, rows = 44100, []
    t = np.arange(int(0.3 * sr)) / sr
    for n in range(6):
        hat = (rng.standard_normal(t.size) * np.exp(-t * 40) * 0.5).astype(np.float32)
        kick = (np.sin(2 * np.pi * (50 + 5 * n) * t) * np.exp(-t * 12) * 0.8).astype(np.float32)
        rows += [(f"hats/hat{n}.wav", hat, "drums", "hi-hat"),
                 (f"kicks/kick{n}.wav", kick, "drums", "kick")]  # fmt: skip
    long = np.arange(int(2.0 * sr)) / sr
    for n in range(6):
        tone = (np.sin(2 * np.pi * 220 * (n + 1) * long) * 0.5).astype(np.float32)
        rows.append((f"keys/note{n}.wav", tone, "keys", ""))
    with (folder / "labels.csv").open("w", newline="") as labels:
        writer = csv.writer(labels)
        writer.writerow(["path", "family", "one_shot_type", "source"])
        for path, audio, family, kind in rows:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(folder / path, audio, sr, subtype="PCM_16")
            writer.writerow([path, family, kind, "test"])
    with (folder / "licences.jsonl").open("w") as manifest:
        for n, (path, *_) in enumerate(rows):
            licence = {"id": f"T-{n}", "holder": "test", "allowed_uses": ["search"],
                       "attribution": "test"}  # fmt: skip
            manifest.write(json.dumps({"path": path, "licence": licence}) + "\n")


def test_real_mode_reports_the_three_measures(tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    write_real_set(folder)
    embedder = ClapEmbedder.from_pretrained(BUNDLED_CLAP)
    result = evaluate_real(folder, embedder, workdir=tmp_path / "work")
    assert result["files"] == 18
    assert result["families"] == {"drums": 12, "keys": 6}
    assert result["one_shot_types"] == {"": 6, "hi-hat": 6, "kick": 6}
    measures = result["measures"]
    assert set(measures) == {"text_instrument_p10", "one_shot_type_p10", "example_family_p5"}
    assert set(measures["text_instrument_p10"]["per_label"]) == {"drums", "keys"}
    assert set(measures["one_shot_type_p10"]["per_label"]) == {"kick", "hi-hat"}  # ≥ 5 items
    assert measures["example_family_p5"]["queries"] == 18
    for m in measures.values():
        assert 0.0 <= m["value"] <= 1.0 and m["passed"] == (m["value"] >= m["target"])
        assert 0.0 <= m["timbre_only"] <= 1.0 and 0.0 <= m["fused_search"] <= 1.0
    # the shipped timbre prototypes tell these decaying low sines from noise bursts
    assert measures["one_shot_type_p10"]["timbre_only"] >= 0.5
    # 12 of 18 files are drums: ranking everything returns drums among the top ones at least
    assert measures["example_family_p5"]["per_label"]["drums"] > 0.5
    # each text measure's timbre-only and fused figures per label, in the JSON and the table
    for name in ("text_instrument_p10", "one_shot_type_p10"):
        m = measures[name]
        assert set(m["timbre_per_label"]) == set(m["fused_per_label"]) == set(m["per_label"])
        assert m["timbre_only"] == pytest.approx(np.mean(list(m["timbre_per_label"].values())))
    table = real_markdown_table(result)
    assert "P@10" in table and "hi-hat" in table and "Per label, timbre only: " in table

    # Names hidden: the audio measures cannot change (same audio, same vectors); fused search
    # loses what the names told the captions ("kicks/kick0.wav" → "kick drums one-shot") and
    # cannot gain (here the timbre ranking alone still tells these kicks from hats).
    hidden = evaluate_real(folder, embedder, workdir=tmp_path / "work-hidden", hide_names=True)
    assert hidden["names_hidden"] and hidden["files"] == 18
    assert "names hidden" in real_markdown_table(hidden)
    for name in ("text_instrument_p10", "one_shot_type_p10"):
        assert hidden["measures"][name]["value"] == pytest.approx(measures[name]["value"])
        assert hidden["measures"][name]["timbre_only"] == pytest.approx(
            measures[name]["timbre_only"]
        )
    named_fused = measures["one_shot_type_p10"]["fused_search"]
    assert named_fused >= hidden["measures"]["one_shot_type_p10"]["fused_search"]
    assert named_fused >= 0.8


def test_real_mode_needs_labels(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"labels\.csv"):
        evaluate_real(tmp_path, ClapEmbedder.from_pretrained(BUNDLED_CLAP), workdir=tmp_path)
