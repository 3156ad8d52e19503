"""A Stable Audio 3 release (stable-audio-tools layout) → the diffusers folder our loader reads.

Stability publishes SA3 as one ``model.safetensors`` (the whole ``ConditionedDiffusionModelWrapper``
state) and its ``model_config.json``; diffusers' ``StableAudio3Pipeline`` wants a folder of
components. The mapping is the one in diffusers' ``scripts/convert_stable_audio_3_to_diffusers.py``
(not in the wheel), written here as full-key rules:

* ``pretransform.model.*`` → ``vae`` (``AutoencoderSAME``): encoder ``layers.{i}`` (the
  transformer-resampling blocks) → ``encoder.blocks.{i}``, ``layers.{depth+1}`` (the Linear after
  a Transpose) → ``encoder.proj``; decoder ``layers.1`` → ``decoder.proj``, ``layers.{3+i}`` →
  ``decoder.blocks.{i}``; inside a block ``pre_norm``/``self_attn``/``ff_norm``/``ff.ff.0.proj``/
  ``ff.ff.2`` → ``norm_attn``/``attn``/``norm_ff``/``ff.proj_in``/``ff.proj_out``; the
  bottleneck's ``scaling_factor`` → ``scale``.
* ``model.model.*`` → ``transformer`` (``StableAudio3DiTModel``): ``transformer.project_in/out`` →
  ``proj_in/out``, ``transformer.{memory_tokens, rotary_pos_emb, global_cond_embedder}`` one level
  up, ``transformer.layers.{i}`` → ``transformer_blocks.{i}`` (feed-forward renamed as above);
  ``conditioner.conditioners.prompt.padding_embedding`` → ``prompt_padding_embedding``.
* ``conditioner.conditioners.seconds_total.embedder.embedding.1`` → ``duration_embedder.linear``
  (index 0, the Fourier features, has no weights; their frequencies are rebuilt).
* ``conditioner.conditioners.prompt.model.*`` → the T5Gemma text encoder, when the release
  carries it; the encoder and its tokenizer themselves come from ``google/t5gemma-b-b-ul2``.
* Differential attention's fused self-attention projection is stored ``[q | k | v | q2 | k2]``;
  diffusers wants ``[q1 | q2 | k1 | k2 | v]`` (cross-attention needs no reorder).

Every checkpoint key must be consumed by a rule (the VAE's ``noise_scaling_factor``, which the
diffusers model has no use for, is the only one dropped, as the script drops it), and each
component's converted weights must be its state dict exactly — names and shapes — or nothing is
written and the full lists are printed. Shapes come from the weights; what weights cannot show
(the VAE's strides, sliding window and sinusoidal blocks, the sample rate, the duration range,
the sampler) comes from ``model_config.json``. No network: the text encoder is a local folder or
the offline Hugging Face cache.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderSAME,
    FlowMatchEulerDiscreteScheduler,
    StableAudio3DiTModel,
    StableAudio3DurationEmbedder,
    StableAudio3Pipeline,
)
from safetensors.torch import load_file

from audio.decode import file_sha256
from audiorag.convert.clap import ConversionError
from generation.interface import DEFAULTS_FILE, DTYPES

TEXT_ENCODER_HUB_ID = "google/t5gemma-b-b-ul2"
CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "model.safetensors"

VAE = "pretransform.model."
DIT = "model.model."
PROMPT = "conditioner.conditioners.prompt."
DURATION = "conditioner.conditioners.seconds_total.embedder.embedding."

# Inside one transformer of a VAE resampling block (SAME renames its norms and attention).
_VAE_INNER = (
    ("pre_norm.", "norm_attn."),
    ("self_attn.to_qkv.", "attn.to_qkv."),
    ("self_attn.to_out.", "attn.to_out."),
    ("self_attn.q_norm.", "attn.q_norm."),
    ("self_attn.k_norm.", "attn.k_norm."),
    ("ff_norm.", "norm_ff."),
    ("ff.ff.0.proj.", "ff.proj_in."),  # the GLU's input projection
    ("ff.ff.2.", "ff.proj_out."),
)
# Inside a DiT block diffusers keeps the reference names but for the SwiGLU feed-forward.
_DIT_INNER = (("ff.ff.0.proj.", "ff.proj_in."), ("ff.ff.2.", "ff.proj_out."))
_DIT_TOP = {  # release key under model.model. → diffusers key
    "to_timestep_embed.0.weight": "to_timestep_embed.0.weight",
    "to_timestep_embed.0.bias": "to_timestep_embed.0.bias",
    "to_timestep_embed.2.weight": "to_timestep_embed.2.weight",
    "to_timestep_embed.2.bias": "to_timestep_embed.2.bias",
    "to_cond_embed.0.weight": "to_cond_embed.0.weight",
    "to_cond_embed.2.weight": "to_cond_embed.2.weight",
    "to_global_embed.0.weight": "to_global_embed.0.weight",
    "to_global_embed.2.weight": "to_global_embed.2.weight",
    "preprocess_conv.weight": "preprocess_conv.weight",
    "postprocess_conv.weight": "postprocess_conv.weight",
    "transformer.project_in.weight": "proj_in.weight",
    "transformer.project_out.weight": "proj_out.weight",
    "transformer.memory_tokens": "memory_tokens",
    "transformer.rotary_pos_emb.inv_freq": "rotary_pos_emb.inv_freq",
    "transformer.global_cond_embedder.0.weight": "global_cond_embedder.0.weight",
    "transformer.global_cond_embedder.0.bias": "global_cond_embedder.0.bias",
    "transformer.global_cond_embedder.2.weight": "global_cond_embedder.2.weight",
    "transformer.global_cond_embedder.2.bias": "global_cond_embedder.2.bias",
}
_BOTTLENECK = {"scaling_factor": "scale", "bias": "bias", "running_std": "running_std"}
# Rebuilt by the diffusers module from its config, not read from the release.
DERIVED = {"duration_embedder": {"freqs"}}
COMPONENTS = ("vae", "transformer", "duration_embedder", "text_encoder")


def _inner(local: str, renames: tuple[tuple[str, str], ...]) -> str | None:
    for old, new in renames:
        if local.startswith(old):
            return new + local[len(old) :]
    return None


@dataclass
class MappedWeights:
    """The release's tensors per diffusers component (renamed, QKV reordered), where each came
    from, and the keys no rule took."""

    tensors: dict[str, dict[str, torch.Tensor]] = field(
        default_factory=lambda: {name: {} for name in COMPONENTS}
    )
    sources: dict[str, str] = field(default_factory=dict)  # "component/key" → release key
    unknown: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def vae_depth(state: dict[str, torch.Tensor]) -> int:
    """Resampling blocks in the VAE's encoder (each has a ``new_tokens``)."""
    depth = 0
    while f"{VAE}encoder.layers.{depth}.new_tokens" in state:
        depth += 1
    return depth


def target_name(key: str, depth: int) -> tuple[str, str] | None:
    """(component, diffusers key) for a release key, or None when no rule takes it."""
    if key.startswith(VAE):
        local = key[len(VAE) :]
        if m := re.fullmatch(r"bottleneck\.(\w+)", local):
            name = _BOTTLENECK.get(m[1])
            return ("vae", f"bottleneck.{name}") if name else None
        if m := re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.(.+)", local):
            side, index, rest = m[1], int(m[2]), m[3]
            proj_index = depth + 1 if side == "encoder" else 1
            if index == proj_index and rest in ("weight", "bias"):
                return "vae", f"{side}.proj.{rest}"
            block = index if side == "encoder" else index - 3
            if not 0 <= block < depth:
                return None
            prefix = f"{side}.blocks.{block}."
            if rest == "new_tokens" or re.fullmatch(r"mapping\.(weight_g|weight_v|bias)", rest):
                return "vae", prefix + rest
            if m := re.fullmatch(r"transformers\.(\d+)\.(.+)", rest):
                inner = _inner(m[2], _VAE_INNER)
                return ("vae", f"{prefix}transformers.{m[1]}.{inner}") if inner else None
        return None
    if key.startswith(DIT):
        local = key[len(DIT) :]
        if local in _DIT_TOP:
            return "transformer", _DIT_TOP[local]
        if m := re.fullmatch(r"transformer\.layers\.(\d+)\.(.+)", local):
            inner = _inner(m[2], _DIT_INNER) or m[2]
            return "transformer", f"transformer_blocks.{m[1]}.{inner}"
        return None
    if key == PROMPT + "padding_embedding":
        return "transformer", "prompt_padding_embedding"
    if key.startswith(PROMPT + "model."):
        return "text_encoder", key[len(PROMPT + "model.") :]
    if m := re.fullmatch(re.escape(DURATION) + r"1\.(weight|bias)", key):
        return "duration_embedder", f"linear.{m[1]}"
    return None


def reorder_qkv(weight: torch.Tensor) -> torch.Tensor:
    """Differential self-attention's fused projection, ``[q|k|v|q2|k2]`` → ``[q1|q2|k1|k2|v]``."""
    q, k, v, q2, k2 = weight.chunk(5, dim=0)
    return torch.cat([q, q2, k, k2, v], dim=0)


def is_differential_qkv(weight: torch.Tensor) -> bool:
    """A fused self-attention projection of 5 × width rows (differential), not 3 × width."""
    rows, width = weight.shape
    if rows not in (3 * width, 5 * width):
        raise ConversionError(
            f"a fused QKV weight of shape {list(weight.shape)} is neither 3 nor 5 × {width} rows"
        )
    return rows == 5 * width


def map_state_dict(state: dict[str, torch.Tensor]) -> MappedWeights:
    """Every release key renamed by the rules above, or listed as unknown."""
    mapped = MappedWeights()
    depth = vae_depth(state)
    for key, tensor in state.items():
        if key.startswith(VAE) and key.rsplit(".", 1)[-1] == "noise_scaling_factor":
            mapped.dropped.append(key)
            continue
        target = target_name(key, depth)
        if target is None:
            mapped.unknown.append(key)
            continue
        component, name = target
        fused = name.endswith("to_qkv.weight") and component in ("vae", "transformer")
        if fused and is_differential_qkv(tensor):
            tensor = reorder_qkv(tensor)
        mapped.tensors[component][name] = tensor
        mapped.sources[f"{component}/{name}"] = key
    mapped.unknown.sort()
    return mapped


# -- configs: shapes from the weights, the rest from model_config.json --------------------------


def _get(config: dict[str, Any], *path: str) -> Any:
    node: Any = config
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise ConversionError(
                f"{CONFIG_FILE} lacks {'.'.join(path)} (the VAE's hyper-parameters that its "
                "weights cannot show come from there); give the release's own model_config.json"
            )
        node = node[part]
    return node


def _shape(tensors: dict[str, torch.Tensor], key: str, where: str) -> tuple[int, ...]:
    if key not in tensors:
        raise ConversionError(f"the release has no {where} weight {key}: not an SA3 checkpoint")
    return tuple(tensors[key].shape)


def _differential(tensors: dict[str, torch.Tensor], suffix: str) -> bool:
    kinds = {is_differential_qkv(v) for k, v in tensors.items() if k.endswith(suffix)}
    if len(kinds) != 1:
        raise ConversionError(f"mixed or no fused attention projections ({suffix})")
    return kinds.pop()


def vae_config(vae: dict[str, torch.Tensor], model_config: dict[str, Any]) -> dict[str, Any]:
    """``AutoencoderSAME`` arguments."""
    ae = _get(model_config, "model", "pretransform", "config")
    encoder = _get(ae, "encoder", "config")
    decoder = _get(ae, "decoder", "config")
    strides = [int(s) for s in _get(encoder, "strides")]
    width = _shape(vae, "encoder.blocks.0.new_tokens", "VAE")[-1]
    ff_rows = _shape(vae, "encoder.blocks.0.transformers.0.ff.proj_in.weight", "VAE")[0]
    heads_dim = _shape(vae, "encoder.blocks.0.transformers.0.attn.q_norm.gamma", "VAE")[0]
    latent = _shape(vae, "bottleneck.scale", "VAE")[1]
    return {
        "audio_channels": int(ae.get("io_channels", 2)),
        "patch_size": int(_get(ae, "downsampling_ratio")) // math.prod(strides),
        "encoder_channels": int(_get(encoder, "channels")),
        "encoder_c_mults": [int(c) for c in _get(encoder, "c_mults")],
        "encoder_strides": strides,
        "encoder_transformer_depths": [int(d) for d in _get(encoder, "transformer_depths")],
        "latent_dim": int(encoder.get("latent_dim", latent)),
        "use_differential_attention": _differential(vae, "attn.to_qkv.weight"),
        "dim_heads": int(encoder.get("dim_heads", heads_dim)),
        "ff_mult": ff_rows // (2 * width),  # GLU: two halves of ff_mult × width
        # the reference keeps a per-side list, e.g. [1, 1]; diffusers the (symmetric) half width
        "sliding_window": int((encoder.get("sliding_window") or [1])[0]),
        "encoder_sinusoidal_blocks": list(encoder.get("sinusoidal_blocks", [0] * len(strides))),
        "decoder_sinusoidal_blocks": list(decoder.get("sinusoidal_blocks", [0] * len(strides))),
        "sampling_rate": int(model_config.get("sample_rate", 44100)),
    }


def dit_config(dit: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``StableAudio3DiTModel`` arguments, all read from the weights' shapes."""
    embed_dim, features = _shape(dit, "to_timestep_embed.0.weight", "DiT")
    depth = len({k.split(".")[1] for k in dit if k.startswith("transformer_blocks.")})
    dim_heads = _shape(dit, "transformer_blocks.0.self_attn.q_norm.gamma", "DiT")[0]
    return {
        "io_channels": _shape(dit, "preprocess_conv.weight", "DiT")[0],
        "patch_size": 1,
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": embed_dim // dim_heads,
        "cond_token_dim": _shape(dit, "to_cond_embed.0.weight", "DiT")[1],
        "global_cond_dim": _shape(dit, "to_global_embed.0.weight", "DiT")[1],
        "local_add_cond_dim": _shape(dit, "transformer_blocks.0.to_local_embed.0.weight", "DiT")[1],
        "timestep_features_dim": features,
        "ff_mult": _shape(dit, "transformer_blocks.0.ff.proj_in.weight", "DiT")[0]
        // (2 * embed_dim),
        "num_memory_tokens": _shape(dit, "memory_tokens", "DiT")[0],
        "use_differential_attention": _differential(dit, "self_attn.to_qkv.weight"),
    }


def duration_config(
    duration: dict[str, torch.Tensor], model_config: dict[str, Any]
) -> dict[str, Any]:
    """``StableAudio3DurationEmbedder`` arguments: widths from the weights, the range from the
    ``seconds_total`` conditioner's config (SA3 Medium's 0–384 s when it names none)."""
    output_dim, fourier_dim = _shape(duration, "linear.weight", "duration embedder")
    configs = model_config.get("model", {}).get("conditioning", {}).get("configs", [])
    seconds = next((c.get("config", {}) for c in configs if c.get("id") == "seconds_total"), {})
    return {
        "output_dim": output_dim,
        "fourier_dim": fourier_dim,
        "min_val": float(seconds.get("min_val", 0.0)),
        "max_val": float(seconds.get("max_val", 384.0)),
    }


def diffusion_objective(model_config: dict[str, Any]) -> str | None:
    model = model_config.get("model", {})
    return (
        model.get("diffusion", {}).get("diffusion_objective")
        or model.get("diffusion_objective")
        or model_config.get("diffusion_objective")
    )


def sa3_scheduler(objective: str | None) -> FlowMatchEulerDiscreteScheduler:
    """The distilled checkpoint (``rf_denoiser``) samples with 8 ping-pong steps (re-noise every
    step); the base one (``rectified_flow``, or none named) with deterministic Euler."""
    return FlowMatchEulerDiscreteScheduler(stochastic_sampling=objective == "rf_denoiser")


# -- checks --------------------------------------------------------------------------------------


def _key_list(title: str, keys: list[str]) -> str:
    return f"\n  {title} ({len(keys)}):" + "".join(f"\n    {k}" for k in keys) if keys else ""


def check_keys(
    path: Path, mapped: MappedWeights, models: dict[str, torch.nn.Module], carries_text: bool
) -> None:
    """Each component's converted weights must be its state dict exactly: names, then shapes."""
    missing: list[str] = []
    unexpected = list(mapped.unknown)
    shapes: list[str] = []
    for component, model in models.items():
        if component == "text_encoder" and not carries_text:
            continue
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        got = mapped.tensors[component]
        derived = DERIVED.get(component, set())
        missing += [f"{component}/{k}" for k in expected if k not in got and k not in derived]
        unexpected += [mapped.sources[f"{component}/{k}"] for k in got if k not in expected]
        shapes += [
            f"{mapped.sources[f'{component}/{k}']}: {list(v.shape)} in the release, "
            f"{list(expected[k])} in the {component} its other weights describe"
            for k, v in got.items()
            if k in expected and tuple(v.shape) != expected[k]
        ]
    if missing or unexpected or shapes:
        raise ConversionError(
            f"{path} does not match a Stable Audio 3 release (stable-audio-tools layout); "
            "nothing written."
            + _key_list("missing", sorted(missing))
            + _key_list("unexpected", sorted(unexpected))
            + _key_list("wrong shape", sorted(shapes))
        )


def _load_exactly(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load after :func:`check_keys`; derived buffers keep the values the module built."""
    state = model.state_dict()
    state.update(tensors)
    model.load_state_dict(state, strict=True)


# -- the text encoder ----------------------------------------------------------------------------


def find_text_encoder(folder: Path | None) -> Path:
    """A T5Gemma folder (config, weights and tokenizer): the one given, else the offline Hugging
    Face cache's copy of ``google/t5gemma-b-b-ul2``."""
    if folder is not None:
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ConversionError(f"--text-encoder {folder} has no config.json{_WHERE}")
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(TEXT_ENCODER_HUB_ID, local_files_only=True))
    except (LocalEntryNotFoundError, OSError) as err:
        raise ConversionError(
            f"Stable Audio 3 encodes prompts with {TEXT_ENCODER_HUB_ID} (T5Gemma), and it is not "
            "in the local Hugging Face cache: pass --text-encoder DIR" + _WHERE
        ) from err


_WHERE = (
    f" (a folder with {TEXT_ENCODER_HUB_ID}'s config.json, model.safetensors and tokenizer "
    f"files, from https://huggingface.co/{TEXT_ENCODER_HUB_ID} — gated: accept Google's terms "
    "there — or a Hugging Face cache snapshot folder of it)"
)


def load_text_encoder(folder: Path) -> tuple[torch.nn.Module, Any]:
    """The T5Gemma encoder alone (``is_encoder_decoder=False``, as diffusers' script loads it)
    and its tokenizer, offline."""
    from transformers import AutoConfig, AutoTokenizer, T5GemmaEncoderModel

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        config.is_encoder_decoder = False
        encoder = T5GemmaEncoderModel.from_pretrained(folder, config=config, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConversionError(f"{folder}: not a T5Gemma folder ({err}){_WHERE}") from err
    return encoder, tokenizer


# -- the conversion ------------------------------------------------------------------------------


@dataclass
class ConversionReport:
    out: Path
    sampler: str
    default_steps: int
    max_duration_s: float
    params: dict[str, int]
    text_encoder: str
    text_weights_from_release: bool
    dropped: int
    sha256: str


def find_release(source: Path) -> tuple[Path, Path]:
    """(checkpoint, model_config.json) of a release folder, or of a ``.safetensors`` file with
    the config beside it."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    weights = folder / WEIGHTS_FILE if source.is_dir() else source
    config = folder / CONFIG_FILE
    missing = [str(p) for p in (weights, config) if not p.is_file()]
    if missing:
        raise ConversionError(
            f"a Stable Audio 3 release is {WEIGHTS_FILE} with its {CONFIG_FILE} beside it (as on "
            f"the hub: stabilityai/stable-audio-3-medium); missing: {', '.join(missing)}"
        )
    return weights, config


def convert_stable_audio_3(
    source: Path,
    out: Path,
    *,
    text_encoder: Path | None = None,
    dtype: str = "float32",
    progress: Callable[[str], None] | None = None,
) -> ConversionReport:
    """Convert a Stable Audio 3 release into a folder ``load_generator`` loads (see the module
    docstring). Nothing is written unless every check passes."""
    say = progress or (lambda message: None)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConversionError(f"{out} exists and is not an empty folder")
    if dtype not in DTYPES:
        raise ConversionError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    weights, config_file = find_release(source)
    model_config = json.loads(config_file.read_text())
    encoder_folder = find_text_encoder(text_encoder)  # before the big read: fail fast
    say(f"reading {weights.name}")
    state = load_file(weights)
    mapped = map_state_dict(state)
    del state
    try:
        configs = {
            "vae": vae_config(mapped.tensors["vae"], model_config),
            "transformer": dit_config(mapped.tensors["transformer"]),
            "duration_embedder": duration_config(mapped.tensors["duration_embedder"], model_config),
        }
    except ConversionError as err:
        raise ConversionError(
            f"{err}; nothing written." + _key_list("unexpected", mapped.unknown)
        ) from err
    say("building the components")
    encoder, tokenizer = load_text_encoder(encoder_folder)
    models: dict[str, torch.nn.Module] = {
        "vae": AutoencoderSAME(**configs["vae"]),
        "transformer": StableAudio3DiTModel(**configs["transformer"]),
        "duration_embedder": StableAudio3DurationEmbedder(**configs["duration_embedder"]),
        "text_encoder": encoder,
    }
    carries_text = bool(mapped.tensors["text_encoder"])
    check_keys(weights, mapped, models, carries_text)
    text_width = int(encoder.config.encoder.hidden_size)
    if text_width != configs["transformer"]["cond_token_dim"]:
        raise ConversionError(
            f"the text encoder in {encoder_folder} is {text_width} wide; the DiT attends to "
            f"{configs['transformer']['cond_token_dim']}-wide text: not SA3's T5Gemma"
        )
    for component, model in models.items():
        if component != "text_encoder" or carries_text:
            _load_exactly(model, mapped.tensors[component])
        model.to(DTYPES[dtype])
    objective = diffusion_objective(model_config)
    scheduler = sa3_scheduler(objective)
    stochastic = bool(scheduler.config.stochastic_sampling)
    pipe = StableAudio3Pipeline(scheduler=scheduler, tokenizer=tokenizer, **models)

    say(f"writing {out}")
    sha256 = file_sha256(weights)
    partial = out.with_name(out.name + ".partial")  # a failed run leaves no half folder at out
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    pipe.save_pretrained(partial)
    for path in partial.rglob("*.safetensors"):  # safetensors writes owner-only; use the umask's
        path.chmod(path.with_name("config.json").stat().st_mode & 0o777)
    max_duration = float(configs["duration_embedder"]["max_val"])
    defaults = {
        "default_steps": 8 if stochastic else 100,
        "default_cfg": 1.0,  # the distilled model has guidance baked in; 1 = off
        "max_duration_s": max_duration,
        "source": "Stable Audio 3 release (stable-audio-tools layout)",
        "checkpoint": weights.name,
        "checkpoint_sha256": sha256,
        "diffusion_objective": objective,
        "text_encoder": str(encoder_folder),
        "text_encoder_weights_from_release": carries_text,
        "converted_by": "audiorag convert stable-audio-3",
    }
    (partial / DEFAULTS_FILE).write_text(json.dumps(defaults, indent=2) + "\n")
    if out.exists():
        out.rmdir()  # empty (checked above)
    partial.rename(out)
    return ConversionReport(
        out=out,
        sampler=("ping-pong, 8 steps (distilled)" if stochastic else "Euler, 100 steps (base)"),
        default_steps=defaults["default_steps"],
        max_duration_s=max_duration,
        params={k: sum(p.numel() for p in m.parameters()) for k, m in models.items()},
        text_encoder=str(encoder_folder),
        text_weights_from_release=carries_text,
        dropped=len(mapped.dropped),
        sha256=sha256,
    )
