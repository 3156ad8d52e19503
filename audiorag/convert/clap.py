"""LAION-AI/CLAP ``.pt`` checkpoints → a transformers ``ClapModel`` folder.

The checkpoints users have (``630k-audioset-best.pt``: HTSAT-tiny; ``music_audioset_epoch_15_esc_
90.14.pt``, ``music_speech_audioset_epoch_15_esc_89.98.pt``: HTSAT-base; all with a RoBERTa text
tower) hold the ``state_dict`` of LAION's ``CLAP`` module, saved from DDP (every key starts with
``module.``). Its modules map one to one onto transformers' port:

* ``text_branch`` *is* a transformers ``RobertaModel``: same names under ``text_model``;
* ``audio_branch`` is HTS-AT (a Swin transformer): renamed block by block, and each block's fused
  ``attn.qkv`` projection split into ``query``/``key``/``value`` (rows 0…C, C…2C, 2C…3C: LAION's
  forward reshapes the 3C outputs as (3, heads, C/heads));
* ``{text,audio}_projection`` are ``Sequential(Linear, ReLU, Linear)``: indices 0 and 2 become
  ``linear1``/``linear2``;
* what ClapModel has no use for is dropped by name, never by pattern: the contrastive loss's
  ``*_transform`` MLPs, the AudioSet classifier (``tscam_conv``, ``head``), buffers ClapModel
  rebuilds (shifted-window masks, position ids), and the STFT/mel layers, whose job the feature
  extractor does — the mel filter bank is checked against the extractor's first.

Every rule is a full-key template, so nothing is renamed by accident, and the result must match
``ClapModel``'s state dict exactly (names and shapes): any missing or unexpected key stops the
conversion with the full list. No ``laion_clap`` import, no network.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
    ClapTextConfig,
    RobertaTokenizer,
)

from audio.decode import file_sha256
from index.clap import LAION_TEXT_TOKENS

# LAION's audio front end (its HTSAT configs): 48 kHz, 1024-point STFT, hop 480, 64 Slaney mels
# over 50–14 000 Hz, 10 s clips; HTSAT sees them as a 256×256 "image" cut in 4×4 patches.
SAMPLE_RATE = 48_000
N_FFT = 1024
HOP_LENGTH = 480
FREQ_MIN = 50
FREQ_MAX = 14_000
SPEC_SIZE = 256

# The audio towers LAION released: (patch embedding width, blocks per stage); 4/8/16/32 heads
# and 8×8 windows in all of them.
HTSAT_PRESETS: dict[str, tuple[int, tuple[int, ...]]] = {
    "htsat-tiny": (96, (2, 2, 6, 2)),
    "htsat-base": (128, (2, 2, 12, 2)),
    "htsat-large": (256, (2, 2, 12, 2)),
}
HTSAT_HEADS = (4, 8, 16, 32)
HTSAT_WINDOW = 8
CUSTOM = "custom"  # accept whatever shape the weights have (own trainings, tests)

# roberta-base: (vocab, width, layers, positions, MLP width). Its BPE files are on the hub only.
ROBERTA_BASE = (50_265, 768, 12, 514, 3072)
ROBERTA_FILES = ("vocab.json", "merges.txt")
ROBERTA_HUB_IDS = ("FacebookAI/roberta-base", "roberta-base")

# Checkpoint keys that betray a fusion model (LAION's feature_fusion: AFF on 4-channel mels).
FUSION_KEY = re.compile(r"audio_branch\.(patch_embed\.)?(mel_conv[12]d|fusion_model)\.")


class ConversionError(ValueError):
    """The checkpoint cannot become a ClapModel folder; the message says why and what to do."""


# --- the key map ---------------------------------------------------------------------------------

_FIELDS = {
    "i": r"\d+",
    "j": r"\d+",
    "p": r"weight|bias",
    "bn": r"weight|bias|running_mean|running_var|num_batches_tracked",
    "seq": r"0|3",
    "part": r"real|imag",
    "qkv": r"query|key|value",
    "rest": r".+",
}


def _pattern(template: str) -> re.Pattern[str]:
    """``"layers.{i}.norm1.{p}"`` → a full-match regex with one named group per field."""
    pieces = re.split(r"\{(\w+)\}", template)
    return re.compile(
        "".join(
            re.escape(piece) if n % 2 == 0 else f"(?P<{piece}>{_FIELDS[piece]})"
            for n, piece in enumerate(pieces)
        )
    )


@dataclass(frozen=True)
class Rule:
    """One LAION key template and its ClapModel template (``None``: dropped, see ``why``)."""

    laion: str
    hf: str | None
    why: str = ""
    split_qkv: bool = False
    laion_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    hf_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "laion_re", _pattern(self.laion))
        object.__setattr__(self, "hf_re", _pattern(self.hf) if self.hf else None)


_A, _H = "audio_branch.", "audio_model.audio_encoder."
_BLOCK = "layers.{i}.blocks.{j}."
_DERIVED = "buffer ClapModel rebuilds"
_FRONT_END = "the feature extractor computes the log-mels"
_CLASSIFIER = "AudioSet classifier head, not part of the embedding"

RULES: tuple[Rule, ...] = (
    Rule("text_branch.embeddings.position_ids", None, _DERIVED),
    Rule("text_branch.embeddings.token_type_ids", None, _DERIVED),
    Rule("text_branch.{rest}", "text_model.{rest}"),  # a transformers RobertaModel in LAION too
    Rule("text_projection.0.{p}", "text_projection.linear1.{p}"),
    Rule("text_projection.2.{p}", "text_projection.linear2.{p}"),
    Rule("audio_projection.0.{p}", "audio_projection.linear1.{p}"),
    Rule("audio_projection.2.{p}", "audio_projection.linear2.{p}"),
    Rule("text_transform.sequential.{seq}.{p}", None, "training-only MLP of the loss"),
    Rule("audio_transform.sequential.{seq}.{p}", None, "training-only MLP of the loss"),
    Rule("logit_scale_a", "logit_scale_a"),
    Rule("logit_scale_t", "logit_scale_t"),
    Rule(_A + "spectrogram_extractor.stft.conv_{part}.weight", None, _FRONT_END),
    Rule(_A + "logmel_extractor.melW", None, _FRONT_END + " (its filters are checked)"),
    Rule(_A + "bn0.{bn}", _H + "batch_norm.{bn}"),
    Rule(_A + "patch_embed.proj.{p}", _H + "patch_embed.proj.{p}"),
    Rule(_A + "patch_embed.norm.{p}", _H + "patch_embed.norm.{p}"),
    Rule(_A + _BLOCK + "norm1.{p}", _H + _BLOCK + "layernorm_before.{p}"),
    Rule(_A + _BLOCK + "attn.qkv.{p}", _H + _BLOCK + "attention.self.{qkv}.{p}", split_qkv=True),
    Rule(
        _A + _BLOCK + "attn.relative_position_bias_table",
        _H + _BLOCK + "attention.self.relative_position_bias_table",
    ),
    Rule(
        _A + _BLOCK + "attn.relative_position_index",
        _H + _BLOCK + "attention.self.relative_position_index",
    ),
    Rule(_A + _BLOCK + "attn.proj.{p}", _H + _BLOCK + "attention.output.dense.{p}"),
    Rule(_A + _BLOCK + "attn_mask", None, _DERIVED),
    Rule(_A + _BLOCK + "norm2.{p}", _H + _BLOCK + "layernorm_after.{p}"),
    Rule(_A + _BLOCK + "mlp.fc1.{p}", _H + _BLOCK + "intermediate.dense.{p}"),
    Rule(_A + _BLOCK + "mlp.fc2.{p}", _H + _BLOCK + "output.dense.{p}"),
    Rule(
        _A + "layers.{i}.downsample.reduction.weight", _H + "layers.{i}.downsample.reduction.weight"
    ),
    Rule(_A + "layers.{i}.downsample.norm.{p}", _H + "layers.{i}.downsample.norm.{p}"),
    Rule(_A + "norm.{p}", _H + "norm.{p}"),
    Rule(_A + "tscam_conv.{p}", None, _CLASSIFIER),
    Rule(_A + "head.{p}", None, _CLASSIFIER),
)

# ClapModel buffers no checkpoint needs to carry: filled here from the config.
DERIVED_HF = re.compile(r"text_model\.embeddings\.(position_ids|token_type_ids)")


def _rule_for(key: str) -> tuple[Rule, dict[str, str]] | None:
    for rule in RULES:
        if match := rule.laion_re.fullmatch(key):
            return rule, match.groupdict()
    return None


def laion_name(hf_key: str) -> str:
    """The checkpoint key a ClapModel key is read from (for messages about missing keys)."""
    for rule in RULES:
        if rule.hf_re is not None and (match := rule.hf_re.fullmatch(hf_key)):
            return rule.laion.format(**{**match.groupdict(), "qkv": "qkv"})
    return hf_key


@dataclass
class MappedWeights:
    tensors: dict[str, torch.Tensor]  # ClapModel key → tensor
    sources: dict[str, str]  # ClapModel key → LAION key
    dropped: dict[str, str]  # LAION key → why
    unknown: list[str]  # LAION keys no rule knows


def map_state_dict(state: dict[str, torch.Tensor]) -> MappedWeights:
    """Rename (and split) every key of a LAION state dict by :data:`RULES`."""
    mapped = MappedWeights({}, {}, {}, [])
    for key, tensor in state.items():
        found = _rule_for(key)
        if found is None:
            mapped.unknown.append(key)
            continue
        rule, fields = found
        if rule.hf is None:
            mapped.dropped[key] = rule.why
        elif rule.split_qkv:
            for name, part in zip(("query", "key", "value"), tensor.chunk(3, dim=0), strict=True):
                target = rule.hf.format(**fields, qkv=name)
                mapped.tensors[target] = part
                mapped.sources[target] = key
        else:
            target = rule.hf.format(**fields)
            mapped.tensors[target] = tensor
            mapped.sources[target] = key
    return mapped


# --- reading the checkpoint ----------------------------------------------------------------------


def load_laion_state_dict(path: Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict (``{"state_dict": …}`` unwrapped, DDP's ``module.`` stripped).

    Read with ``weights_only=True`` (no code runs from the file) and memory-mapped, so the
    optimizer state many LAION files also carry is never read into memory.
    """
    try:
        checkpoint = _torch_load(path, weights_only=not allow_pickle)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, …
        hint = (
            " It holds Python objects beyond tensors; if you trust where it came from, rerun "
            "with --allow-pickle."
            if "weights_only" in str(err) or "Unsupported global" in str(err)
            else " Is it a complete download (compare its size and sha256 with the source)?"
        )
        raise ConversionError(f"cannot read {path}: {str(err).splitlines()[0]}.{hint}") from err
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ConversionError(f"{path} holds no state dict (found {type(checkpoint).__name__})")
    tensors = {
        key.removeprefix("module."): value
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }
    others = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if others:
        raise ConversionError(f"{path}: state dict entries that are not tensors: {others}")
    return tensors


def _torch_load(path: Path, *, weights_only: bool) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
        # Legacy (pre-zip) serialisation cannot be memory-mapped: read it whole.
        return torch.load(path, map_location="cpu", weights_only=weights_only)


# --- the towers' shapes, read from the weights ---------------------------------------------------


@dataclass(frozen=True)
class AudioTower:
    name: str  # a key of HTSAT_PRESETS, or CUSTOM
    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    window_size: int
    patch_size: int
    in_channels: int
    mlp_ratio: float
    mel_bins: int
    num_classes: int
    qkv_bias: bool


@dataclass(frozen=True)
class TextTower:
    name: str  # "roberta" (roberta-base's shape) or CUSTOM
    vocab_size: int
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise KeyError(key)
    return tuple(state[key].shape)


def _count(state: dict[str, torch.Tensor], pattern: str) -> list[int]:
    """Distinct integers captured by ``pattern`` (one group) over the keys, sorted."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def read_audio_tower(state: dict[str, torch.Tensor]) -> AudioTower:
    """HTS-AT's shape from its weights: widths from the patch embedding, blocks per stage from
    the keys, heads from each stage's relative-position table, window from that table's size."""
    width, channels, patch, _ = _shape(state, _A + "patch_embed.proj.weight")
    stages = _count(state, re.escape(_A) + r"layers\.(\d+)\.")
    if not stages:
        raise KeyError(_A + "layers.0.blocks.0.norm1.weight")
    depths = tuple(
        max(_count(state, re.escape(_A) + rf"layers\.{i}\.blocks\.(\d+)\.") or [-1]) + 1
        for i in range(stages[-1] + 1)
    )
    table = _A + "layers.{}.blocks.0.attn.relative_position_bias_table"
    heads = tuple(_shape(state, table.format(i))[1] for i in range(len(depths)))
    window = (math.isqrt(_shape(state, table.format(0))[0]) + 1) // 2
    hidden = _shape(state, _A + "layers.0.blocks.0.mlp.fc1.weight")[0]
    classes = _shape(state, _A + "head.weight")[0] if _A + "head.weight" in state else 527
    name = next(
        (
            preset
            for preset, (embed, preset_depths) in HTSAT_PRESETS.items()
            if (width, depths, heads, window) == (embed, preset_depths, HTSAT_HEADS, HTSAT_WINDOW)
        ),
        CUSTOM,
    )
    return AudioTower(
        name=name,
        embed_dim=width,
        depths=depths,
        heads=heads,
        window_size=window,
        patch_size=patch,
        in_channels=channels,
        mlp_ratio=hidden / width,
        mel_bins=_shape(state, _A + "bn0.weight")[0],
        num_classes=classes,
        qkv_bias=_A + "layers.0.blocks.0.attn.qkv.bias" in state,
    )


def read_text_tower(state: dict[str, torch.Tensor]) -> TextTower:
    """RoBERTa's shape from its weights. The head count is not in them: RoBERTa's heads are 64
    wide (roberta-base: 768 / 12)."""
    vocab, width = _shape(state, "text_branch.embeddings.word_embeddings.weight")
    layers = _count(state, r"text_branch\.encoder\.layer\.(\d+)\.")
    if not layers:
        raise KeyError("text_branch.encoder.layer.0.attention.self.query.weight")
    tower = TextTower(
        name=CUSTOM,
        vocab_size=vocab,
        hidden_size=width,
        layers=layers[-1] + 1,
        heads=max(1, width // 64),
        intermediate_size=_shape(state, "text_branch.encoder.layer.0.intermediate.dense.weight")[0],
        max_positions=_shape(state, "text_branch.embeddings.position_embeddings.weight")[0],
        type_vocab_size=_shape(state, "text_branch.embeddings.token_type_embeddings.weight")[0],
    )
    shape = (vocab, width, tower.layers, tower.max_positions, tower.intermediate_size)
    return TextTower(**{**asdict(tower), "name": "roberta" if shape == ROBERTA_BASE else CUSTOM})


def describe(tower: AudioTower | TextTower) -> str:
    if isinstance(tower, AudioTower):
        return (
            f"{tower.name} HTS-AT (patch width {tower.embed_dim}, blocks {list(tower.depths)}, "
            f"heads {list(tower.heads)}, window {tower.window_size})"
        )
    return (
        f"{tower.name} RoBERTa ({tower.layers} layers × {tower.hidden_size}, vocab "
        f"{tower.vocab_size}, {tower.max_positions} positions)"
    )


def clap_config(audio: AudioTower, text: TextTower, projection_dim: int) -> ClapConfig:
    """The transformers config of LAION's model with these towers. What the weights cannot say
    (activations, norms' eps, patch stride = patch size, 256×256 input) is LAION's code."""
    stages = len(audio.depths)
    audio_config = ClapAudioConfig(
        spec_size=SPEC_SIZE,
        num_mel_bins=audio.mel_bins,
        patch_size=audio.patch_size,
        patch_stride=[audio.patch_size, audio.patch_size],
        patch_embed_input_channels=audio.in_channels,
        patch_embeds_hidden_size=audio.embed_dim,
        hidden_size=audio.embed_dim * 2 ** (stages - 1),
        depths=list(audio.depths),
        num_attention_heads=list(audio.heads),
        num_hidden_layers=stages,
        window_size=audio.window_size,
        mlp_ratio=audio.mlp_ratio,
        qkv_bias=audio.qkv_bias,
        num_classes=audio.num_classes,
        projection_dim=projection_dim,
        projection_hidden_act="relu",
        hidden_act="gelu",
        layer_norm_eps=1e-5,  # torch's LayerNorm default, as in LAION's HTS-AT
        drop_path_rate=0.0,
        enable_fusion=False,
    )
    text_config = ClapTextConfig(
        vocab_size=text.vocab_size,
        hidden_size=text.hidden_size,
        num_hidden_layers=text.layers,
        num_attention_heads=text.heads,
        intermediate_size=text.intermediate_size,
        max_position_embeddings=text.max_positions,
        type_vocab_size=text.type_vocab_size,
        layer_norm_eps=1e-5,  # roberta-base's (transformers' CLAP default, 1e-12, is BERT's)
        hidden_act="gelu",
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        projection_dim=projection_dim,
        projection_hidden_act="relu",
    )
    config = ClapConfig(
        text_config=text_config.to_dict(),
        audio_config=audio_config.to_dict(),
        projection_dim=projection_dim,
    )
    config.architectures = ["ClapModel"]
    return config


def laion_feature_extractor() -> ClapFeatureExtractor:
    """LAION's log-mel front end, unfused: one 10 s window, repeat-padded, never cropped at
    random by us (we window clips ourselves)."""
    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=SAMPLE_RATE,
        hop_length=HOP_LENGTH,
        max_length_s=10,
        fft_window_size=N_FFT,
        frequency_min=FREQ_MIN,
        frequency_max=FREQ_MAX,
        top_db=None,
        truncation="rand_trunc",
        padding="repeatpad",
    )


# --- checks --------------------------------------------------------------------------------------


def _key_list(title: str, keys: list[str]) -> str:
    return f"\n  {title} ({len(keys)}):" + "".join(f"\n    {k}" for k in keys) if keys else ""


def check_keys(path: Path, mapped: MappedWeights, config: ClapConfig) -> None:
    """The renamed weights must be exactly ClapModel's state dict: names, then shapes."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ClapModel(config).state_dict().items()}
    missing = sorted(
        {laion_name(k) for k in expected if k not in mapped.tensors and not DERIVED_HF.fullmatch(k)}
    )
    unexpected = sorted(
        {*mapped.unknown, *(mapped.sources[k] for k in mapped.tensors if k not in expected)}
    )
    shapes = sorted(
        {
            f"{mapped.sources[k]}: {list(v.shape)} in the checkpoint, {list(expected[k])} in "
            "the model its other weights describe"
            for k, v in mapped.tensors.items()
            if k in expected and tuple(v.shape) != expected[k]
        }
    )
    if missing or unexpected or shapes:
        raise ConversionError(
            f"{path} does not match a LAION CLAP (HTS-AT + RoBERTa) checkpoint; nothing written."
            + _key_list("missing", missing)
            + _key_list("unexpected", unexpected)
            + _key_list("wrong shape", shapes)
        )


def check_front_end(state: dict[str, torch.Tensor], extractor: ClapFeatureExtractor) -> None:
    """The checkpoint's own STFT size and mel filter bank must be the ones the feature extractor
    will compute, or the converted model would hear different features than it was trained on."""
    stft = state.get(_A + "spectrogram_extractor.stft.conv_real.weight")
    if stft is not None and tuple(stft.shape) != (N_FFT // 2 + 1, 1, N_FFT):
        raise ConversionError(
            f"the checkpoint's STFT is {list(stft.shape)}, not the {N_FFT}-point one "
            "LAION's HTS-AT configs use"
        )
    mel = state.get(_A + "logmel_extractor.melW")
    if mel is None:
        return
    ours = np.asarray(extractor.mel_filters_slaney, dtype=np.float64)
    theirs = mel.detach().double().numpy()
    if theirs.shape != ours.shape or np.abs(theirs - ours).max() > 1e-4 * np.abs(ours).max():
        raise ConversionError(
            f"the checkpoint's mel filter bank {list(theirs.shape)} is not the Slaney "
            f"{ours.shape[1]}-band {FREQ_MIN}–{FREQ_MAX} Hz bank of an {N_FFT}-point STFT at "
            f"{SAMPLE_RATE} Hz that the converted folder's feature extractor computes"
        )


def check_tower_choice(audio: AudioTower, text: TextTower, base: str | None, text_kind: str):
    """``--base``/``--text`` are checks on the weights, never overrides."""
    if base is not None and base not in (*HTSAT_PRESETS, CUSTOM):
        raise ConversionError(f"--base {base}: use one of {', '.join([*HTSAT_PRESETS, CUSTOM])}")
    if base is None and audio.name == CUSTOM:
        raise ConversionError(
            f"the audio tower is {describe(audio)}, none of LAION's releases "
            f"({', '.join(HTSAT_PRESETS)}): a truncated or foreign checkpoint? If it is your own "
            "training, pass --base custom."
        )
    if base is not None and base != CUSTOM and base != audio.name:
        embed, depths = HTSAT_PRESETS[base]
        raise ConversionError(
            f"--base {base} expects patch width {embed} and blocks {list(depths)}, but the "
            f"weights are {describe(audio)}; drop --base to take the weights' tower"
        )
    if text_kind not in ("roberta", CUSTOM):
        raise ConversionError(f"--text {text_kind}: use roberta (roberta-base) or {CUSTOM}")
    if text_kind == "roberta" and text.name != "roberta":
        vocab, width, layers, positions, inner = ROBERTA_BASE
        raise ConversionError(
            f"--text roberta expects roberta-base ({layers} layers × {width}, vocab {vocab}, "
            f"{positions} positions, MLP {inner}), but the weights are {describe(text)}; pass "
            f"--text {CUSTOM} for another RoBERTa"
        )


# --- the tokenizer -------------------------------------------------------------------------------


def find_roberta_tokenizer(folder: Path | None) -> Path:
    """A folder with roberta-base's BPE (``vocab.json`` + ``merges.txt``): the one given, else a
    Hugging Face cache copy found offline."""
    if folder is not None:
        missing = [name for name in ROBERTA_FILES if not (Path(folder) / name).is_file()]
        if missing:
            raise ConversionError(f"--tokenizer {folder} lacks {', '.join(missing)}{_WHERE}")
        return Path(folder)
    from huggingface_hub import try_to_load_from_cache

    for repo in ROBERTA_HUB_IDS:
        found = [try_to_load_from_cache(repo, name) for name in ROBERTA_FILES]
        if all(isinstance(path, str) for path in found):
            return Path(found[0]).parent
    raise ConversionError(
        "LAION's CLAPs tokenise text with roberta-base's BPE, and it is not in the local "
        f"Hugging Face cache: pass --tokenizer DIR, a folder with {' and '.join(ROBERTA_FILES)}"
        + _WHERE
    )


_WHERE = (
    " (roberta-base's, from https://huggingface.co/FacebookAI/roberta-base/tree/main or any "
    "roberta-base copy you have, e.g. a Hugging Face cache snapshot folder)"
)


def load_tokenizer(folder: Path, vocab_size: int) -> RobertaTokenizer:
    tokenizer = RobertaTokenizer.from_pretrained(folder, model_max_length=LAION_TEXT_TOKENS)
    if len(tokenizer) != vocab_size:
        raise ConversionError(
            f"the tokenizer in {folder} has {len(tokenizer)} tokens, the checkpoint's text tower "
            f"{vocab_size}: it is not the tokenizer these weights were trained with"
        )
    return tokenizer


# --- the conversion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversionReport:
    out: Path
    audio: str
    text: str
    projection_dim: int
    tensors: int  # written to model.safetensors
    dropped: int  # checkpoint entries ClapModel has no use for (loss MLPs, classifier, …)
    sha256: str  # of the .pt


def convert_laion_clap(
    checkpoint: Path,
    out: Path,
    *,
    base: str | None = None,
    text: str = "roberta",
    tokenizer: Path | None = None,
    allow_pickle: bool = False,
) -> ConversionReport:
    """Convert a LAION CLAP ``.pt`` into a folder ``ClapEmbedder.from_pretrained`` loads.

    ``base`` (``htsat-tiny``/``htsat-base``/``htsat-large``/``custom``) and ``text``
    (``roberta``/``custom``) are checks: the towers are read from the weights, and a choice
    that contradicts them is refused. Nothing is written unless every check passes.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConversionError(f"{out} exists and is not an empty folder")
    state = load_laion_state_dict(checkpoint, allow_pickle=allow_pickle)
    if fusion := sorted(k for k in state if FUSION_KEY.match(k)):
        raise ConversionError(
            f"{checkpoint} is a fusion CLAP ({len(fusion)} fusion keys, e.g. {fusion[0]}): "
            "audiorag embeds fixed 10 s windows with the unfused model. Use an unfused "
            "checkpoint (630k-audioset-best.pt, music_audioset_epoch_15_esc_90.14.pt, …)."
        )
    mapped = map_state_dict(state)
    try:
        audio, text_tower = read_audio_tower(state), read_text_tower(state)
        projection_dim = _shape(state, "audio_projection.0.weight")[0]
    except KeyError as err:
        raise ConversionError(
            f"{checkpoint} is not a LAION CLAP (HTS-AT + RoBERTa) checkpoint; nothing written."
            + _key_list("missing", [err.args[0]])
            + _key_list("unexpected", mapped.unknown)
        ) from err
    check_tower_choice(audio, text_tower, base, text)
    config = clap_config(audio, text_tower, projection_dim)
    check_keys(checkpoint, mapped, config)
    extractor = laion_feature_extractor()
    check_front_end(state, extractor)
    bpe = load_tokenizer(find_roberta_tokenizer(tokenizer), text_tower.vocab_size)

    tensors = {k: v.contiguous() for k, v in mapped.tensors.items()}
    tensors["text_model.embeddings.position_ids"] = torch.arange(text_tower.max_positions)[None]
    tensors["text_model.embeddings.token_type_ids"] = torch.zeros(
        1, text_tower.max_positions, dtype=torch.long
    )
    sha256 = file_sha256(checkpoint)
    partial = out.with_name(out.name + ".partial")  # a failed run leaves no half folder at out
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config.save_pretrained(partial)
    save_file(tensors, partial / "model.safetensors", metadata={"format": "pt"})
    # safetensors creates the file owner-only; give it the mode the other files got (umask).
    (partial / "model.safetensors").chmod((partial / "config.json").stat().st_mode & 0o777)
    ClapProcessor(feature_extractor=extractor, tokenizer=bpe).save_pretrained(partial)
    provenance = {
        "source": "LAION-AI/CLAP checkpoint",
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": sha256,
        "audio_tower": describe(audio),
        "text_tower": describe(text_tower),
        "text_max_length": LAION_TEXT_TOKENS,
        "fusion": False,
        "converted_by": "audiorag convert clap",
    }
    (partial / "audiorag.json").write_text(json.dumps(provenance, indent=2) + "\n")
    if out.exists():
        out.rmdir()  # empty (checked above)
    partial.rename(out)
    return ConversionReport(
        out=out,
        audio=describe(audio),
        text=describe(text_tower),
        projection_dim=projection_dim,
        tensors=len(tensors),
        dropped=len(mapped.dropped),
        sha256=sha256,
    )
