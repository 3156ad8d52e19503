"""Train the timbre net (``index/models/timbre-net``) on training catalogs.

    audiorag train timbre-net --catalog data/train/demo --catalog data/train/oneshots \
        --catalog data/train/samples --catalog data/train/instruments
    audiorag train timbre --catalog …   # then refit the scale and prototypes on its embedding

Every audio file of the catalogs is heard as it is and through :data:`RECORDED_VIEWS` random
recording chains (room, EQ, compressor, noise, codec, speed:
:func:`audiorag.democatalog.augment.recording_chain`), each as the first window of
:func:`index.timbre_net.timbre_mel` (the attack and 1.5 s after it). Labels are the ones the timbre
prototypes use (:func:`audiorag.training.fit_timbre.file_labels`): the manifest's family, and the
sound the file name states where there is one. The net learns both (cross-entropy, classes
weighted by the inverse square root of their share so 900 drum files do not drown 30 organ
notes; a file with no named sound teaches only the family), with SpecAugment-style masks, a ±3
band shift and a random floor level on every batch. One loop, top to bottom, as in nanoGPT.

Fit it on training catalogs only, never on a held-out set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audiorag.training.fit_timbre import RECORDED_VIEWS, describe_files, well_stated
from index.timbre_net import TOP_DB, TimbreNet, TimbreNetConfig, timbre_mel

EPOCHS = 16
BATCH = 64
PEAK_LR = 3e-3
WEIGHT_DECAY = 1e-2
LABEL_SMOOTHING = 0.1
NO_SOUND = -100  # cross-entropy's ignore index: the file names no sound


def first_window(clip: np.ndarray, sr: int) -> np.ndarray:
    """The window a training file is heard as: the first of :func:`index.timbre_net.timbre_mel`
    (its first sound and 1.5 s after it), in float16 to halve the memory of 7,500 of them."""
    return timbre_mel(clip, sr)[0].astype(np.float16)


def augment(mels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A band shift of up to ±3, one frequency and one time mask, a floor level ±6 dB."""
    out = mels.clone()
    bands, frames = out.shape[1:]
    for row in out:
        row.copy_(torch.roll(row, int(rng.integers(-3, 4)), dims=0))
        low = int(rng.integers(0, bands - 8))
        row[low : low + int(rng.integers(0, 8))] = -TOP_DB
        start = int(rng.integers(0, frames - 8))
        row[:, start : start + int(rng.integers(0, 20))] = -TOP_DB
        row += float(rng.uniform(-6, 6))
    return out.clamp(-TOP_DB, 0.0)


def class_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse square root of each class's share, mean about 1."""
    counts = np.bincount(labels[labels >= 0], minlength=classes).astype(np.float64)
    weights = (counts.sum() / (classes * np.maximum(counts, 1))) ** 0.5
    return torch.tensor(weights, dtype=torch.float32)


def train_timbre_net(
    catalogs: Sequence[Path],
    out: Path,
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    recorded_views: int = RECORDED_VIEWS,
    on_file: Callable[[Path, str | None], None] = lambda path, error: None,
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> TimbreNet:
    """Hear the catalogs (:func:`audiorag.training.fit_timbre.describe_files` with
    :func:`first_window`), train the net and save it to the folder ``out``.
    ``on_epoch(epoch, mean loss)`` follows each epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    heard = describe_files(
        catalogs, recorded_views=recorded_views, seed=seed, on_file=on_file, features=first_window
    )  # the files and views the prototypes are fitted on, each as its first window
    families = well_stated(heard.family, heard.file)
    sounds = well_stated(heard.sound, heard.file)
    if len(families) < 2:
        raise ValueError(f"the catalogs state fewer than two families on enough files: {families}")
    keep = np.array([f in families for f in heard.family])
    family = np.array([families.index(f) for f in np.array(heard.family, dtype=object)[keep]])
    sound = np.array(
        [sounds.index(s) if s in sounds else NO_SOUND for s in np.array(heard.sound)[keep]]
    )
    mels = torch.from_numpy(heard.features[keep].astype(np.float32))
    net = TimbreNet(
        TimbreNetConfig(
            tuple(families), tuple(sounds), tuple(Path(c).name for c in catalogs), epochs, seed
        )
    )
    steps_per_epoch = -(-len(family) // BATCH)
    optimiser = torch.optim.AdamW(net.parameters(), lr=PEAK_LR / 25, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, PEAK_LR, total_steps=epochs * steps_per_epoch
    )
    family_loss = nn.CrossEntropyLoss(
        weight=class_weights(family, len(families)), label_smoothing=LABEL_SMOOTHING
    )
    sound_loss = nn.CrossEntropyLoss(
        weight=class_weights(sound, max(1, len(sounds))),
        label_smoothing=LABEL_SMOOTHING,
        ignore_index=NO_SOUND,
    )
    family_t, sound_t = torch.from_numpy(family), torch.from_numpy(sound)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(family_t))
        total = 0.0
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            family_logits, sound_logits = net(augment(mels[rows], rng))
            loss = family_loss(family_logits, family_t[rows])
            if (sound_t[rows] != NO_SOUND).any():  # a batch of unnamed loops teaches families only
                loss = loss + sound_loss(sound_logits, sound_t[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(rows)
        on_epoch(epoch, total / len(order))
    net.eval()
    net.save(out)
    return net
