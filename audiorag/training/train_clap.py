"""Training a small CLAP on a demo catalog: contrastive audio–caption learning that fits a CPU.

``audiorag train clap --catalog data/demo --out runs/clap-demo`` runs :func:`train_clap`, which
reads top to bottom:

1. items      the catalogs' stems and their ground-truth metadata (``licences.jsonl``); several
              catalogs (``--catalog A --catalog B``: say, one set of compositions rendered with
              two SoundFonts) are pooled, so each family is heard in several timbres;
2. tokenizer  a byte-level BPE trained on many sampled captions, saved RoBERTa-style;
3. features   each stem decoded once to 48 kHz mono and cut into a few seeded *views* (a
              circular shift of the loop, then one of the 10 s windows ``ClapEmbedder`` would
              cut), each turned into log-mel features once and kept in memory;
4. model      transformers' ``ClapModel`` from a small config (HTSAT audio tower, RoBERTa text),
              whose text tower is first warmed up alone on caption–caption pairs;
5. epochs     a seeded order; per item one cached view with cheap log-mel augmentation (gain, EQ
              tilt, optionally a smooth random EQ curve and a short reverb tail, noise floor,
              one frequency and one time mask) and a fresh caption; symmetric
              InfoNCE where items of the same instrument family and style are positives, not
              negatives, plus the warm-up's caption–caption loss; AdamW (text tower at 0.3x the
              rate), linear warmup, cosine decay;
6. checkpoint after every epoch in ``out/checkpoint/``; a rerun resumes from it;
7. save       a model folder that ``ClapModel`` / ``ClapProcessor.from_pretrained`` load offline.

Every random choice comes from ``seed`` (the views, the warm-up) or from ``(seed, epoch)`` (order,
view pick, captions, augmentation, dropout), so two runs with one seed give identical weights
and a resumed run matches an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
    ClapTextConfig,
    RobertaTokenizer,
)

from audio.decode import decode_audio
from audio.signal import resample
from audiorag.democatalog.augment import recording_chain
from audiorag.democatalog.captions import (
    INSTRUMENT_SYNONYMS,
    MOOD_SYNONYMS,
    PROGRAM_DESCRIPTIONS,
    STYLE_SYNONYMS,
    capitalize,
    caption_for,
    draw,
    instrument_phrase,
    mood_phrase,
)
from audiorag.democatalog.gm_names import vocabulary as gm_vocabulary
from audiorag.democatalog.oneshots import oneshot_caption
from audiorag.training.schedule import warmup_cosine
from index.clap import SAMPLE_RATE, log_mel_features, plan_windows, train_byte_level_tokenizer
from index.ingest import kind_of
from index.prepare import ONE_SHOT_PAD_SECONDS

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
FEATURES_FILE = "features.pt"
MAX_TEXT_POSITIONS = 80  # RoBERTa position ids start after the padding index: 78 tokens usable
SILENCE_DB = -100.0  # log_mel_features' floor, 10 * log10(1e-10): repeat-pad zeros sit here
WARMUP_SHARE = 0.05
WEIGHT_DECAY = 0.05
MAX_LOGIT_SCALE = math.log(100.0)  # as in CLIP: beyond 100 the softmax only overfits
TEXT_WARMUP_BATCH = 64
TEXT_SCALE = 10.0  # fixed temperature of the text warm-up; CLAP's learned ones are the joint loss's
TEXT_LR_SCALE = 0.3  # of the audio tower's rate, once warmed up
TEXT_AUX_WEIGHT = 1.0  # of the caption–caption loss kept on beside the audio–caption one
FAMILY_POSITIVE = 0.25  # target weight of a one-shot's family members that are not its group
EQ_DB = 9.0  # the random EQ curve's largest gain or cut per control point
EQ_POINTS = 6  # control points of the random EQ curve across the mel bins
REVERB_DELAYS = (1, 2, 4, 8, 16, 32)  # frames (10 ms) of the reverb tail's delayed copies

# Short captions teach the text tower that "bass" alone, or "techno drums", mean the same as the
# long captions that mention them; search queries are mostly this short.
SHORT_CAPTION_SHARE = 0.3
SHORT_TEMPLATES: tuple[str, ...] = (
    "{instrument}",
    "{instrument} loop",
    "{style} {instrument}",
    "{moods} {instrument}",
    "{style} {instrument} loop",
    "{moods} {style} {instrument}",
)


@dataclass(frozen=True)
class TrainItem:
    """One stem of the catalog and its ground truth (instrument, genre, bpm, key, tags, bars)."""

    path: str  # relative to the catalog folder
    meta: dict[str, Any]

    @property
    def one_shot(self) -> bool:
        """A hit or note of a one-shot catalog (``audiorag.democatalog.oneshots``), not a loop."""
        return bool(self.meta.get("one_shot"))

    @property
    def group(self) -> str:
        """Items sharing this label count as positives of one another: family and style for a
        loop, family and sound (kick, violin…) for a one-shot."""
        detail = self.meta.get("sound") if self.one_shot else self.meta["genre"]
        return f"{self.meta['instrument']}/{detail}"


@dataclass
class TrainSummary:
    """What :func:`train_clap` did."""

    out: Path
    items: int
    epochs: int
    steps: int
    parameters: int
    size_bytes: int
    epoch_losses: list[float] = field(default_factory=list)
    resumed_from_epoch: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "out": str(self.out)}


# --- 1. items -----------------------------------------------------------------------------------


def load_items(catalog: Path) -> list[TrainItem]:
    """Every stem listed in ``catalog/licences.jsonl`` with the metadata captions need."""
    manifest = Path(catalog) / "licences.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"no licences.jsonl in {catalog}: build one with `catalog demo`")
    items = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        meta = row.get("meta", {})
        if kind_of(Path(row["path"])) != "stem" or not (Path(catalog) / row["path"]).is_file():
            continue
        missing = {"instrument", "genre", "tags", "bars"} - set(meta)
        if missing:
            raise ValueError(f"{row['path']}: metadata lacks {sorted(missing)}")
        items.append(TrainItem(row["path"], meta))
    if len(items) < 2:
        raise ValueError(f"{catalog}: contrastive training needs at least 2 stems")
    return sorted(items, key=lambda item: item.path)


# --- 2. captions and tokenizer ------------------------------------------------------------------


def short_caption(meta: dict[str, Any], rng: np.random.Generator) -> str:
    """A search-query-like caption: "bass", "techno drums", "dark pad loop"."""
    template = draw(SHORT_TEMPLATES, rng)
    text = template.format(
        instrument=instrument_phrase(meta["instrument"], meta.get("program"), rng),
        style=draw(STYLE_SYNONYMS.get(meta["genre"], (meta["genre"],)), rng),
        moods=mood_phrase(meta["tags"], rng),
    )
    return capitalize(" ".join(text.split())) if rng.random() < 0.5 else " ".join(text.split())


def training_caption(meta: dict[str, Any], rng: np.random.Generator) -> str:
    """A fresh wording of an item's facts: usually a full caption, sometimes a short one; a
    one-shot's caption names its sound."""
    if meta.get("one_shot"):
        return oneshot_caption(meta, rng)
    if rng.random() < SHORT_CAPTION_SHARE:
        return short_caption(meta, rng)
    return caption_for(meta, rng)


def tokenizer_corpus(items: Sequence[TrainItem], seed: int, per_item: int = 12) -> list[str]:
    """Captions to train the BPE on: many wordings per item, plus every synonym once, so no
    vocabulary word the caption generator can produce is left to byte fallback."""
    rng = np.random.default_rng([seed, 1])
    texts = [training_caption(item.meta, rng) for item in items for _ in range(per_item)]
    for vocabulary in (INSTRUMENT_SYNONYMS, STYLE_SYNONYMS, MOOD_SYNONYMS):
        texts += [" ".join(words) for words in vocabulary.values()]
    texts += [
        " ".join(names) for family in PROGRAM_DESCRIPTIONS.values() for names in family.values()
    ]
    if any(item.one_shot for item in items):  # only then: loop-only tokenizers stay as they were
        texts += gm_vocabulary()
    return texts


def build_tokenizer(items: Sequence[TrainItem], out: Path, seed: int) -> RobertaTokenizer:
    """Train the byte-level BPE into ``out`` and load it as the RoBERTa tokenizer CLAP uses."""
    train_byte_level_tokenizer(tokenizer_corpus(items, seed), out, vocab_size=1024)
    return RobertaTokenizer.from_pretrained(out, model_max_length=MAX_TEXT_POSITIONS - 2)


# --- 3. audio features --------------------------------------------------------------------------


def view_windows(
    clip: np.ndarray,
    views: int,
    rng: np.random.Generator,
    *,
    one_shot: bool = False,
    record: bool = False,
) -> list[np.ndarray]:
    """``views`` model inputs from one loop or one-shot. View 0 is the first window, exactly what
    ``ClapEmbedder`` embeds; the others start the loop at a random sample (a circular shift: the
    stems loop seamlessly) and take a random one of the windows ``ClapEmbedder`` would cut, so a
    short loop keeps its repeat-padding and a long one is seen in every part. A one-shot is
    never shifted (its attack is the sound): each view is the whole hit, zero-padded to the
    second the indexer pads it to. With ``record`` every view but the first goes through a
    random :func:`recording_chain` (room, EQ, compressor, noise, codec, speed)."""
    if one_shot:
        pad = round(ONE_SHOT_PAD_SECONDS * SAMPLE_RATE)
        windows = []
        for view in range(views):
            sound = recording_chain(clip, SAMPLE_RATE, rng) if record and view else clip
            windows.append(np.pad(sound, (0, max(0, pad - sound.size)))[: 10 * SAMPLE_RATE])
        return windows
    windows = [plan_windows([clip]).windows[0]]
    for _ in range(views - 1):
        shifted = np.roll(clip, -int(rng.integers(clip.size)))
        candidates = plan_windows([shifted]).windows
        window = candidates[int(rng.integers(len(candidates)))]
        if record:
            recorded = recording_chain(window, SAMPLE_RATE, rng)
            window = np.pad(recorded, (0, max(0, window.size - recorded.size)))[: window.size]
        windows.append(window)
    return windows


def build_features(
    items: Sequence[TrainItem],
    catalog: Path,
    extractor: ClapFeatureExtractor,
    *,
    views: int,
    seed: int,
    console: Console | None,
    part: int = 0,
    record: bool = False,
) -> torch.Tensor:
    """Log-mel features of every item's views, shape (items, views, frames, mels), float16.

    Computed once: the STFTs cost more than a training step of the small model. float16 halves
    the memory (480 items x 4 views is ~250 MB) and is exact to ~0.03 dB at these levels.
    ``part`` (the catalog's place in a multi-catalog run) gives each catalog its own views.
    """
    frames = extractor.nb_max_samples // extractor.hop_length + 1
    features = torch.empty((len(items), views, frames, extractor.feature_size), dtype=torch.float16)
    with progress_bar(console, "decoding + log-mel", len(items)) as advance:
        for index, item in enumerate(items):
            audio = decode_audio(Path(catalog) / item.path)
            clip = resample(audio.mono(), audio.sr, SAMPLE_RATE)
            # per item: independent of order; the first catalog's views as in a one-catalog run
            rng = np.random.default_rng([seed, 2, index] if part == 0 else [seed, 2, index, part])
            windows = view_windows(clip, views, rng, one_shot=item.one_shot, record=record)
            mel = log_mel_features(windows, extractor)
            features[index] = mel[:, 0].to(torch.float16)
            advance()
    return features


def cached_features(
    items: Sequence[TrainItem],
    catalog: Path,
    extractor: ClapFeatureExtractor,
    *,
    views: int,
    seed: int,
    folder: Path,
    console: Console | None,
    part: int = 0,
    record: bool = False,
) -> torch.Tensor:
    """:func:`build_features`, kept in ``folder`` (one file per catalog): a resumed or repeated
    run on the same stems skips minutes of decoding."""
    path = folder / features_file(part)
    key = {
        "catalog": str(Path(catalog).resolve()),
        "stems": [(item.path, (Path(catalog) / item.path).stat().st_size) for item in items],
        "views": views,
        "seed": seed,
    }
    if part:
        key["part"] = part
    if record:
        key["record"] = True
    if path.is_file():
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached["key"] == key:
            return cached["features"]
    features = build_features(
        items, catalog, extractor, views=views, seed=seed, console=console, part=part,
        record=record,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"key": key, "features": features}, partial)
    os.replace(partial, path)
    return features


def features_file(part: int) -> str:
    """The feature cache of a run's ``part``-th catalog: ``features.pt``, ``features-1.pt``, …"""
    return FEATURES_FILE if part == 0 else f"{Path(FEATURES_FILE).stem}-{part}.pt"


def augment(
    features: torch.Tensor, generator: torch.Generator, *, timbre: bool = False
) -> torch.Tensor:
    """Cheap, label-preserving changes to a batch of log-mel features (batch, 1, frames, mels).

    A gain and a spectral tilt (another mix, another EQ, another synth), with ``timbre`` also a
    smooth random EQ curve and a short reverb tail (another SoundFont's samples and room), a
    noise floor (another recording chain), then one frequency band and one stretch of time
    silenced (SpecAugment), so the model cannot lean on any one band or moment. Repeat-pad
    silence stays silent, as it is at inference. Without ``timbre`` the draws are exactly those
    the bundled model was trained with.
    """
    batch, _, frames, mels = features.shape

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    silent = features <= SILENCE_DB + 1.0
    tilt = uniform(-6.0, 6.0, batch, 1, 1, 1) * torch.linspace(-0.5, 0.5, mels)
    # Per-band gains: EQ_POINTS random levels (up to ±EQ_DB) interpolated over the mel bins.
    curve: torch.Tensor | float = 0.0
    if timbre:
        points = uniform(-EQ_DB, EQ_DB, batch, 1, EQ_POINTS) * uniform(0.0, 1.0, batch, 1, 1)
        curve = F.interpolate(points, size=mels, mode="linear", align_corners=True)[:, :, None]
    x = features + uniform(-10.0, 10.0, batch, 1, 1, 1) + tilt + curve
    if timbre:
        x = reverb_tail(x, uniform(0.0, 1.0, batch), uniform(0.0, 1.0, batch))
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    floor = peak - uniform(35.0, 70.0, batch, 1, 1, 1)
    to_nepers = math.log(10.0) / 10.0  # dB sums as log-sum-exp in natural-log units
    x = torch.logaddexp(x * to_nepers, floor * to_nepers) / to_nepers
    x = torch.where(silent, torch.full_like(x, SILENCE_DB), x)

    band = (uniform(0, 1, batch) * 8).long()
    band_start = (uniform(0, 1, batch) * (mels - band)).long()
    span = (uniform(0, 1, batch) * frames * 0.1).long()
    span_start = (uniform(0, 1, batch) * (frames - span)).long()
    mel_index, frame_index = torch.arange(mels), torch.arange(frames)
    band_mask = (mel_index >= band_start[:, None]) & (mel_index < (band_start + band)[:, None])
    span_mask = (frame_index >= span_start[:, None]) & (frame_index < (span_start + span)[:, None])
    masked = band_mask[:, None, None, :] | span_mask[:, None, :, None]
    return x.masked_fill(masked, SILENCE_DB)


def reverb_tail(x: torch.Tensor, decay: torch.Tensor, wet: torch.Tensor) -> torch.Tensor:
    """A cheap room on log-mel frames (dB): delayed copies of the signal, each quieter by a
    decay rate of 0.4–2 dB per 10 ms frame (RT60 about 0.3–1.5 s), summed in power at a wet
    level of -24 to -6 dB. ``decay`` and ``wet`` are per-item draws in [0, 1); half the items
    stay dry."""
    rate = (0.4 + 1.6 * decay)[:, None, None, None]
    level = (-24.0 + 18.0 * wet)[:, None, None, None]
    level = torch.where(wet[:, None, None, None] < 0.5, torch.full_like(level, -200.0), level)
    to_nepers = math.log(10.0) / 10.0
    copies = [x]
    for delay in REVERB_DELAYS:
        shifted = F.pad(x[:, :, :-delay], (0, 0, delay, 0), value=SILENCE_DB)
        copies.append(shifted + level - rate * delay)
    return torch.logsumexp(torch.stack(copies) * to_nepers, dim=0) / to_nepers


# --- 4. model -----------------------------------------------------------------------------------


def small_clap_config(vocab_size: int, projection_dim: int = 128) -> ClapConfig:
    """The bundled model's size: 4.1 M parameters, 16 MB; an epoch of 480 stems takes ~7 s on
    two free CPU cores.

    The audio tower keeps the real CLAPs' input geometry (64 mel bins folded into a 256 x 256
    "image") but cuts it into 8 x 8 patches instead of 4 x 4: a quarter of the tokens, which is
    what makes CPU training affordable. Windows of 4 patches keep every stage's grid divisible.
    """
    audio = ClapAudioConfig(
        spec_size=256,
        num_mel_bins=64,
        patch_size=8,
        patch_stride=(8, 8),
        patch_embeds_hidden_size=48,
        hidden_size=48 * 2**3,  # HTSAT doubles the width at each of the 4 stages
        depths=[1, 1, 2, 1],
        num_attention_heads=[2, 4, 8, 16],
        window_size=4,
        projection_dim=projection_dim,
        enable_fusion=False,
    )
    text = ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=MAX_TEXT_POSITIONS,
        projection_dim=projection_dim,
    )
    return ClapConfig(
        text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=projection_dim
    )


def embed_text(model: ClapModel, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    """Unnormalised caption projections, by the same path ``ClapEmbedder`` uses."""
    text = model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    return model.text_projection(text.pooler_output)


def embed_audio(model: ClapModel, features: torch.Tensor) -> torch.Tensor:
    """Unnormalised audio projections, by the same path ``ClapEmbedder`` uses."""
    return model.audio_projection(model.audio_model(input_features=features).pooler_output)


def contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    positives: torch.Tensor,
    scale_xy: torch.Tensor | float,
    scale_yx: torch.Tensor | float,
) -> torch.Tensor:
    """Symmetric InfoNCE between two batches of paired vectors, with weighted positives.

    ``positives[i, j]`` is how much item j counts as a match of item i (:meth:`Labels.positives`):
    two house drum loops in one batch are not negatives of each other's captions, so the
    target of each row spreads over every item of its (family, style) group, the item itself
    included. Pushing such pairs apart would teach the model the moods and tempos of single
    items at the cost of what their captions share.
    """
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    targets = positives / positives.sum(dim=1, keepdim=True)
    return 0.5 * (
        F.cross_entropy(scale_xy * x @ y.T, targets) + F.cross_entropy(scale_yx * y @ x.T, targets)
    )


@dataclass(frozen=True)
class Labels:
    """Per item: its group (:attr:`TrainItem.group`), family, and whether it is a one-shot."""

    group: torch.Tensor  # int64 (items,)
    family: torch.Tensor  # int64 (items,)
    one_shot: torch.Tensor  # bool (items,)
    names: tuple[str, ...]  # group names, for the log

    @classmethod
    def of(cls, items: Sequence[TrainItem]) -> Labels:
        names = tuple(sorted({item.group for item in items}))
        families = sorted({item.meta["instrument"] for item in items})
        return cls(
            torch.tensor([names.index(item.group) for item in items]),
            torch.tensor([families.index(item.meta["instrument"]) for item in items]),
            torch.tensor([item.one_shot for item in items]),
            names,
        )

    def positives(self, rows: torch.Tensor) -> torch.Tensor:
        """(rows, rows) target weights: 1 within a group; :data:`FAMILY_POSITIVE` between two
        one-shots of one family ("violin" and "cello" notes, "kick" and "snare"), so a family
        word finds all of them while the sound name still ranks its own first. Loops keep the
        plain rule, also against one-shots: tied to every kick and snare, drum loops lost their
        styles (drum-style P@10 0.41 → 0.11 in the run that tied them)."""
        group, family, one_shot = self.group[rows], self.family[rows], self.one_shot[rows]
        same_group = group[:, None] == group[None, :]
        related = (family[:, None] == family[None, :]) & (one_shot[:, None] & one_shot[None, :])
        return same_group.float() + FAMILY_POSITIVE * (related & ~same_group).float()


def catalog_sampling(sizes: Sequence[int], shares: Sequence[float]) -> np.ndarray:
    """Per-item odds that give each catalog its share of every epoch, whatever its size.

    Why: pooled by size, 1,300 one-shots would crowd 480 loops down to a quarter of each batch
    and the loops' figures fall (they did, in the first one-shot run).

    >>> catalog_sampling([2, 1], [0.5, 0.5]).tolist()
    [0.25, 0.25, 0.5]
    """
    if len(sizes) != len(shares):
        raise ValueError(f"{len(shares)} shares for {len(sizes)} catalogs")
    if any(share <= 0 for share in shares):
        raise ValueError(f"shares must be positive, got {list(shares)}")
    odds = np.concatenate(
        [np.full(size, share / size) for size, share in zip(sizes, shares, strict=True)]
    )
    return odds / odds.sum()


def text_parameters(model: ClapModel) -> list[torch.nn.Parameter]:
    """The text tower and its projection."""
    return [*model.text_model.parameters(), *model.text_projection.parameters()]


def make_optimizer(model: ClapModel, lr: float) -> torch.optim.AdamW:
    """AdamW; the (warmed-up) text tower at a lower rate, so it keeps the structure the audio
    tower is learning to match; no weight decay on biases, norms and temperatures."""
    text = {id(p) for p in text_parameters(model)}
    groups = []
    for in_text, rate in ((False, lr), (True, lr * TEXT_LR_SCALE)):
        params = [p for p in model.parameters() if (id(p) in text) == in_text]
        groups += [
            {
                "params": [p for p in params if p.ndim >= 2],
                "lr": rate,
                "weight_decay": WEIGHT_DECAY,
            },
            {"params": [p for p in params if p.ndim < 2], "lr": rate, "weight_decay": 0.0},
        ]
    return torch.optim.AdamW(groups, lr=lr)


def warm_up_text_tower(
    model: ClapModel,
    tokenizer: RobertaTokenizer,
    items: Sequence[TrainItem],
    labels: Labels,
    *,
    steps: int,
    lr: float,
    seed: int,
    device: str,
    advance: Callable[..., None],
) -> None:
    """Caption–caption contrastive pre-training of the text tower: two fresh wordings of each
    item in a batch, items of one family/style group as positives.

    Why: a randomly initialised RoBERTa gives nearly the same vector to every caption (mean
    cosine ~0.9), so the joint loss offers the audio tower no distinct targets and both towers
    collapse to a constant (the loss sits at log(batch size)). A text tower that already tells
    captions apart gives the audio tower something to match from the first step, as a
    pre-trained tower does in LiT. A text-only step costs ~1/20 of a joint one.
    """
    optimizer = torch.optim.AdamW(text_parameters(model), lr=lr, weight_decay=WEIGHT_DECAY)
    rng = np.random.default_rng([seed, 4])
    torch.manual_seed(seed * 1_000_003 - 1)  # dropout
    model.train()
    size = min(TEXT_WARMUP_BATCH, len(items))
    for _ in range(steps):
        rows = rng.choice(len(items), size=size, replace=False)
        first, second = (
            embed_text(model, tokenize(tokenizer, [items[i].meta for i in rows], rng, device))
            for _ in range(2)
        )
        positives = labels.positives(torch.from_numpy(rows)).to(device)
        loss = contrastive_loss(first, second, positives, TEXT_SCALE, TEXT_SCALE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        advance(f"loss {loss.item():.3f}")


def lr_schedule(total_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over the first 5 % of steps, then cosine decay to zero."""
    return warmup_cosine(total_steps, warmup_steps=round(WARMUP_SHARE * total_steps))


def tokenize(
    tokenizer: RobertaTokenizer,
    metas: Sequence[dict[str, Any]],
    rng: np.random.Generator,
    device: str,
) -> dict[str, torch.Tensor]:
    """A fresh caption for each item, tokenised and padded as one batch."""
    captions = [training_caption(meta, rng) for meta in metas]
    return tokenizer(captions, padding=True, truncation=True, return_tensors="pt").to(device)


# --- 5. one epoch -------------------------------------------------------------------------------


def run_epoch(
    model: ClapModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    tokenizer: RobertaTokenizer,
    items: Sequence[TrainItem],
    features: torch.Tensor,
    labels: Labels,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    device: str,
    on_step: Callable[[float], None],
    timbre_augment: bool = False,
    sampling: np.ndarray | None = None,
) -> float:
    """One pass over the items in a seeded order, or, with ``sampling`` (a probability per
    item, :func:`catalog_sampling`), as many items drawn with those odds; returns the mean
    loss."""
    rng = np.random.default_rng([seed, 3, epoch])
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    torch.manual_seed(seed * 1_000_003 + epoch)  # dropout and drop-path
    if sampling is None:
        order = rng.permutation(len(items))
    else:
        order = rng.choice(len(items), size=len(items), p=sampling)
    view = torch.from_numpy(rng.integers(features.shape[1], size=len(items)))
    model.train()
    losses = []
    # Drop the ragged last batch: a batch of one has no negatives and breaks batch norm.
    for start in range(0, len(items) - batch_size + 1, batch_size):
        rows = torch.from_numpy(order[start : start + batch_size])
        mel = augment(
            features[rows, view[rows]].float().unsqueeze(1), generator, timbre=timbre_augment
        )
        metas = [items[i].meta for i in rows.tolist()]
        positives = labels.positives(rows).to(device)
        audio = embed_audio(model, mel.to(device))
        text = embed_text(model, tokenize(tokenizer, metas, rng, device))
        scale_a, scale_t = model.logit_scale_a.exp(), model.logit_scale_t.exp()
        # audio → captions at CLAP's audio temperature, captions → audio at its text one
        loss = contrastive_loss(audio, text, positives, scale_a, scale_t)
        # The warm-up's caption–caption loss stays on: without it, wherever the audio tower
        # cannot yet tell two groups apart (drum styles, say), the joint loss pulls their
        # captions together until "techno drums" and "house drums" get one vector, and the
        # audio tower loses the very targets that would teach it the difference.
        other = embed_text(model, tokenize(tokenizer, metas, rng, device))
        loss = loss + TEXT_AUX_WEIGHT * contrastive_loss(
            text, other, positives, TEXT_SCALE, TEXT_SCALE
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():  # CLIP's clamp: a runaway temperature stalls learning
            model.logit_scale_a.clamp_(0.0, MAX_LOGIT_SCALE)
            model.logit_scale_t.clamp_(0.0, MAX_LOGIT_SCALE)
        losses.append(loss.item())
        on_step(loss.item())
    return float(np.mean(losses))


# --- 6. checkpoints -----------------------------------------------------------------------------


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_state(
    path: Path,
    hparams: dict[str, Any],
    *,
    stale_if: str | None = None,
    console: Console | None = None,
) -> dict[str, Any] | None:
    """The saved training state, if any; refuses one made with other settings. A state that
    differs only in ``stale_if`` (what it was trained on moved on) is dropped: None."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    saved, asked = json.loads(json.dumps(state["hparams"])), json.loads(json.dumps(hparams))
    if stale_if is not None and saved.pop(stale_if) != asked.pop(stale_if) and saved == asked:
        was, now = state["hparams"][stale_if], hparams[stale_if]
        say(console, f"{path.name} was made with {stale_if}={was}, now {now}: starting over")
        return None
    if state["hparams"] != hparams:
        raise ValueError(
            f"{path} was made with {state['hparams']}, this run asks for {hparams}: "
            "rerun with the same settings, or with --no-resume to start over"
        )
    return state


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    save_state(folder / CHECKPOINT_FILE, state)


def load_checkpoint(folder: Path, hparams: dict[str, Any]) -> dict[str, Any] | None:
    return load_state(folder / CHECKPOINT_FILE, hparams)


# --- 7. the run ---------------------------------------------------------------------------------


def train_clap(
    catalog: Path | Sequence[Path],
    out: Path,
    *,
    epochs: int = 120,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    views: int = 4,
    text_warmup_steps: int = 300,
    resume: bool = True,
    progress: bool = True,
    config: Callable[[int], ClapConfig] = small_clap_config,
    timbre_augment: bool = False,
    record_augment: bool = False,
    init_from: Path | None = None,
    threads: int | None = None,
    shares: Sequence[float] | None = None,
) -> TrainSummary:
    """Train a CLAP on ``catalog``'s stems and captions; save it as a model folder in ``out``.

    ``catalog`` is one catalog folder or several, whose stems are pooled (say, the same
    compositions rendered with different SoundFonts). ``config`` maps the tokenizer's
    vocabulary size to the model config (tests pass a tinier one). With ``resume``, a checkpoint
    in ``out/checkpoint`` from a run with the same settings is picked up after its last finished
    epoch. ``timbre_augment`` adds :func:`augment`'s random EQ curve and reverb tail;
    ``record_augment`` passes every cached view but the first through a random recording chain
    (:func:`audiorag.democatalog.augment.recording_chain`). Catalogs may mix loops and one-shots
    (``audiorag.democatalog.oneshots``). ``init_from`` fine-tunes a trained CLAP folder (its
    weights, config and tokenizer; no text warm-up) instead of starting from scratch.
    ``threads`` sets torch's intra-op threads for the run (None: torch's default, one per
    core); see :func:`torch_threads`. ``shares`` (one per catalog) sets each catalog's share
    of every epoch (:func:`catalog_sampling`) instead of pooling by size.
    """
    with torch_threads(threads):
        return _train_clap(
            catalog, out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
            views=views, text_warmup_steps=text_warmup_steps, resume=resume, progress=progress,
            config=config, timbre_augment=timbre_augment, record_augment=record_augment,
            init_from=init_from, shares=shares,
        )  # fmt: skip


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, then restore the previous count.

    Why: on cores shared with other jobs, torch's default of one thread per core is the main
    cost of a step, not the model. Its threads meet at a barrier after every operator, so one
    descheduled thread stalls the other: on 2 cores under a load of ~6, a forward + backward
    pass of the bundled model's audio tower on a batch of 32 took 8–11 s with 2 threads and
    1.7–4.4 s with 1. On free cores the default is the faster one. The thread count changes
    float summation order, so runs compare bit for bit only at the same count.
    """
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_clap(
    catalog: Path | Sequence[Path],
    out: Path,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    views: int,
    text_warmup_steps: int,
    resume: bool,
    progress: bool,
    config: Callable[[int], ClapConfig],
    timbre_augment: bool,
    record_augment: bool,
    init_from: Path | None,
    shares: Sequence[float] | None,
) -> TrainSummary:
    """:func:`train_clap`'s body, at the thread count it set."""
    started = time.perf_counter()
    out, catalogs = Path(out), catalog_list(catalog)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True) if progress else None
    resolved = [str(path.resolve()) for path in catalogs]
    hparams = {
        "catalog": resolved[0] if len(resolved) == 1 else resolved, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "seed": seed, "views": views,
        "text_warmup_steps": text_warmup_steps, "config": config.__name__,
    }  # fmt: skip
    if timbre_augment:  # only when on: checkpoints of runs without it still resume
        hparams["timbre_augment"] = True
    if record_augment:
        hparams["record_augment"] = True
    if init_from is not None:
        hparams["init_from"] = str(Path(init_from).resolve())
    if shares is not None:
        hparams["shares"] = [float(share) for share in shares]

    checkpoint = out / CHECKPOINT_DIR
    # Read first, so a run with other settings fails before minutes of feature extraction.
    state = load_checkpoint(checkpoint, hparams) if resume else None
    parts = [load_items(path) for path in catalogs]
    items = [item for part in parts for item in part]
    batch_size = min(batch_size, len(items))
    if init_from is not None:
        tokenizer = RobertaTokenizer.from_pretrained(init_from)
        tokenizer.save_pretrained(out)
    else:
        tokenizer = build_tokenizer(items, out, seed)
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    features = torch.cat([
        cached_features(
            part_items, path, extractor, views=views, seed=seed, folder=checkpoint,
            console=console, part=part, record=record_augment,
        )
        for part, (path, part_items) in enumerate(zip(catalogs, parts, strict=True))
    ])  # fmt: skip
    labels = Labels.of(items)
    sampling = None if shares is None else catalog_sampling([len(p) for p in parts], shares)

    torch.manual_seed(seed)
    if init_from is not None:
        model = ClapModel.from_pretrained(init_from, local_files_only=True).to(device)
    else:
        model = ClapModel(config(len(tokenizer))).to(device)
    optimizer = make_optimizer(model, lr)
    steps_per_epoch = len(items) // batch_size
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(epochs * steps_per_epoch))

    first_epoch, epoch_losses = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_epoch, epoch_losses = state["epoch"], list(state["epoch_losses"])
        say(console, f"resuming from {checkpoint} after epoch {first_epoch}/{epochs}")
    elif init_from is None:
        with progress_bar(console, "text warm-up", text_warmup_steps) as advance:
            warm_up_text_tower(
                model, tokenizer, items, labels, steps=text_warmup_steps, lr=lr, seed=seed,
                device=device, advance=advance,
            )  # fmt: skip

    parameters = sum(p.numel() for p in model.parameters())
    say(
        console,
        f"{len(items)} stems, {len(labels.names)} family/style groups, "
        f"{parameters / 1e6:.2f} M parameters, {steps_per_epoch} steps per epoch",
    )
    for epoch in range(first_epoch, epochs):
        epoch_started = time.perf_counter()
        with progress_bar(console, f"epoch {epoch + 1}/{epochs}", steps_per_epoch) as advance:
            loss = run_epoch(
                model, optimizer, scheduler, tokenizer, items, features, labels,
                batch_size=batch_size, seed=seed, epoch=epoch, device=device,
                timbre_augment=timbre_augment, sampling=sampling,
                on_step=lambda value: advance(f"loss {value:.3f}"),
            )  # fmt: skip
        epoch_losses.append(loss)
        save_checkpoint(checkpoint, {
            "epoch": epoch + 1, "epoch_losses": epoch_losses, "hparams": hparams,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        })  # fmt: skip
        say(console, f"epoch {epoch + 1}/{epochs}  loss {loss:.4f}  "
                     f"lr {scheduler.get_last_lr()[0]:.2e}  "
                     f"logit scale {model.logit_scale_a.exp().item():.1f}  "
                     f"{time.perf_counter() - epoch_started:.1f} s")  # fmt: skip

    save_model(model, tokenizer, extractor, out)
    summary = TrainSummary(
        out=out,
        items=len(items),
        epochs=epochs,
        steps=epochs * steps_per_epoch,
        parameters=parameters,
        size_bytes=sum(p.stat().st_size for p in out.iterdir() if p.is_file()),
        epoch_losses=epoch_losses,
        resumed_from_epoch=first_epoch,
        seconds=time.perf_counter() - started,
    )
    (checkpoint / "summary.json").write_text(json.dumps(summary.to_json(), indent=2))
    return summary


def catalog_list(catalog: Path | str | Sequence[Path | str]) -> list[Path]:
    """One catalog folder or several as a list of paths; refuses none or one listed twice."""
    catalogs = (
        [Path(catalog)] if isinstance(catalog, str | os.PathLike) else [Path(c) for c in catalog]
    )
    if not catalogs:
        raise ValueError("no catalog to train on")
    resolved = [path.resolve() for path in catalogs]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"a catalog is listed twice: {[str(path) for path in catalogs]}")
    return catalogs


def save_model(
    model: ClapModel, tokenizer: RobertaTokenizer, extractor: ClapFeatureExtractor, out: Path
) -> None:
    """A normal model folder: config.json, model.safetensors, tokenizer and processor configs."""
    model.eval().save_pretrained(out)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)


# --- console helpers ----------------------------------------------------------------------------


def say(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(message)


@contextmanager
def progress_bar(
    console: Console | None,
    description: str,
    total: int,
    completed: int = 0,
    transient: bool = True,
) -> Iterator[Callable[..., None]]:
    """A rich progress bar (nothing when ``console`` is None); yields ``advance``."""
    if console is None:
        yield lambda status="": None
        return
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("[dim]{task.fields[status]}"),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=transient) as progress:
        task = progress.add_task(description, total=total, completed=completed, status="")
        yield lambda status="": progress.update(task, advance=1, status=status)
