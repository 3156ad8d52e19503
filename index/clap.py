"""CLAP embeddings: audio and captions into one cosine space.

We use transformers' ``ClapModel`` + ``ClapProcessor`` (the port of the LAION CLAP models), loaded
from a hub id or a local folder. Embedding is deterministic by construction:

* audio is resampled to 48 kHz mono and cut into fixed, non-overlapping 10 s windows (the model's
  input length), so the feature extractor never crops at random and never flags a clip "longer";
* each window is embedded on its own row of a batch, the raw projections of a clip's windows are
  mean-pooled, and only then L2-normalised;
* the model runs in eval mode, so nothing in it depends on the other rows of a batch.

The same clip therefore gives the same vector alone or inside any batch (tested).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from transformers import (
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
)
from transformers.utils import logging as hf_logging

from index.store import Embedder

# The default CLAP: trained on the synthetic demo catalog by `audiorag train clap` and shipped in
# the package (see its TRAINING.md), because no model hub is reachable where this runs.
BUNDLED_CLAP = Path(__file__).resolve().parent / "models" / "clap-demo"

# Our own progress bars show the work; transformers' per-load bars would only add noise.
hf_logging.disable_progress_bar()

SAMPLE_RATE = 48_000
WINDOW_SECONDS = 10.0
WINDOW_SAMPLES = int(SAMPLE_RATE * WINDOW_SECONDS)
# A trailing window shorter than this is dropped (unless it is the clip's only window): a 0.2 s
# tail repeat-padded to 10 s would weigh as much as a full window of real content.
MIN_TAIL_SAMPLES = SAMPLE_RATE  # 1 s
# LAION trained its CLAPs on captions cut at 77 tokens (their RoBERTa could take 512): folders
# converted from LAION checkpoints record it as the tokenizer's model_max_length, and the hub's
# laion/* ports, whose tokenizers say 512, are held to it on load.
LAION_TEXT_TOKENS = 77


@dataclass(frozen=True)
class WindowPlan:
    """Which clip each window row belongs to."""

    windows: list[np.ndarray]
    owner: np.ndarray  # (n_windows,) clip index of each window


def plan_windows(clips: Sequence[np.ndarray]) -> WindowPlan:
    """Cut 48 kHz mono clips into fixed 10 s windows.

    >>> plan = plan_windows([np.zeros(48_000 * 25, np.float32), np.zeros(4_800, np.float32)])
    >>> [len(w) for w in plan.windows], plan.owner.tolist()
    ([480000, 480000, 240000, 4800], [0, 0, 0, 1])
    """
    windows: list[np.ndarray] = []
    owner: list[int] = []
    for index, clip in enumerate(clips):
        if clip.ndim != 1:
            raise ValueError(f"clip {index}: expected mono audio, got shape {clip.shape}")
        if clip.size == 0:
            raise ValueError(f"clip {index}: empty audio")
        n = max(1, math.ceil(clip.size / WINDOW_SAMPLES))
        for w in range(n):
            piece = clip[w * WINDOW_SAMPLES : (w + 1) * WINDOW_SAMPLES]
            if w > 0 and piece.size < MIN_TAIL_SAMPLES:
                break
            windows.append(piece)
            owner.append(index)
    return WindowPlan(windows, np.asarray(owner, dtype=np.int64))


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """Short sha256 of a model's parameters, to tell two sets of weights apart."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


class ClapEmbedder:
    """Embeds 48 kHz mono audio and captions with a CLAP model.

    Build it with :meth:`from_pretrained` (hub id or folder) or directly from components.
    """

    def __init__(
        self,
        model: ClapModel,
        processor: ClapProcessor,
        *,
        model_id: str,
        device: str = "cpu",
        batch_size: int = 16,
    ) -> None:
        self.model = model.eval().to(device)
        self.processor = processor
        self.device = device
        self.batch_size = batch_size
        self.embedder = Embedder(id=model_id, dim=int(model.config.projection_dim))

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        revision: str | None = None,
        device: str = "cpu",
        batch_size: int = 16,
    ) -> ClapEmbedder:
        """Load from a local folder (never touches the network) or a hub id.

        The embedder id names the model and pins its weights: ``<hub id>@<revision or weights
        hash>`` or ``<folder name>@<weights hash>``, so a collection built by one set of weights
        refuses queries from another.
        """
        folder = Path(name_or_path)
        local = folder.is_dir()
        source = str(folder) if local else str(name_or_path)
        model = ClapModel.from_pretrained(source, revision=revision, local_files_only=local)
        processor = ClapProcessor.from_pretrained(source, revision=revision, local_files_only=local)
        _check_unfused(model, processor, source)
        if not local and str(name_or_path).startswith("laion/"):
            processor.tokenizer.model_max_length = LAION_TEXT_TOKENS
        label = folder.name if local else str(name_or_path)
        model_id = f"{label}@{revision or weights_fingerprint(model)}"
        return cls(model, processor, model_id=model_id, device=device, batch_size=batch_size)

    @torch.inference_mode()
    def embed_audio(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised audio embeddings, shape (len(clips), dim), for 48 kHz mono clips."""
        if not clips:
            return np.zeros((0, self.embedder.dim), np.float32)
        plan = plan_windows(clips)
        raw = np.concatenate(
            [
                self._embed_windows(plan.windows[i : i + self.batch_size])
                for i in range(0, len(plan.windows), self.batch_size)
            ]
        )
        pooled = np.stack([raw[plan.owner == i].mean(axis=0) for i in range(len(clips))])
        return _l2(pooled).astype(np.float32)

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised caption embeddings, shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.embedder.dim), np.float32)
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.processor.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_text_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model.text_model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            out.append(self.model.text_projection(hidden.pooler_output).float().cpu().numpy())
        return _l2(np.concatenate(out)).astype(np.float32)

    @property
    def max_text_tokens(self) -> int:
        # RoBERTa-style position ids start after the padding index, hence the margin of 2; the
        # tokenizer's model_max_length is the length the text tower was trained at.
        positions = int(self.model.config.text_config.max_position_embeddings) - 2
        return min(positions, int(self.processor.tokenizer.model_max_length))

    def _embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        features = log_mel_features(windows, self.processor.feature_extractor, self.device)
        hidden = self.model.audio_model(input_features=features)
        return self.model.audio_projection(hidden.pooler_output).float().cpu().numpy()


def repeat_pad(window: np.ndarray, length: int) -> np.ndarray:
    """Tile a short window whole-number times, then zero-pad to ``length`` (CLAP's "repeatpad").

    >>> repeat_pad(np.array([1.0, 2.0]), 5).tolist()
    [1.0, 2.0, 1.0, 2.0, 0.0]
    """
    if window.size >= length:
        return window[:length]
    tiled = np.tile(window, length // window.size)
    return np.pad(tiled, (0, length - tiled.size))


def log_mel_features(
    windows: Sequence[np.ndarray],
    extractor: ClapFeatureExtractor,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Batched equivalent of ``ClapFeatureExtractor`` in unfused ("rand_trunc") mode for
    windows no longer than its ``max_length_s``: shape (batch, 1, frames, mel bins), on ``device``.

    The extractor computes each window's STFT in float64 numpy, ~0.1 s a window on this CPU; a
    float32 STFT with the extractor's own (Slaney) mel filters gives the same features (tested
    against it) an order of magnitude faster. On a GPU the STFT is one batched ``torch.stft``
    there, so the host only pads and copies samples (it would otherwise cap throughput at a few
    hundred windows/s); on a CPU, ``torch.stft`` takes 12 ms a window where scipy's pocketfft
    over strided frames takes 3, so the CPU path frames and transforms in numpy.

    >>> from transformers import ClapFeatureExtractor
    >>> log_mel_features([np.zeros(48_000, np.float32)], ClapFeatureExtractor()).shape
    torch.Size([1, 1, 1001, 64])
    """
    length = extractor.nb_max_samples
    padded = [repeat_pad(np.asarray(w, dtype=np.float32), length) for w in windows]
    device = torch.device(device)
    filters = _mel_filters(extractor)
    if device.type == "cpu":
        n_fft, hop = extractor.fft_window_size, extractor.hop_length
        powers = [torch.from_numpy(_power_frames(x, n_fft, hop)) for x in padded]
        mel = torch.stack([power @ filters for power in powers])
    else:
        mel = _mel_on_device(np.stack(padded), extractor, filters, device)
    return (10.0 * torch.log10(mel.clamp_min(1e-10))).unsqueeze(1)


def _mel_filters(extractor: ClapFeatureExtractor) -> torch.Tensor:
    """The extractor's Slaney mel bank, (frequency bins, mel bins) float32."""
    return torch.from_numpy(np.asarray(extractor.mel_filters_slaney, dtype=np.float32))


def _power_frames(samples: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Power spectrum (frames, n_fft // 2 + 1) of one window: centred, reflect-padded,
    periodic Hann frames, as ``torch.stft(center=True, pad_mode="reflect")`` frames them."""
    padded = np.pad(samples, n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * _hann(n_fft)
    spectrum = scipy.fft.rfft(frames, axis=-1)
    return spectrum.real**2 + spectrum.imag**2


@lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (``torch.hann_window(n, periodic=True)``), float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def _mel_on_device(
    batch: np.ndarray, extractor: ClapFeatureExtractor, filters: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Mel power (batch, frames, mel bins) by one ``torch.stft`` on ``device``."""
    waveform = torch.from_numpy(batch)
    if device.type == "cuda":  # pinned: the copy overlaps the host work of the next batch
        waveform = waveform.pin_memory()
    waveform = waveform.to(device, non_blocking=True)
    n_fft, hop = extractor.fft_window_size, extractor.hop_length
    spectrum = torch.stft(
        waveform,
        n_fft=n_fft,
        hop_length=hop,
        window=torch.hann_window(n_fft, periodic=True, device=device),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = spectrum.real.square() + spectrum.imag.square()  # (batch, bins, frames)
    return torch.einsum("bft,fm->btm", power, filters.to(device))


def _check_unfused(model: ClapModel, processor: ClapProcessor, source: str) -> None:
    """We window audio ourselves and feed single-channel log-mels; fused checkpoints expect the
    4-channel random-crop "fusion" input and would embed differently call to call."""
    if model.config.audio_config.enable_fusion:
        raise ValueError(
            f"{source} is a fused CLAP checkpoint; use an unfused one "
            "(e.g. laion/larger_clap_general or laion/clap-htsat-unfused)"
        )
    # Keep the processor consistent with how we embed, should anyone call it directly.
    processor.feature_extractor.truncation = "rand_trunc"


def train_byte_level_tokenizer(texts: Sequence[str], folder: Path, vocab_size: int = 512) -> None:
    """Train a byte-level BPE on ``texts``; save it as vocab.json + merges.txt (RoBERTa style)."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_model(str(folder))
