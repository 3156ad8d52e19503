"""Training a small Stable Audio Open–style generator on a demo catalog, on a CPU.

``audiorag train generator --catalog data/demo --out runs/generator-demo`` runs
:func:`train_generator`, which reads top to bottom:

1. items      the catalog's stems and their ground-truth metadata (``licences.jsonl``);
2. audio      each stem decoded once to 16 kHz mono and cached in ``out/checkpoint`` (16 kHz mono
              costs a quarter of 44.1 kHz stereo and still tells instrument families apart);
3. vae        ``AutoencoderOobleck`` (256x downsampling, 16 latent channels) on random 0.5 s
              crops: L1 in time + multi-resolution STFT + a small KL, no adversary;
4. rescale    the latent std over the catalog is folded into the encoder's last and the
              decoder's first convolution, so latents come out ~unit std (the scheduler's
              sigma_data = 1) and the saved VAE needs no scaling factor;
5. latents    every stem encoded once (posterior mean) and cached;
6. dit        ``StableAudioDiTModel`` + a tiny ``T5EncoderModel`` + ``StableAudioProjectionModel``
              trained jointly on the latents with the v-objective the scheduler samples with,
              conditioned by the sampler's own functions (``generation.stable_audio_open``:
              caption tokens, seconds_start and seconds_total as cross-attention tokens and as
              the global token, the same rotary tables and scheduler), zeros for the 10 % of
              unconditional (classifier-free guidance) examples;
7. save       ``StableAudioPipeline.save_pretrained`` — a folder every diffusers user can load.

Catalogs. One catalog or several, pooled or each with its ``shares`` of the steps (as the CLAP
trainer does): loops of the demo catalog, and one-shots (``audiorag catalog oneshots``,
``sample-packs``, ``instrument-samples``), whose GM program and percussion names the tokenizer
then learns. ``vae_from`` takes a finished autoencoder (the bundled generator's ``vae/``)
instead of training one, so a new DiT and vocabulary cost no autoencoder time and keep its
round trip.

Windows. The pipeline always denoises ``transformer.config.sample_size`` latent frames (1280,
20.48 s) and crops to the requested duration; a sampler that renders only the frames it needs
(ours) asks for 2–20 s. So each step draws a window length — usually the length of a 2–12 s
request, sometimes the full 1280 frames — and fills each window with a loop (the stems loop
seamlessly, so they tile to any length) for ``seconds_total`` seconds, then encoded silence, as
Stable Audio Open pads. A one-shot is never tiled: the hit from its start, ``seconds_total`` its
length (at most the window), then silence — what a one-shot request renders. Batches hold a
fixed number of latent frames, so short windows come in bigger batches.

Every random choice comes from ``(seed, stage, step)``, so two runs with one seed and one step
count give identical weights and a resumed run matches an uninterrupted one. ``minutes`` caps a
stage's wall time: a stage that runs out of time ends early and is saved, usable; the same command
run again continues it to its step count (and, when that trained the autoencoder further, the
DiT starts over on the new latents).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderOobleck, StableAudioDiTModel, StableAudioPipeline
from diffusers.pipelines.stable_audio import StableAudioProjectionModel
from rich.console import Console
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from audio.decode import decode_audio
from audio.signal import resample
from audiorag.training.schedule import warmup_cosine
from audiorag.training.train_clap import (
    TrainItem,
    catalog_sampling,
    load_items,
    load_state,
    progress_bar,
    save_state,
    say,
    tokenizer_corpus,
    torch_threads,
    training_caption,
)
from generation.speed import call_transformer
from generation.stable_audio_open import (
    encode_conditioning,
    rotary_tables,
    stable_audio_open_scheduler,
)
from index.clap import weights_fingerprint

SAMPLE_RATE = 16_000
HOP = 256  # 4 x 4 x 4 x 4: 62.5 latent frames per second
LATENT_CHANNELS = 16
SAMPLE_SIZE = 1280  # latent frames: 20.48 s, the longest render
ENCODE_FRAMES = 512  # latents cached per stem: its first 8.19 s (most loops whole)
MAX_TOKENS = 64  # captions are < 30 tokens
SECONDS_MAX = 32  # the projection model's seconds range, [0, 32]
CFG_DROPOUT = 0.1
CHECKPOINT_DIR = "checkpoint"
AUDIO_FILE = "audio.pt"
LATENTS_FILE = "latents.pt"
VAE_STATE, DIT_STATE = "vae.pt", "dit.pt"
VAE_FOLDER = "vae-final"  # the rescaled autoencoder, the DiT stage's input
CHECKPOINT_EVERY_S = 120.0
STFT_SIZES = (1024, 512, 256, 128, 64)


@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes of every component. :func:`small_config` is the bundled model; tests use tinier."""

    vae_hidden: int = 32  # encoder width; diffusers needs it == 2 x latent channels
    vae_decoder_channels: int = 32
    vae_multiples: tuple[int, ...] = (1, 2, 4, 8)
    latent_channels: int = LATENT_CHANNELS
    dit_layers: int = 4
    dit_heads: int = 4
    dit_head_dim: int = 32
    cond_dim: int = 128  # text encoder width = cross-attention input = each timing token
    text_layers: int = 2
    text_heads: int = 4
    vocab_size: int = 1024
    sample_size: int = SAMPLE_SIZE
    # training
    vae_crop: int = 32 * HOP  # 0.51 s
    vae_batch: int = 8
    vae_lr: float = 1e-3
    kl_weight: float = 1e-4
    dit_tokens: int = 4096  # latent frames per DiT batch
    dit_lr: float = 5e-4
    ema_decay: float = 0.999
    min_seconds: float = 2.0
    max_seconds: float = 12.0
    full_window_share: float = 0.25  # steps trained on the pipeline's whole sample_size window


def lr_schedule(steps: int) -> Callable[[int], float]:
    """Both stages' LR multiplier: warm up over 100 steps (a tenth of a short run), then cosine
    decay to a tenth of the peak."""
    return warmup_cosine(steps, warmup_steps=min(100, steps // 10), floor=0.1)


def small_config() -> GeneratorConfig:
    return GeneratorConfig()


@dataclass
class GeneratorSummary:
    """What :func:`train_generator` did."""

    out: Path
    items: int
    vae_steps: int = 0
    dit_steps: int = 0
    vae_parameters: int = 0
    dit_parameters: int = 0
    latent_scale: float = 1.0
    vae_losses: list[float] = field(default_factory=list)
    dit_losses: list[float] = field(default_factory=list)
    vae_seconds: float = 0.0
    dit_seconds: float = 0.0
    size_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "out": str(self.out)}


# --- 1.–2. items and audio ----------------------------------------------------------------------


def decode_clips(paths: Sequence[Path], console: Console | None) -> list:
    """Every stem as a 16 kHz mono float16 tensor (float16 halves ~150 MB; ~-90 dB noise)."""
    clips = []
    with progress_bar(console, "decoding to 16 kHz mono", len(paths), transient=False) as advance:
        for path in paths:
            audio = decode_audio(path)
            y = resample(audio.mono(), audio.sr, SAMPLE_RATE).astype(np.float32)
            clips.append(torch.from_numpy(y).to(torch.float16))
            advance()
    return clips


def cached(path: Path, key: dict[str, Any], build: Callable[[], Any]) -> Any:
    """``build()``, kept in ``path`` under ``key``: a resumed or repeated run skips the work."""
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=False)
        if stored["key"] == key:
            return stored["value"]
    value = build()
    save_state(path, {"key": key, "value": value})
    return value


def loop_crop(clip: torch.Tensor, length: int, rng: np.random.Generator) -> torch.Tensor:
    """``length`` samples (or frames, on the last axis) of a seamless loop from a random offset,
    tiled when the loop is shorter."""
    size = clip.shape[-1]
    start = int(rng.integers(size))
    index = (start + torch.arange(length)) % size
    return clip[..., index]


# --- 3. autoencoder -----------------------------------------------------------------------------


def build_vae(config: GeneratorConfig) -> AutoencoderOobleck:
    return AutoencoderOobleck(
        encoder_hidden_size=config.vae_hidden,
        downsampling_ratios=[4, 4, 4, 4],
        channel_multiples=list(config.vae_multiples),
        decoder_channels=config.vae_decoder_channels,
        decoder_input_channels=config.latent_channels,
        audio_channels=1,
        sampling_rate=SAMPLE_RATE,
    )


def multi_resolution_stft_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1 at five resolutions (x, y: (batch, samples)):
    the waveform L1 alone lets phase errors hide the harmonics."""
    loss = x.new_zeros(())
    for n_fft in STFT_SIZES:
        window = torch.hann_window(n_fft, device=x.device)
        spec_x, spec_y = (
            torch.stft(s, n_fft, n_fft // 4, window=window, return_complex=True).abs() + 1e-5
            for s in (x, y)
        )
        convergence = torch.linalg.norm(spec_y - spec_x) / torch.linalg.norm(spec_y)
        loss = loss + convergence + F.l1_loss(spec_x.log(), spec_y.log())
    return loss / len(STFT_SIZES)


def vae_batch(
    clips: Sequence[torch.Tensor], config: GeneratorConfig, rng: np.random.Generator
) -> torch.Tensor:
    """(batch, 1, crop) random crops with a random gain, so level is not memorised."""
    rows = rng.integers(len(clips), size=config.vae_batch)
    crops = torch.stack([loop_crop(clips[i].float(), config.vae_crop, rng) for i in rows])
    gain = torch.from_numpy(rng.uniform(0.5, 1.2, size=(len(rows), 1))).float()
    return (crops * gain).unsqueeze(1)


def vae_loss(
    vae: AutoencoderOobleck, audio: torch.Tensor, kl_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction from the posterior *mean*, plus a small KL that keeps latents bounded.

    Why the mean and not a sample: at initialisation the posterior std (softplus(0) = 0.69) is
    about twice the spread of the means, and a tiny KL does not pull it down within a CPU
    budget (measured: unchanged after 968 steps), so a decoder fed samples learns from noise
    and blurs everything. Inference encodes with the mean anyway (``latent_dist.mode()``).
    """
    posterior = vae.encode(audio).latent_dist
    recon = vae.decode(posterior.mean).sample
    l1 = F.l1_loss(recon, audio)
    stft = multi_resolution_stft_loss(recon[:, 0], audio[:, 0])
    kl = (posterior.mean.pow(2) + posterior.var - posterior.logvar - 1.0).mean()
    loss = l1 + stft + kl_weight * kl
    return loss, {"l1": l1.item(), "stft": stft.item(), "kl": kl.item()}


@torch.no_grad()
def fold_latent_scale(vae: AutoencoderOobleck, scale: float) -> None:
    """Make latents come out divided by ``scale`` and the decoder take them back, exactly.

    Both convolutions are weight-normed (weight = g * v / |v| per output channel), so scaling g
    scales the effective weight. Encoder: the mean half of the last conv's outputs (and their
    bias) by 1/scale. The std half goes through softplus, which does not scale; in the small-std
    regime a tiny KL leaves, softplus(x) ~ exp(x), so shifting its bias by -log(scale) divides
    the std too. Decoder: its first conv's weights times scale, bias unchanged.
    """
    conv = vae.encoder.conv2
    half = conv.weight_g.shape[0] // 2
    conv.weight_g[:half] /= scale
    conv.bias[:half] /= scale
    conv.bias[half:] -= math.log(scale)
    vae.decoder.conv1.weight_g *= scale


def train_vae(
    vae: AutoencoderOobleck,
    clips: Sequence[torch.Tensor],
    config: GeneratorConfig,
    *,
    steps: int,
    seed: int,
    folder: Path,
    hparams: dict[str, Any],
    resume: bool,
    deadline: float,
    stop_after: int | None,
    console: Console | None,
) -> tuple[int, list[float], bool]:
    """The autoencoder loop; returns (steps done, loss per 50 steps, finished)."""
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, betas=(0.8, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(steps))
    state = load_state(folder / VAE_STATE, hparams) if resume else None
    step, losses = 0, []
    if state is not None:
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, losses = state["step"], state["losses"]
        if state["finished"] and step >= steps:
            return step, losses, True
        say(console, f"resuming the autoencoder at step {step}/{steps}")

    def save(finished: bool) -> None:
        save_state(folder / VAE_STATE, {
            "step": step, "losses": losses, "hparams": hparams, "finished": finished,
            "model": vae.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
        })  # fmt: skip

    vae.train()
    window: list[float] = []
    last_save = time.monotonic()
    with progress_bar(console, "autoencoder", steps, completed=step, transient=False) as advance:
        while step < steps:
            rng = np.random.default_rng([seed, 3, step])
            audio = vae_batch(clips, config, rng)
            loss, parts = vae_loss(vae, audio, config.kl_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            window.append(loss.item())
            if len(window) == 50:
                losses.append(float(np.mean(window)))
                window = []
                if len(losses) % 5 == 0:  # a log line every 250 steps, for logs without a tty
                    say(console, f"autoencoder step {step}/{steps}  loss {losses[-1]:.4f}")
            advance(f"loss {loss.item():.3f}  l1 {parts['l1']:.4f}  stft {parts['stft']:.3f}")
            if stop_after is not None and step >= stop_after:
                save(False)
                return step, losses, False
            if time.monotonic() > deadline:
                say(console, f"autoencoder: time budget reached at step {step}/{steps}")
                break
            if time.monotonic() - last_save > CHECKPOINT_EVERY_S:
                save(False)
                last_save = time.monotonic()
    save(True)
    return step, losses, True


# --- 5. latents ---------------------------------------------------------------------------------


@torch.no_grad()
def encode_loop(
    vae: AutoencoderOobleck, clip: torch.Tensor, max_frames: int | None = None
) -> torch.Tensor:
    """(channels, frames) posterior means of a loop's first ``max_frames`` latent frames.

    The audio around the encoded span is real context — the loop's end before its start (it
    loops), the following audio after — so there is no zero-padding edge; a loop that fits
    whole therefore tiles seamlessly. Longer loops are cut at ``max_frames``: encoding every
    second of every stem costs more CPU time than the DiT stage has.
    """
    frames = min(clip.shape[-1] // HOP, max_frames or ENCODE_FRAMES)
    clip = clip.float()
    margin = 16 * HOP
    after = torch.cat([clip, clip])[frames * HOP : frames * HOP + margin]
    padded = torch.cat([clip[-margin:], clip[: frames * HOP], after])
    z = vae.encode(padded[None, None]).latent_dist.mean[0]
    return z[:, 16 : 16 + frames].contiguous()


def encode_hit(
    vae: AutoencoderOobleck, clip: torch.Tensor, max_frames: int | None = None
) -> torch.Tensor:
    """(channels, frames) posterior means of a one-shot: silence before and after it (a hit
    does not loop; its tail must not ring into its attack), every frame it sounds in, at
    least one, at most ``max_frames``."""
    frames = max(1, min(math.ceil(clip.shape[-1] / HOP), max_frames or ENCODE_FRAMES))
    margin = 16 * HOP
    padded = torch.zeros(frames * HOP + 2 * margin)
    sounding = clip.float()[: frames * HOP]
    padded[margin : margin + sounding.shape[-1]] = sounding
    z = vae.encode(padded[None, None]).latent_dist.mean[0]
    return z[:, 16 : 16 + frames].contiguous()


@torch.no_grad()
def silence_latent(vae: AutoencoderOobleck) -> torch.Tensor:
    """(channels,) the latent of digital silence: what pads a window after seconds_total."""
    z = vae.encode(torch.zeros(1, 1, 64 * HOP)).latent_dist.mean[0]
    return z[:, 32].clone()


# --- 6. diffusion transformer, text encoder, projection -----------------------------------------


def build_tokenizer(
    items: Sequence[TrainItem], seed: int, vocab_size: int
) -> PreTrainedTokenizerFast:
    """A lower-cased word-piece BPE trained on many wordings of the catalog's captions, ending
    every caption with ``</s>`` as T5's tokenizer does; pad id 0 and eos id 1 as in T5."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    trainer = BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=["<pad>", "</s>", "<unk>"]
    )
    tokenizer.train_from_iterator(tokenizer_corpus(items, seed), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))]
    )
    tokenizer.decoder = decoders.BPEDecoder()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MAX_TOKENS,
    )


def build_text_encoder(config: GeneratorConfig, vocab_size: int) -> T5EncoderModel:
    return T5EncoderModel(
        T5Config(
            vocab_size=vocab_size,
            d_model=config.cond_dim,
            d_kv=config.cond_dim // config.text_heads,
            d_ff=2 * config.cond_dim,
            num_layers=config.text_layers,
            num_heads=config.text_heads,
            relative_attention_num_buckets=16,
            relative_attention_max_distance=MAX_TOKENS,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )


def build_transformer(config: GeneratorConfig) -> StableAudioDiTModel:
    return StableAudioDiTModel(
        sample_size=config.sample_size,
        in_channels=config.latent_channels,
        num_layers=config.dit_layers,
        attention_head_dim=config.dit_head_dim,
        num_attention_heads=config.dit_heads,
        num_key_value_attention_heads=max(1, config.dit_heads // 2),
        out_channels=config.latent_channels,
        cross_attention_dim=config.cond_dim,
        time_proj_dim=64,
        global_states_input_dim=2
        * config.cond_dim,  # seconds_start and seconds_total, side by side
        cross_attention_input_dim=config.cond_dim,
    )


def build_projection(config: GeneratorConfig) -> StableAudioProjectionModel:
    return StableAudioProjectionModel(
        text_encoder_dim=config.cond_dim,
        conditioning_dim=config.cond_dim,
        min_value=0,
        max_value=SECONDS_MAX,
    )


def v_objective(
    x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, v target) with alpha = cos(t pi/2), sigma = sin(t pi/2): the same thing the
    scheduler's EDM preconditioning asks of the model at sigma_edm = tan(t pi/2), sigma_data 1."""
    alpha = torch.cos(t * math.pi / 2).view(-1, 1, 1)
    sigma = torch.sin(t * math.pi / 2).view(-1, 1, 1)
    return alpha * x0 + sigma * noise, alpha * noise - sigma * x0


@dataclass
class DitBatch:
    latents: torch.Tensor  # (batch, channels, frames)
    captions: list[str]
    seconds_total: torch.Tensor  # (batch,)
    keep_text: torch.Tensor  # (batch,) 0 for the unconditional examples


def dit_batch(
    latents: Sequence[torch.Tensor],
    items: Sequence[TrainItem],
    silence: torch.Tensor,
    config: GeneratorConfig,
    rng: np.random.Generator,
    odds: np.ndarray | None = None,
) -> DitBatch:
    """One batch of windows: loops tiled for seconds_total, one-shots once, then silence (see
    the module doc). ``odds``: each item's chance of a place (:func:`catalog_sampling`);
    None draws them alike."""
    rate = SAMPLE_RATE / HOP
    if rng.random() < config.full_window_share:
        frames = config.sample_size
        longest = frames / rate
        batch = max(1, config.dit_tokens // frames)
        contents = [rng.uniform(config.min_seconds, longest) for _ in range(batch)]
    else:
        request = rng.uniform(config.min_seconds, config.max_seconds)
        frames = math.ceil(request * rate)
        batch = max(1, config.dit_tokens // frames)
        contents = [
            request if rng.random() < 0.75 else rng.uniform(0.5, 1.0) * request
            for _ in range(batch)
        ]
    rows = (
        rng.integers(len(items), size=batch)
        if odds is None
        else rng.choice(len(items), size=batch, p=odds)
    )
    windows = silence.view(1, -1, 1).repeat(batch, 1, frames)
    totals = []
    for b, (row, seconds) in enumerate(zip(rows, contents, strict=True)):
        if items[row].one_shot:
            content = min(frames, latents[row].shape[-1])
            windows[b, :, :content] = latents[row][:, :content]
        else:
            content = min(frames, max(1, round(seconds * rate)))
            windows[b, :, :content] = loop_crop(latents[row], content, rng)
        totals.append(content / rate)
    captions = [training_caption(items[row].meta, rng) for row in rows]
    keep = torch.from_numpy(rng.random(batch) >= CFG_DROPOUT).float()
    return DitBatch(windows, captions, torch.tensor(totals, dtype=torch.float32), keep)


class Conditioned(torch.nn.Module):
    """The three trained parts of the DiT stage, so one optimizer and one EMA cover them."""

    def __init__(
        self,
        transformer: StableAudioDiTModel,
        text_encoder: T5EncoderModel,
        projection: StableAudioProjectionModel,
    ) -> None:
        super().__init__()
        self.transformer, self.text_encoder, self.projection = transformer, text_encoder, projection


def dit_loss(
    model: Conditioned,
    tokenizer: PreTrainedTokenizerFast,
    batch: DitBatch,
    t: torch.Tensor,
    noise: torch.Tensor,
    device: str,
) -> torch.Tensor:
    """The v-objective at times ``t`` (batch,) with ``noise`` (like the latents).

    The conditioning, the rotary tables and the transformer call are the sampler's own
    (:mod:`generation.stable_audio_open`), so the model trains on the inputs it samples with.
    """
    x0 = batch.latents.to(device)
    seconds_total = batch.seconds_total.to(device)
    states, global_states = encode_conditioning(
        model.text_encoder, model.projection, tokenizer, batch.captions,
        torch.zeros_like(seconds_total), seconds_total,
    )  # fmt: skip
    # The pipeline's unconditional branch zeroes text and timing tokens, keeps the global token.
    states = states * batch.keep_text.to(device).view(-1, 1, 1)
    t = t.to(device)
    x_t, target = v_objective(x0, noise.to(device), t)
    cos, sin = rotary_tables(model.transformer, global_states.shape[1] + x0.shape[-1])
    prediction = call_transformer(
        model.transformer, x_t, t, states, global_states, cos.to(device), sin.to(device)
    )
    return F.mse_loss(prediction, target)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """Exponential moving average of the weights, with a warm-up so early steps count."""
    rate = 1.0 - min(decay, (1 + step) / (10 + step))
    for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
        averaged.lerp_(current, rate)


def train_dit(
    model: Conditioned,
    ema: Conditioned,
    tokenizer: PreTrainedTokenizerFast,
    latents: Sequence[torch.Tensor],
    items: Sequence[TrainItem],
    silence: torch.Tensor,
    config: GeneratorConfig,
    *,
    steps: int,
    seed: int,
    device: str,
    folder: Path,
    hparams: dict[str, Any],
    resume: bool,
    deadline: float,
    stop_after: int | None,
    console: Console | None,
    odds: np.ndarray | None = None,
) -> tuple[int, list[float], bool]:
    """The DiT loop; returns (steps done, loss per 50 steps, finished)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.dit_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(steps))
    # when the autoencoder trained further, the latents the DiT learned are gone: start over
    state = (
        load_state(folder / DIT_STATE, hparams, stale_if="vae_steps_done", console=console)
        if resume
        else None
    )
    step, losses = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, losses = state["step"], state["losses"]
        if state["finished"] and step >= steps:
            return step, losses, True
        say(console, f"resuming the DiT at step {step}/{steps}")

    def save(finished: bool) -> None:
        save_state(folder / DIT_STATE, {
            "step": step, "losses": losses, "hparams": hparams, "finished": finished,
            "model": model.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
        })  # fmt: skip

    model.train()
    window: list[float] = []
    last_save = time.monotonic()
    with progress_bar(
        console, "diffusion transformer", steps, completed=step, transient=False
    ) as advance:
        while step < steps:
            rng = np.random.default_rng([seed, 6, step])
            generator = torch.Generator().manual_seed(seed * 1_000_003 + 7 * step + 1)
            batch = dit_batch(latents, items, silence, config, rng, odds)
            t = torch.rand(batch.latents.shape[0], generator=generator)
            noise = torch.randn(batch.latents.shape, generator=generator)
            loss = dit_loss(model, tokenizer, batch, t, noise, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            ema_update(ema, model, step, config.ema_decay)
            step += 1
            window.append(loss.item())
            if len(window) == 50:
                losses.append(float(np.mean(window)))
                window = []
                if len(losses) % 5 == 0:
                    say(console, f"DiT step {step}/{steps}  loss {losses[-1]:.4f}")
            advance(f"loss {loss.item():.4f}  (50-step mean {losses[-1] if losses else 0:.4f})")
            if stop_after is not None and step >= stop_after:
                save(False)
                return step, losses, False
            if time.monotonic() > deadline:
                say(console, f"DiT: time budget reached at step {step}/{steps}")
                break
            if time.monotonic() - last_save > CHECKPOINT_EVERY_S:
                save(False)
                last_save = time.monotonic()
    save(True)
    return step, losses, True


# --- 7. the run ---------------------------------------------------------------------------------


def train_generator(
    catalog: Path | Sequence[Path],
    out: Path,
    *,
    stage: str = "all",
    vae_steps: int = 4000,
    dit_steps: int = 6000,
    minutes: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = True,
    progress: bool = True,
    config: GeneratorConfig | None = None,
    stop_after: int | None = None,
    shares: Sequence[float] | None = None,
    vae_from: Path | None = None,
    threads: int | None = None,
) -> GeneratorSummary:
    """Train the autoencoder and/or the DiT on ``catalog``; save a pipeline folder in ``out``.

    ``catalog`` is one catalog folder or several (loops and one-shots may mix); ``shares`` (one
    per catalog) gives each its share of the steps (:func:`catalog_sampling`) instead of pooling
    by size. ``stage``: "vae", "dit" (needs a finished autoencoder in ``out/checkpoint``) or
    "all". ``vae_from`` uses a finished, scale-folded autoencoder folder (the bundled
    generator's ``vae/``) and trains only the DiT. ``minutes`` caps each stage's wall time.
    ``threads`` sets torch's intra-op threads (:func:`audiorag.training.train_clap.torch_threads`).
    ``stop_after`` (tests) stops the running stage after that many steps without finishing it,
    as an interruption would.
    """
    if stage not in {"vae", "dit", "all"}:
        raise ValueError(f"stage must be vae, dit or all, not {stage!r}")
    if vae_from is not None and stage == "vae":
        raise ValueError("vae_from takes a finished autoencoder: there is no vae stage to run")
    catalogs = [Path(catalog)] if isinstance(catalog, str | Path) else [Path(c) for c in catalog]
    with torch_threads(threads):
        return _train_generator(
            catalogs, Path(out), stage=stage, vae_steps=vae_steps, dit_steps=dit_steps,
            minutes=minutes, seed=seed, device=device, resume=resume, progress=progress,
            config=config or small_config(), stop_after=stop_after, shares=shares,
            vae_from=vae_from,
        )  # fmt: skip


def _train_generator(
    catalogs: list[Path],
    out: Path,
    *,
    stage: str,
    vae_steps: int,
    dit_steps: int,
    minutes: float | None,
    seed: int,
    device: str,
    resume: bool,
    progress: bool,
    config: GeneratorConfig,
    stop_after: int | None,
    shares: Sequence[float] | None,
    vae_from: Path | None,
) -> GeneratorSummary:
    folder = out / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True) if progress else None
    budget = math.inf if minutes is None else minutes * 60.0

    parts = [load_items(catalog) for catalog in catalogs]
    items = [item for part in parts for item in part]
    paths = [c / item.path for c, part in zip(catalogs, parts, strict=True) for item in part]
    odds = None if shares is None else catalog_sampling([len(p) for p in parts], shares)
    audio_key = {
        "catalogs": [str(c.resolve()) for c in catalogs],
        "stems": [(str(path), path.stat().st_size) for path in paths],
        "rate": SAMPLE_RATE,
    }
    clips = cached(folder / AUDIO_FILE, audio_key, lambda: decode_clips(paths, console))
    hits = [item.one_shot for item in items]
    summary = GeneratorSummary(out=out, items=len(items))
    vae_hparams: dict[str, Any] = {
        "catalogs": audio_key["catalogs"], "seed": seed, "vae_steps": vae_steps,
        "config": asdict(config),
    }  # fmt: skip

    # --- autoencoder
    vae_folder = folder / VAE_FOLDER
    if vae_from is not None:
        vae = AutoencoderOobleck.from_pretrained(vae_from).eval()
        vae_hparams = {
            "catalogs": audio_key["catalogs"], "seed": seed,
            "vae_from": str(Path(vae_from).resolve()), "weights": weights_fingerprint(vae),
        }  # fmt: skip
        vae_info = {"hparams": vae_hparams, "latent_scale": 1.0, "steps": 0}
        say(console, f"autoencoder: {vae_from} as it is ({vae_hparams['weights']})")
    if vae_from is None and stage in {"vae", "all"}:
        started = time.monotonic()
        torch.manual_seed(seed)
        vae = build_vae(config).to(device)
        summary.vae_parameters = sum(p.numel() for p in vae.parameters())
        say(console, f"autoencoder: {len(items)} stems, {summary.vae_parameters / 1e6:.2f} M "
                     f"parameters, {vae_steps} steps")  # fmt: skip
        step, losses, finished = train_vae(
            vae, [c.to(device) for c in clips], config, steps=vae_steps, seed=seed,
            folder=folder, hparams=vae_hparams, resume=resume, deadline=started + budget,
            stop_after=stop_after, console=console,
        )  # fmt: skip
        summary.vae_steps, summary.vae_losses = step, losses
        summary.vae_seconds = time.monotonic() - started
        if not finished:
            return summary
        if not _same_key(vae_folder, vae_hparams, step):
            # One encoding pass serves both the scale and the DiT's latents: the fold is exact
            # for the posterior mean, so the cached latents only need dividing by the scale.
            vae.eval()
            raw = _encode_all(vae, clips, hits, console)
            scale = float(torch.cat(raw, dim=1).std())
            fold_latent_scale(vae, scale)
            summary.latent_scale = scale
            vae.save_pretrained(vae_folder)
            vae_info = {"hparams": vae_hparams, "latent_scale": scale, "steps": step}
            (vae_folder / "key.json").write_text(json.dumps(vae_info))
            latent_key = {**audio_key, "vae": json.loads(json.dumps(vae_info))}
            cached(folder / LATENTS_FILE, latent_key, lambda: [z / scale for z in raw])
            say(console, f"autoencoder: {step} steps, final loss "
                         f"{losses[-1] if losses else float('nan'):.3f}; latents divided by "
                         f"{scale:.3f} (folded into the weights)")  # fmt: skip
    if stage == "vae":
        return summary

    # --- diffusion transformer
    if vae_from is None:
        if not _same_key(vae_folder, vae_hparams):
            raise FileNotFoundError(
                f"no finished autoencoder for these settings in {vae_folder}: run --stage vae first"
            )
        vae_info = json.loads((vae_folder / "key.json").read_text())
        vae = AutoencoderOobleck.from_pretrained(vae_folder).eval()
    summary.latent_scale = vae_info["latent_scale"]
    latent_key = {**audio_key, "vae": json.loads(json.dumps(vae_info))}
    latents = cached(
        folder / LATENTS_FILE, latent_key,
        lambda: _encode_all(vae, clips, hits, console),
    )  # fmt: skip
    silence = silence_latent(vae)
    spread = torch.cat(latents, dim=1)
    say(console, f"latents: std {spread.std().item():.3f}, mean {spread.mean().item():.3f}")

    tokenizer = build_tokenizer(items, seed, config.vocab_size)
    torch.manual_seed(seed + 1)
    model = Conditioned(
        build_transformer(config), build_text_encoder(config, len(tokenizer)),
        build_projection(config),
    ).to(device)  # fmt: skip
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    summary.dit_parameters = sum(p.numel() for p in model.parameters())
    dit_hparams = {**vae_hparams, "vae_steps_done": vae_info["steps"], "dit_steps": dit_steps}
    if shares is not None:
        dit_hparams["shares"] = [float(share) for share in shares]
    say(console, f"DiT + text encoder + projection: {summary.dit_parameters / 1e6:.2f} M "
                 f"parameters, {dit_steps} steps")  # fmt: skip
    started = time.monotonic()
    step, losses, finished = train_dit(
        model, ema, tokenizer, latents, items, silence, config, steps=dit_steps, seed=seed,
        device=device, folder=folder, hparams=dit_hparams, resume=resume,
        deadline=started + budget, stop_after=stop_after, console=console, odds=odds,
    )  # fmt: skip
    summary.dit_steps, summary.dit_losses = step, losses
    summary.dit_seconds = time.monotonic() - started
    if not finished:
        return summary

    save_pipeline(vae, ema, tokenizer, out)
    summary.size_bytes = folder_size(out)
    (folder / "summary.json").write_text(json.dumps(summary.to_json(), indent=2))
    return summary


def save_pipeline(
    vae: AutoencoderOobleck, model: Conditioned, tokenizer: PreTrainedTokenizerFast, out: Path
) -> None:
    """``StableAudioPipeline.save_pretrained``: model_index.json plus one folder per part."""
    pipeline = StableAudioPipeline(
        vae=vae.cpu().eval(),
        text_encoder=model.text_encoder.cpu().eval(),
        projection_model=model.projection.cpu().eval(),
        tokenizer=tokenizer,
        transformer=model.transformer.cpu().eval(),
        scheduler=stable_audio_open_scheduler(),
    )
    pipeline.save_pretrained(out, safe_serialization=True)


def folder_size(out: Path) -> int:
    """Bytes of the saved model, the training checkpoint excluded."""
    return sum(
        p.stat().st_size
        for p in Path(out).rglob("*")
        if p.is_file() and CHECKPOINT_DIR not in p.relative_to(out).parts
    )


@torch.no_grad()
def _encode_all(
    vae: AutoencoderOobleck,
    clips: Sequence[torch.Tensor],
    hits: Sequence[bool],
    console: Console | None,
) -> list[torch.Tensor]:
    """Latents of every clip: a loop with its own end as context, a one-shot with silence."""
    encoded = []
    with progress_bar(console, "encoding latents", len(clips), transient=False) as advance:
        for clip, hit in zip(clips, hits, strict=True):
            encoded.append((encode_hit if hit else encode_loop)(vae, clip))
            advance()
    return encoded


def _same_key(vae_folder: Path, hparams: dict[str, Any], steps: int | None = None) -> bool:
    """Whether ``vae_folder`` holds the autoencoder of these settings (after ``steps``)."""
    key = vae_folder / "key.json"
    if not key.is_file() or not (vae_folder / "config.json").is_file():
        return False
    info = json.loads(key.read_text())
    same = info["hparams"] == json.loads(json.dumps(hparams))
    return same and (steps is None or info["steps"] == steps)


# --- console helpers ----------------------------------------------------------------------------
