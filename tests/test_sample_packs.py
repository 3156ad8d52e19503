"""The sample-pack training catalog's labels (audiorag.democatalog.sample_packs)."""

from __future__ import annotations

import pytest

from audiorag.democatalog.gm_names import FAMILY_WORDS, TYPE_WORDS
from audiorag.democatalog.sample_packs import NAME_LABELS, item_meta, label_for
from audiorag.training.train_clap import TrainItem, training_caption
from index.names import NameLabel


@pytest.mark.parametrize(
    ("name", "family", "sound"),
    [
        ("bd_808.flac", "drums", "kick"),
        ("drum_snare_hard.flac", "drums", "snare"),
        ("drum_cymbal_closed.flac", "drums", "hi-hat"),
        ("drum_cymbal_hard.flac", "drums", "cymbal"),
        ("snare_rim01.ogg", "drums", "rim"),
        ("tabla_na.flac", "drums", "percussion"),
        ("bass_voxy_c.flac", "bass", "synth bass"),
        ("bassslap01.ogg", "bass", "slap bass"),
        ("church_organ03.ogg", "organ", "church organ"),
        ("violin_pizzicato01.ogg", "strings", "violin"),
        ("elec_blip.flac", "fx", "sound effect"),
    ],
)
def test_pack_file_names_are_labelled(name, family, sound):
    assert label_for(name) == NameLabel(family, sound)


@pytest.mark.parametrize("name", ["loop_amen.flac", "metronome01.ogg", "saw01.ogg"])
def test_loops_and_test_tones_are_left_out(name):
    assert label_for(name) is None


def test_every_label_can_be_captioned_for_training():
    import numpy as np

    for _, family, sound in NAME_LABELS:
        assert family in FAMILY_WORDS
        meta = item_meta(NameLabel(family, sound), "pack")
        item = TrainItem("x.flac", meta)
        assert item.one_shot and item.group == f"{family}/{sound}"
        caption = training_caption(meta, np.random.default_rng(0))
        if family == "drums":
            assert sound in TYPE_WORDS
        assert caption.strip()


def _unpacked(debs, package: str, files: dict[str, bytes]) -> None:
    """A package as ``fetch`` leaves it after ``dpkg -x``: then nothing is downloaded."""
    from audiorag.democatalog.sample_packs import PACKAGES

    for name, data in files.items():
        path = debs / f"x_{package}" / PACKAGES[package] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _flac(seed: int) -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    audio = np.random.default_rng(seed).standard_normal(4410).astype(np.float32) * 0.1
    buffer = io.BytesIO()
    sf.write(buffer, audio, 44100, format="FLAC")
    return buffer.getvalue()


def test_the_cli_builds_a_catalog_and_leaves_out_what_it_must(tmp_path):
    import json

    from typer.testing import CliRunner

    from audiorag.cli.app import app

    debs, held_out = tmp_path / "debs", tmp_path / "heldout"
    held_out.mkdir()
    (held_out / "kick.wav").write_bytes(_flac(3))  # same bytes as a pack file: must go
    _unpacked(debs, "sonic-pi-samples", {
        "bd_808.flac": _flac(1), "sn_dub.flac": _flac(2), "bd_copy.flac": _flac(3),
        "loop_amen.flac": _flac(4), "bd_broken.flac": b"RIFF junk",
    })  # fmt: skip
    _unpacked(debs, "lmms-common", {"instruments/cello01.ogg": _flac(5),
                                    "beats/rave_kick01.ogg": _flac(6)})  # fmt: skip
    out = tmp_path / "samples"
    result = CliRunner().invoke(app, ["catalog", "sample-packs", "--out", str(out), "--debs",
                                      str(debs), "--exclude", str(held_out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "licences.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == [
        "samples/lmms-common/strings/cello01.ogg",
        "samples/sonic-pi-samples/drums/bd_808.flac",
        "samples/sonic-pi-samples/drums/sn_dub.flac",
    ]
    assert all((out / r["path"]).is_file() and r["meta"]["one_shot"] for r in rows)
    described = json.loads((out / "catalog.json").read_text())
    assert described["held_out_duplicates_skipped"] == 1
    assert described["unlabelled_skipped"] == 1  # loop_amen; beats/ is skipped as a folder
    assert [line.split(":")[1].strip() for line in described["undecodable_skipped"]] == [
        "bd_broken.flac"
    ]
    attribution = {r["path"].split("/")[1]: r["licence"]["attribution"] for r in rows}
    assert "GPL-2+" in attribution["lmms-common"] and "CC0" in attribution["sonic-pi-samples"]
