"""CLAP training: a real (tiny) run learns, saves a loadable folder, is deterministic, resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import ClapAudioConfig, ClapConfig, ClapTextConfig

import audiorag.training.train_clap as train_module
from audiorag.training.train_clap import (
    augment,
    load_items,
    train_clap,
    training_caption,
    view_windows,
)
from index.clap import ClapEmbedder

pytestmark = pytest.mark.slow

COUNT = 8


def micro_clap_config(vocab_size: int) -> ClapConfig:
    """The smallest CLAP that keeps the real input geometry: enough to see a loss fall."""
    audio = ClapAudioConfig(
        spec_size=256,
        num_mel_bins=64,
        patch_size=8,
        patch_stride=(8, 8),
        patch_embeds_hidden_size=8,
        hidden_size=64,
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 2, 2],
        window_size=4,
        projection_dim=32,
        enable_fusion=False,
    )
    text = ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        projection_dim=32,
    )
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=32)


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory):
    from audiorag.democatalog.catalog import build_demo_catalog

    out = tmp_path_factory.mktemp("train-catalog") / "demo"
    build_demo_catalog(out, count=COUNT, seed=5, workers=1)
    return out


def _train(catalog, out, *, epochs=3, resume=True):
    return train_clap(
        catalog,
        out,
        epochs=epochs,
        batch_size=4,
        lr=5e-3,
        seed=11,
        views=2,
        resume=resume,
        progress=False,
        config=micro_clap_config,
    )


def _weights(folder):
    return load_file(folder / "model.safetensors")


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight_run(small_catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "straight"
    return _train(small_catalog, out), out


def test_training_learns_and_saves_a_loadable_folder(straight_run):
    summary, out = straight_run
    assert summary.items == COUNT and summary.steps == 3 * (COUNT // 4)
    assert summary.epoch_losses[-1] < summary.epoch_losses[0]

    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= files
    processor = json.loads((out / "processor_config.json").read_text())
    assert processor["feature_extractor"]["truncation"] == "rand_trunc"

    embedder = ClapEmbedder.from_pretrained(out)  # a local folder: never the network
    clip = np.sin(np.linspace(0, 2000, 48_000 * 3)).astype(np.float32)
    assert embedder.embed_audio([clip]).shape == (1, 32)
    text = embedder.embed_text(["house drums", "warm pad chords"])
    assert text.shape == (2, 32)
    assert np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)


def test_same_seed_same_weights(small_catalog, straight_run, tmp_path):
    _, first = straight_run
    _train(small_catalog, tmp_path / "again", resume=False)
    assert _same(_weights(first), _weights(tmp_path / "again"))
    assert (first / "vocab.json").read_bytes() == (tmp_path / "again" / "vocab.json").read_bytes()


def test_interrupted_run_resumes_to_the_same_weights(
    small_catalog, straight_run, monkeypatch, tmp_path
):
    _, straight = straight_run
    out = tmp_path / "interrupted"
    real_save = train_module.save_checkpoint

    def save_then_die(folder, state):
        real_save(folder, state)
        raise KeyboardInterrupt  # as if killed right after the first epoch's checkpoint

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(small_catalog, out)
    assert not (out / "model.safetensors").exists()
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)

    summary = _train(small_catalog, out)
    assert summary.resumed_from_epoch == 1
    assert _same(_weights(straight), _weights(out))


def test_resume_refuses_a_checkpoint_of_other_settings(small_catalog, straight_run):
    _, straight = straight_run
    with pytest.raises(ValueError, match="no-resume"):
        _train(small_catalog, straight, epochs=4)


def test_items_views_captions_and_augmentation(small_catalog):
    items = load_items(small_catalog)
    assert len(items) == COUNT and all(item.path.startswith("stems/") for item in items)

    loop = np.arange(48_000 * 4, dtype=np.float32)
    views = view_windows(loop, 3, np.random.default_rng(0))
    assert np.array_equal(views[0], loop)  # view 0 is what ClapEmbedder embeds
    assert all(v.size == loop.size and not np.array_equal(v, loop) for v in views[1:])

    captions = {training_caption(items[0].meta, np.random.default_rng(i)) for i in range(20)}
    assert len(captions) > 5  # fresh wordings, not one template

    features = torch.full((2, 1, 1001, 64), 20.0)
    features[:, :, 900:] = -100.0  # repeat-pad silence
    out = augment(features, torch.Generator().manual_seed(0))
    assert out.shape == features.shape and not torch.equal(out, features)
    assert torch.all(out[:, :, 900:] == -100.0)
    again = augment(features, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_several_catalogs_are_pooled(small_catalog, tmp_path):
    import shutil

    from audiorag.training.train_clap import catalog_list

    other = tmp_path / "other-soundfont"  # stands in for the same compositions, other timbres
    shutil.copytree(small_catalog, other)
    summary = _train([small_catalog, other], tmp_path / "pooled", epochs=2)
    assert summary.items == 2 * COUNT and summary.steps == 2 * (2 * COUNT // 4)
    checkpoint = tmp_path / "pooled" / "checkpoint"
    assert (checkpoint / "features.pt").is_file() and (checkpoint / "features-1.pt").is_file()
    assert (tmp_path / "pooled" / "model.safetensors").is_file()

    again = _train([small_catalog, other], tmp_path / "pooled-again", epochs=2)
    assert again.epoch_losses == summary.epoch_losses
    assert _same(_weights(tmp_path / "pooled"), _weights(tmp_path / "pooled-again"))

    assert catalog_list(small_catalog) == catalog_list([small_catalog])
    with pytest.raises(ValueError, match="twice"):
        catalog_list([small_catalog, small_catalog])
    with pytest.raises(ValueError, match="no catalog"):
        catalog_list([])


def test_timbre_augmentation_keeps_silence_and_is_seeded():
    features = torch.full((2, 1, 1001, 64), 20.0)
    features[:, :, 900:] = -100.0
    plain = augment(features, torch.Generator().manual_seed(0))
    coloured = augment(features, torch.Generator().manual_seed(0), timbre=True)
    assert coloured.shape == features.shape and not torch.equal(coloured, plain)
    assert torch.all(coloured[:, :, 900:] == -100.0)
    assert torch.equal(coloured, augment(features, torch.Generator().manual_seed(0), timbre=True))


def test_thread_count_holds_for_the_run_and_is_restored(small_catalog, monkeypatch, tmp_path):
    threads_per_epoch = []
    real_epoch = train_module.run_epoch

    def recording_epoch(*args, **kwargs):
        threads_per_epoch.append(torch.get_num_threads())
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "run_epoch", recording_epoch)
    before = torch.get_num_threads()
    summary = train_clap(
        small_catalog, tmp_path / "one-thread", epochs=2, batch_size=4, lr=5e-3, seed=11,
        views=2, progress=False, config=micro_clap_config, threads=1,
    )  # fmt: skip
    assert summary.epochs == 2 and threads_per_epoch == [1, 1]
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be at least 1"):
        train_clap(small_catalog, tmp_path / "none", epochs=1, progress=False, threads=0)


def _item(path: str, instrument: str, *, genre: str | None = None, sound: str | None = None):
    from audiorag.training.train_clap import TrainItem

    meta = {"instrument": instrument, "genre": genre, "tags": [], "bars": None}
    if sound is not None:
        meta |= {"one_shot": True, "sound": sound}
    return TrainItem(path, meta)


def test_one_shots_of_a_family_are_partial_positives_and_loops_keep_their_groups():
    from audiorag.training.train_clap import FAMILY_POSITIVE, Labels

    items = [
        _item("a", "drums", genre="house"),
        _item("b", "drums", genre="techno"),  # another drum style: still a negative of "a"
        _item("c", "drums", sound="kick"),
        _item("d", "drums", sound="kick"),
        _item("e", "drums", sound="snare"),
        _item("f", "strings", sound="violin"),
        _item("g", "strings", sound="cello"),
    ]
    weights = Labels.of(items).positives(torch.arange(len(items)))
    assert weights[0, 1] == 0 and weights[0, 0] == 1
    assert weights[2, 3] == 1  # one group
    assert weights[2, 4] == FAMILY_POSITIVE  # kick and snare: one family
    assert weights[0, 2] == 0  # a drum loop and a kick: loops keep their styles
    assert weights[5, 6] == FAMILY_POSITIVE and weights[4, 5] == 0
    assert torch.equal(weights, weights.T)


def test_catalog_shares_set_each_catalogs_part_of_an_epoch(small_catalog, tmp_path, monkeypatch):
    import shutil

    from audiorag.training.train_clap import catalog_sampling

    odds = catalog_sampling([90, 10], [0.5, 0.5])
    assert odds[:90].sum() == pytest.approx(0.5) and odds[90:].sum() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 shares for 1"):
        catalog_sampling([3], [0.5, 0.5])
    with pytest.raises(ValueError, match="positive"):
        catalog_sampling([3, 3], [1.0, 0.0])

    other = tmp_path / "other"
    shutil.copytree(small_catalog, other)
    seen: list[np.ndarray] = []
    real_epoch = train_module.run_epoch

    def recording_epoch(*args, **kwargs):
        seen.append(kwargs["sampling"])
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "run_epoch", recording_epoch)
    summary = train_clap(
        [small_catalog, other], tmp_path / "shared", epochs=1, batch_size=4, lr=5e-3, seed=11,
        views=2, progress=False, config=micro_clap_config, shares=[0.9, 0.1],
    )  # fmt: skip
    assert summary.items == 2 * COUNT and np.isfinite(summary.epoch_losses[-1])
    assert seen[0][:COUNT].sum() == pytest.approx(0.9)
    state = torch.load(tmp_path / "shared" / "checkpoint" / "state.pt", weights_only=False)
    assert state["hparams"]["shares"] == [0.9, 0.1]
