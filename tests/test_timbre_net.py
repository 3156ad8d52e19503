"""The timbre net (index.timbre_net): its input windows, its file format, and its training
(audiorag.training.train_timbre_net) on a small real catalog."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from index.timbre_net import (
    EMBED_DIM,
    MAX_WINDOWS,
    N_MELS,
    TOP_DB,
    WINDOW_FRAMES,
    TimbreNet,
    TimbreNetConfig,
    shipped_net,
    timbre_mel,
)

SR = 44100


def tone(seconds: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_windows_follow_the_clip_and_start_at_its_first_sound():
    assert timbre_mel(tone(0.2), SR).shape == (1, N_MELS, WINDOW_FRAMES)
    assert timbre_mel(tone(4.0), SR).shape[0] == 3  # 1.5 s windows
    assert timbre_mel(tone(60.0), SR).shape[0] == MAX_WINDOWS
    late = np.concatenate([np.zeros(SR, np.float32), tone(1.0)])
    np.testing.assert_allclose(timbre_mel(late, SR)[0], timbre_mel(tone(1.0), SR)[0], atol=1.0)
    for odd in (np.zeros(SR, np.float32), np.zeros(0, np.float32), np.full(10, 0.5, np.float32)):
        mels = timbre_mel(odd, SR)
        assert mels.shape[1:] == (N_MELS, WINDOW_FRAMES) and np.isfinite(mels).all()
        assert mels.min() >= -TOP_DB and mels.max() <= 0.0


def test_a_saved_net_loads_to_the_same_embedding(tmp_path):
    torch.manual_seed(0)
    net = TimbreNet(TimbreNetConfig(("bass", "drums"), ("kick",), ("train",), 1, 0)).eval()
    net.save(tmp_path / "net")
    loaded = TimbreNet.load(tmp_path / "net")
    assert loaded.config == net.config
    clip = tone(2.0)
    np.testing.assert_allclose(loaded.embed_clip(clip, SR), net.embed_clip(clip, SR), atol=1e-5)
    assert net.embed_clip(clip, SR).shape == (EMBED_DIM,)


def test_the_shipped_net_was_trained_on_training_catalogs_only():
    config = shipped_net().config
    assert set(config.trained_on) == {"demo", "oneshots", "samples", "instruments"}
    assert {"drums", "bass", "keys", "strings", "brass", "woodwind"} <= set(config.families)
    assert {"kick", "snare", "hi-hat", "clap", "tom", "cymbal"} <= set(config.sounds)


def test_training_on_a_catalog_names_what_it_skips_and_writes_a_loadable_net(
    demo_catalog, tmp_path
):
    import json
    import shutil

    from audiorag.training.train_timbre_net import train_timbre_net

    # the small demo catalog states one family on 5 files; each stem twice more states several
    catalog = tmp_path / "catalog"
    shutil.copytree(demo_catalog, catalog)
    entries = [json.loads(line) for line in (catalog / "licences.jsonl").read_text().splitlines()]
    with (catalog / "licences.jsonl").open("a") as manifest:
        for entry in (e for e in entries if e["path"].endswith(".wav")):
            for copy in (1, 2):
                path = entry["path"].replace(".wav", f"-{copy}.wav")
                shutil.copyfile(catalog / entry["path"], catalog / path)
                manifest.write(json.dumps({**entry, "path": path}) + "\n")
    (catalog / "stems" / "broken.wav").write_bytes(b"RIFF not really")
    skipped: dict[str, str] = {}
    losses: list[float] = []
    net = train_timbre_net(
        [catalog], tmp_path / "net", epochs=2, recorded_views=1,
        on_file=lambda p, e: e and skipped.setdefault(p.name, e),
        on_epoch=lambda epoch, loss: losses.append(loss),
    )  # fmt: skip
    assert list(skipped) == ["broken.wav"] and len(losses) == 2
    assert all(np.isfinite(losses)) and "drums" in net.config.families
    assert len(net.config.families) >= 2
    assert net.config.trained_on == ("catalog",)
    loaded = TimbreNet.load(tmp_path / "net")
    assert loaded.embed_clip(tone(1.0), SR).shape == (EMBED_DIM,)


def test_training_refuses_a_folder_without_audio(tmp_path):
    from audiorag.training.train_timbre_net import train_timbre_net

    with pytest.raises(ValueError, match="no decodable audio"):
        train_timbre_net([tmp_path], tmp_path / "net", epochs=1)
