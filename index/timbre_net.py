"""The timbre net: a small convolutional network that hears which instrument a clip is.

The store's ``timbre`` vectors are this net's embedding of each item (:mod:`index.timbre` scales
them and holds the prototypes a prompt searches them with). It replaced hand-made descriptors
(MFCC and spectral statistics): trained on the same catalogs for nine CPU minutes, it finds the
asked family among real recordings it never heard in 0.70 of the top 10 where they found 0.53,
and the same family by example in 0.74 of the top 5 (0.65); see
``index/models/timbre-net/TRAINING.md``.

What it hears: a log-mel spectrogram (64 bands, 22.05 kHz, hop 256) of :data:`WINDOW_FRAMES`
frames (1.5 s), starting at the clip's first sound — the attack, where much of what
tells instruments apart lives. A clip longer than one window is heard as the mean embedding of
its windows (up to :data:`MAX_WINDOWS`) that are within 20 dB of its loudest, so a loop's
silences do not count. The level does not count: each window is in dB below the clip's peak.

Five convolution blocks (about 0.3 M weights) pool to one :data:`EMBED_DIM` vector; training
(:mod:`audiorag.training.train_timbre_net`) puts a family head and a named-sound head on it.

>>> sr = 22050
>>> t = np.arange(sr) / sr
>>> timbre_mel(np.sin(2 * np.pi * 220 * t), sr).shape
(1, 64, 128)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

NET_SR = 22050
N_FFT = 1024
HOP = 256
N_MELS = 64
WINDOW_FRAMES = 128  # 1.5 s
MAX_WINDOWS = 8  # a 12 s stretch says what a longer stem sounds like
TOP_DB = 80.0
WINDOW_MIN_DB = -20.0  # a window this far below the loudest one is silence or a tail
EMBED_DIM = 128
NET_FOLDER = Path(__file__).resolve().parent / "models" / "timbre-net"  # the bundled net
NET_ENV = "AUDIORAG_TIMBRE_NET"  # a folder `audiorag train timbre-net` wrote, used instead
ONSET_LEVEL = 0.01  # of the peak: where a clip's first sound begins (no pre-roll: a hit that
# starts at the file's first sample and the same hit after silence must give the same windows)


def timbre_mel(samples: np.ndarray, sr: int) -> np.ndarray:
    """The clip's windows as log-mel spectrograms, (windows, :data:`N_MELS`,
    :data:`WINDOW_FRAMES`) float32 in dB below the clip's peak (−80…0). Silence and clips of a
    few samples give one window of −80."""
    import librosa

    from audio.signal import resample

    x = np.asarray(samples, dtype=np.float32)
    loud = np.flatnonzero(np.abs(x) > ONSET_LEVEL * float(np.abs(x).max())) if x.size else []
    x = x[int(loud[0]) :] if len(loud) else x
    span = WINDOW_FRAMES * HOP
    heard = (MAX_WINDOWS * span + N_FFT) * sr / NET_SR  # cut before resampling: a long stem
    y = resample(x[: int(np.ceil(heard)) + 1], sr, NET_SR)  # costs what 12 s cost
    windows = max(1, min(MAX_WINDOWS, int(np.ceil(max(y.size - N_FFT, 1) / span))))
    y = np.pad(y[: windows * span + N_FFT], (0, max(0, windows * span + N_FFT - y.size)))
    power = librosa.feature.melspectrogram(
        y=y, sr=NET_SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS
    )[:, : windows * WINDOW_FRAMES]
    peak = float(power.max())
    db = librosa.power_to_db(power, ref=peak, top_db=TOP_DB) if peak > 0 else power - TOP_DB
    db = np.maximum(db, -TOP_DB)
    mels = db.reshape(N_MELS, windows, WINDOW_FRAMES).transpose(1, 0, 2)
    return np.ascontiguousarray(mels, dtype=np.float32)


def heard_windows(mels: np.ndarray) -> np.ndarray:
    """The windows of :func:`timbre_mel` that count: those within 20 dB of the loudest.

    >>> quiet = np.full((1, N_MELS, WINDOW_FRAMES), -70.0)
    >>> heard_windows(np.concatenate([np.zeros_like(quiet), quiet])).shape[0]
    1
    """
    energy = 10 * np.log10(np.mean(10 ** (mels / 10), axis=(1, 2)) + 1e-12)
    return mels[energy >= energy.max() + WINDOW_MIN_DB]


def block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


@dataclass(frozen=True)
class TimbreNetConfig:
    """What a saved net is: its heads' labels and how it was trained (for the record)."""

    families: tuple[str, ...]
    sounds: tuple[str, ...]
    trained_on: tuple[str, ...] = ()
    epochs: int = 0
    seed: int = 0


class TimbreNet(nn.Module):
    """Log-mel window → :data:`EMBED_DIM` embedding, plus family and sound heads for training."""

    def __init__(self, config: TimbreNetConfig) -> None:
        super().__init__()
        self.config = config
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2),  # halve both axes first: 6× cheaper
            nn.BatchNorm2d(16),
            nn.ReLU(),
            block(16, 32),
            block(32, 64),
            block(64, 128),
            block(128, 128),
        )
        self.embedding = nn.Linear(256, EMBED_DIM)  # mean and max over time and frequency
        self.dropout = nn.Dropout(0.3)
        self.family_head = nn.Linear(EMBED_DIM, len(config.families))
        self.sound_head = nn.Linear(EMBED_DIM, max(1, len(config.sounds)))

    def embed(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, mels, frames) dB → (batch, EMBED_DIM)."""
        h = self.features(((mels + 40.0) / 20.0).unsqueeze(1))  # about zero mean, unit spread
        return self.embedding(torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1))

    def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Family and sound logits (training)."""
        hidden = self.dropout(torch.relu(self.embed(mels)))
        return self.family_head(hidden), self.sound_head(hidden)

    @torch.no_grad()
    def embed_clip(self, samples: np.ndarray, sr: int) -> np.ndarray:
        """The clip's embedding: the mean over its heard windows, float32 (:data:`EMBED_DIM`,)."""
        self.eval()
        windows = torch.from_numpy(heard_windows(timbre_mel(samples, sr)))
        return self.embed(windows).mean(dim=0).numpy().astype(np.float32)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()},
            str(folder / "model.safetensors"),
        )
        (folder / "config.json").write_text(json.dumps(asdict(self.config), indent=1) + "\n")

    @classmethod
    def load(cls, folder: Path | None = None) -> TimbreNet:
        """The net saved in ``folder`` (default: :func:`net_folder`)."""
        from safetensors.torch import load_file

        folder = Path(folder) if folder is not None else net_folder()
        record = json.loads((folder / "config.json").read_text())
        config = TimbreNetConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
        )
        net = cls(config)
        net.load_state_dict(load_file(str(folder / "model.safetensors")))
        return net.eval()


def net_folder() -> Path:
    """The timbre net in use: the folder ``$AUDIORAG_TIMBRE_NET`` names (one that
    ``audiorag train timbre-net --out`` wrote), else the bundled ``index/models/timbre-net``.
    It is read from the environment, which every indexing process inherits, so workers and the
    process that searches hear with the same net. Pair it with ``$AUDIORAG_TIMBRE_MODEL``
    (prototypes fitted on it: :func:`index.timbre.model_file`)."""
    named = os.environ.get(NET_ENV)
    if not named:
        return NET_FOLDER
    folder = Path(named)
    if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{NET_ENV}={named}: no timbre net there (model.safetensors + config.json, as "
            "`audiorag train timbre-net --out` writes them)"
        )
    return folder


def net_fingerprint(folder: Path | None = None) -> str:
    """The first 12 hex digits of the SHA-256 of a saved net's weights (default: the net in
    use, :func:`net_folder`)."""
    return _fingerprint(Path(folder) if folder is not None else net_folder())


@cache
def _fingerprint(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:12]


def shipped_net() -> TimbreNet:
    """The timbre net in use (:func:`net_folder`: the bundled one unless
    ``$AUDIORAG_TIMBRE_NET`` names another), loaded once per process and folder."""
    return _loaded_net(net_folder())


@cache
def _loaded_net(folder: Path) -> TimbreNet:
    return TimbreNet.load(folder)
