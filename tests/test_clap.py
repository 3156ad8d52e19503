"""CLAP embedding: deterministic windowing, batch independence, offline loading, identity."""

from __future__ import annotations

import numpy as np
import pytest

from index.clap import (
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    ClapEmbedder,
    plan_windows,
)
from tests.tiny_models import build_tiny_clap


def _clips(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLE_RATE * 23) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = (0.1 * rng.standard_normal(SAMPLE_RATE * 4)).astype(np.float32)
    click = np.zeros(SAMPLE_RATE * 11, np.float32)
    click[:: SAMPLE_RATE // 2] = 1.0
    return [tone, noise, click, tone[: SAMPLE_RATE // 3]]


def test_windows_are_fixed_and_short_tails_dropped():
    plan = plan_windows([np.zeros(WINDOW_SAMPLES * 2 + SAMPLE_RATE // 2, np.float32)])
    assert [w.size for w in plan.windows] == [WINDOW_SAMPLES, WINDOW_SAMPLES]
    plan = plan_windows([np.zeros(WINDOW_SAMPLES + 3 * SAMPLE_RATE, np.float32)])
    assert [w.size for w in plan.windows] == [WINDOW_SAMPLES, 3 * SAMPLE_RATE]
    # A clip shorter than the minimum tail still gets its one window.
    assert len(plan_windows([np.zeros(100, np.float32)]).windows) == 1


def test_windows_reject_bad_input():
    with pytest.raises(ValueError, match="mono"):
        plan_windows([np.zeros((2, 100), np.float32)])
    with pytest.raises(ValueError, match="empty"):
        plan_windows([np.zeros(0, np.float32)])


def test_same_clip_same_vector_alone_or_in_any_batch(embedder):
    clips = _clips()
    together = embedder.embed_audio(clips)
    alone = np.stack([embedder.embed_audio([c])[0] for c in clips])
    shuffled_order = [2, 0, 3, 1]
    shuffled = embedder.embed_audio([clips[i] for i in shuffled_order])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together[shuffled_order], shuffled, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # and repeatable call to call (no random crop anywhere)
    np.testing.assert_array_equal(embedder.embed_audio(clips), together)


def test_batch_size_does_not_change_vectors(tiny_clap_folder):
    small = ClapEmbedder.from_pretrained(tiny_clap_folder, batch_size=1)
    large = ClapEmbedder.from_pretrained(tiny_clap_folder, batch_size=8)
    clips = _clips(1)
    np.testing.assert_allclose(small.embed_audio(clips), large.embed_audio(clips), atol=1e-5)


def test_text_vectors_independent_of_batch(embedder):
    texts = ["punchy house drums", "a long dark evolving pad in A minor at 90 BPM", "bass"]
    together = embedder.embed_text(texts)
    alone = np.stack([embedder.embed_text([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together.shape == (3, embedder.embedder.dim)


def test_long_text_is_truncated_not_rejected(embedder):
    vector = embedder.embed_text(["drums " * 500])
    assert np.isfinite(vector).all()


def test_embedder_id_pins_the_weights(tmp_path, tiny_clap_folder, embedder):
    same = ClapEmbedder.from_pretrained(tiny_clap_folder)
    assert same.embedder == embedder.embedder
    other = ClapEmbedder.from_pretrained(build_tiny_clap(tmp_path / "tiny-clap", seed=1))
    assert other.embedder.id != embedder.embedder.id
    assert other.embedder.id.startswith("tiny-clap@")


def test_empty_inputs(embedder):
    assert embedder.embed_audio([]).shape == (0, embedder.embedder.dim)
    assert embedder.embed_text([]).shape == (0, embedder.embedder.dim)


def test_fast_features_match_the_feature_extractor(embedder):
    """Our batched torch log-mel equals transformers' ClapFeatureExtractor (unfused mode)."""
    from index.clap import log_mel_features

    extractor = embedder.processor.feature_extractor
    windows = [c[:WINDOW_SAMPLES] for c in _clips(2)]
    reference = extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_features"]
    ours = log_mel_features(windows, extractor)
    assert ours.shape == reference.shape
    ours, reference = ours.numpy(), reference.numpy()
    # float32 STFT against float64: equal to 0.01 dB within 60 dB of each window's peak, and to
    # a fraction of a dB in the near-silent bins below that.
    loud = reference > reference.max(axis=(1, 2, 3), keepdims=True) - 60
    np.testing.assert_allclose(ours[loud], reference[loud], atol=1e-2)
    np.testing.assert_allclose(ours, reference, atol=0.5)


def test_fused_checkpoints_are_refused(tmp_path):
    from transformers import ClapModel

    folder = build_tiny_clap(tmp_path / "fused")
    model = ClapModel.from_pretrained(folder)
    model.config.audio_config.enable_fusion = True
    model.config.save_pretrained(folder)
    with pytest.raises(ValueError, match="fused CLAP checkpoint"):
        ClapEmbedder.from_pretrained(folder)
