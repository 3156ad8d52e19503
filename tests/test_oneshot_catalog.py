"""The one-shot training catalog (GM names, captions, renders, licences), the recording-chain
augmentations, and training on one-shots with them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from transformers import ClapAudioConfig, ClapConfig, ClapTextConfig, RobertaTokenizer

from audiorag.democatalog.augment import (
    codec_round_trip,
    recording_chain,
    room_impulse_response,
    speed_jitter,
)
from audiorag.democatalog.gm_names import (
    FAMILY_WORDS,
    ONE_SHOT_TYPES,
    drum_type,
    drum_words,
    program_family,
    program_words,
)
from audiorag.democatalog.oneshots import (
    MAX_SECONDS,
    build_oneshot_catalog,
    oneshot_caption,
    plan_font,
)
from audiorag.training.train_clap import (
    load_items,
    tokenizer_corpus,
    train_clap,
    training_caption,
    view_windows,
)
from index.manifest import load_manifest

DRUMS = (36, 38, 42, 39, 45, 49)  # one of each one-shot type
PROGRAMS = (0, 19, 40, 73)  # piano, church organ, violin, flute


def test_every_gm_sound_has_a_family_and_names():
    families = {program_family(p) for p in range(128)}
    assert families <= set(FAMILY_WORDS)
    assert {"keys", "organ", "strings", "brass", "woodwind", "guitar", "bass", "pad"} <= families
    assert all(program_words(p) for p in range(128))
    assert "violin" in program_words(40) and "flute" in program_words(73)
    assert "organ" in " ".join(program_words(19))
    types = {drum_type(n) for n in range(35, 82)}
    assert set(ONE_SHOT_TYPES) <= types
    assert "hi-hat" in drum_words(42) and "kick" in " ".join(drum_words(36))
    with pytest.raises(ValueError):
        drum_type(34)


def test_plan_covers_every_sound_and_is_seeded():
    plan = plan_font(0, 3, hits_per_drum=2, notes_per_program=2)
    assert len(plan) == 2 * 47 + 2 * 128
    assert plan == plan_font(0, 3, hits_per_drum=2, notes_per_program=2)
    assert plan != plan_font(0, 4, hits_per_drum=2, notes_per_program=2)
    notes = [spec for spec in plan if not spec.is_drum]
    assert all(0.02 <= spec.hold_s <= 2.5 for spec in notes)
    assert any(len(spec.pitches) == 3 for spec in notes)  # chords too


def test_captions_name_the_sound():
    meta = {"instrument": "strings", "program": 40, "pitches": [67], "drum_note": None}
    captions = {oneshot_caption(meta, np.random.default_rng(i)).lower() for i in range(80)}
    assert len(captions) > 10
    named = {c for c in captions if "violin" in c}  # its only name
    assert len(named) > 10
    # the rest name only the family, as a search for "strings" does
    assert all(any(w in c for w in ("string", "orchestral")) for c in captions - named)
    assert captions - named
    kick = {"instrument": "drums", "drum_note": 36, "sound": "kick", "pitches": [36]}
    captions = {oneshot_caption(kick, np.random.default_rng(i)).lower() for i in range(40)}
    assert all(("kick" in c or "bass drum" in c or "drum" in c) for c in captions)


def test_captions_of_samples_labelled_by_name():
    """Sample-pack items carry their own names and no GM program or key."""
    bass = {"instrument": "bass", "sound": "slap bass", "names": ["slap bass"], "pitches": []}
    captions = {oneshot_caption(bass, np.random.default_rng(i)).lower() for i in range(40)}
    assert all("bass" in c for c in captions)
    snare = {"instrument": "drums", "sound": "snare", "names": ["snare"], "drum_note": None}
    captions = {oneshot_caption(snare, np.random.default_rng(i)).lower() for i in range(40)}
    assert all("snare" in c or "drum" in c or "percussion" in c for c in captions)


@pytest.fixture(scope="module")
def oneshot_catalog(tmp_path_factory):
    out = tmp_path_factory.mktemp("oneshots") / "a"
    build_oneshot_catalog(
        out, seed=1, hits_per_drum=1, notes_per_program=1, drum_notes=DRUMS, programs=PROGRAMS
    )
    return out


def test_build_writes_licensed_one_shots_deterministically(oneshot_catalog, tmp_path):
    rows = [json.loads(line) for line in (oneshot_catalog / "licences.jsonl").open()]
    assert len(rows) == len(DRUMS) + len(PROGRAMS)
    for row in rows:
        info = sf.info(oneshot_catalog / row["path"])
        assert 0.02 <= info.duration <= MAX_SECONDS + 1e-6 and info.samplerate == 44100
        assert row["meta"]["one_shot"] is True and row["meta"]["caption"]
        assert "TimGM6mb" in row["licence"]["attribution"]
    sounds = {row["meta"]["sound"] for row in rows if row["meta"]["is_drum"]}
    assert sounds == set(ONE_SHOT_TYPES)
    manifest = load_manifest(oneshot_catalog / "licences.jsonl")
    assert not manifest.errors and len(manifest.entries) == len(rows)
    description = json.loads((oneshot_catalog / "catalog.json").read_text())
    assert "GPL-2.0" in description["soundfonts"][0]["licence"]

    again = tmp_path / "b"
    build_oneshot_catalog(
        again, seed=1, hits_per_drum=1, notes_per_program=1, drum_notes=DRUMS, programs=PROGRAMS
    )
    assert (again / "licences.jsonl").read_bytes() == (
        oneshot_catalog / "licences.jsonl"
    ).read_bytes()
    for row in rows:
        assert (again / row["path"]).read_bytes() == (oneshot_catalog / row["path"]).read_bytes()


def test_training_reads_one_shots(oneshot_catalog):
    items = load_items(oneshot_catalog)
    assert all(item.one_shot for item in items)
    assert {item.group for item in items} >= {"drums/kick", "strings/violin"}
    violin = next(item for item in items if item.meta.get("program") == 40)
    captions = [training_caption(violin.meta, np.random.default_rng(i)) for i in range(20)]
    assert sum("violin" in c.lower() for c in captions) > 8
    corpus = " ".join(tokenizer_corpus(items, seed=0))
    assert "hi-hat" in corpus and "clarinet" in corpus  # GM vocabulary joins the BPE corpus

    hit = np.zeros(4800, np.float32)
    hit[:100] = 1.0
    views = view_windows(hit, 3, np.random.default_rng(0), one_shot=True)
    assert all(v.size == 48_000 for v in views)  # padded to the indexer's one second
    assert all(np.array_equal(v, views[0]) for v in views)  # never shifted
    recorded = view_windows(hit, 3, np.random.default_rng(0), one_shot=True, record=True)
    assert np.array_equal(recorded[0], views[0])  # view 0 stays what the indexer embeds
    assert not np.array_equal(recorded[1], views[1])


def test_recording_chain_is_seeded_and_bounded():
    x = np.sin(np.linspace(0, 3000, 48_000)).astype(np.float32) * 0.5
    for seed in range(6):
        y = recording_chain(x, 48_000, np.random.default_rng(seed))
        assert y.dtype == np.float32 and np.isfinite(y).all()
        assert abs(y.size - x.size) <= 0.07 * x.size  # speed jitter at most ±6 %
        assert np.array_equal(y, recording_chain(x, 48_000, np.random.default_rng(seed)))
    assert not np.array_equal(recording_chain(x, 48_000, np.random.default_rng(0)), x)
    ir = room_impulse_response(48_000, np.random.default_rng(0))
    assert ir[0] == 1.0 and 0.15 * 48_000 <= ir.size <= 1.3 * 48_000
    for seed in (0, 3):  # an MP3 and an OGG round trip keep the length and most of the signal
        y = codec_round_trip(x, 48_000, np.random.default_rng(seed))
        assert y.size == x.size and np.abs(y).max() > 0.1
    assert speed_jitter(x, 48_000, np.random.default_rng(0)).size != x.size


def micro_config(vocab_size: int) -> ClapConfig:
    audio = ClapAudioConfig(
        spec_size=256, num_mel_bins=64, patch_size=8, patch_stride=(8, 8),
        patch_embeds_hidden_size=8, hidden_size=64, depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 2, 2], window_size=4, projection_dim=32, enable_fusion=False,
    )  # fmt: skip
    text = ClapTextConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=80, projection_dim=32,
    )  # fmt: skip
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=32)


@pytest.mark.slow
def test_training_on_one_shots_with_recording_augmentation(oneshot_catalog, tmp_path):
    summary = train_clap(
        oneshot_catalog, tmp_path / "run", epochs=2, batch_size=4, seed=2, views=2,
        text_warmup_steps=2, progress=False, config=micro_config, record_augment=True,
    )  # fmt: skip
    assert summary.items == len(DRUMS) + len(PROGRAMS) and summary.steps == 2 * 2
    assert all(np.isfinite(summary.epoch_losses))
    state = json.loads((tmp_path / "run" / "checkpoint" / "summary.json").read_text())
    assert state["items"] == summary.items
    assert (tmp_path / "run" / "model.safetensors").is_file()

    # Fine-tuning a trained folder keeps its tokenizer and starts from its weights.
    tuned = train_clap(
        oneshot_catalog, tmp_path / "tuned", epochs=1, batch_size=4, seed=2, views=2,
        progress=False, init_from=tmp_path / "run",
    )  # fmt: skip
    assert tuned.steps == 2 and np.isfinite(tuned.epoch_losses).all()
    vocabularies = [
        RobertaTokenizer.from_pretrained(tmp_path / name).get_vocab() for name in ("run", "tuned")
    ]
    assert vocabularies[0] == vocabularies[1]


def test_the_cli_renders_one_shots(tmp_path):
    from typer.testing import CliRunner

    from audiorag.cli.app import app

    out = tmp_path / "oneshots"
    result = CliRunner().invoke(
        app, ["catalog", "oneshots", "--out", str(out), "--hits-per-drum", "1",
              "--notes-per-program", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "licences.jsonl").open()]
    assert len(rows) >= 40 and all(r["meta"]["instrument"] == "drums" for r in rows)
