"""The sample-pack training catalog's labels (audiorag.democatalog.sample_packs)."""

from __future__ import annotations

import pytest

from audiorag.democatalog.gm_names import FAMILY_WORDS, TYPE_WORDS
from audiorag.democatalog.sample_packs import NAME_LABELS, SampleLabel, item_meta, label_for
from audiorag.training.train_clap import TrainItem, training_caption


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
    assert label_for(name) == SampleLabel(family, sound)


@pytest.mark.parametrize("name", ["loop_amen.flac", "metronome01.ogg", "saw01.ogg"])
def test_loops_and_test_tones_are_left_out(name):
    assert label_for(name) is None


def test_every_label_can_be_captioned_for_training():
    import numpy as np

    for _, family, sound in NAME_LABELS:
        assert family in FAMILY_WORDS
        meta = item_meta(SampleLabel(family, sound), "pack")
        item = TrainItem("x.flac", meta)
        assert item.one_shot and item.group == f"{family}/{sound}"
        caption = training_caption(meta, np.random.default_rng(0))
        if family == "drums":
            assert sound in TYPE_WORDS
        assert caption.strip()
