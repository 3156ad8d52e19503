"""``audiorag convert stable-audio-3``: a tiny random SA3 release in the original
(stable-audio-tools) layout → a diffusers folder that loads and renders like the model it came from.

The release is written from a tiny diffusers SA3 (differential attention on, as in SA3 Medium) by
the inverse of diffusers' conversion script, spelled out here key by key in the reference names:
converting it back must give the very same weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderSAME,
    FlowMatchEulerDiscreteScheduler,
    StableAudio3DiTModel,
    StableAudio3DurationEmbedder,
    StableAudio3Pipeline,
)
from safetensors.torch import load_file, save_file
from transformers import T5GemmaConfig, T5GemmaEncoderModel
from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig
from typer.testing import CliRunner

from audiorag.convert import ConversionError
from audiorag.convert.stable_audio_3 import convert_stable_audio_3, reorder_qkv
from generation.interface import RenderSettings
from generation.loading import load_generator
from tests.tiny_models import _randomise_zero_init, build_tiny_tokenizer

SR = 16000
COND = 16  # text width = the DiT's cross/global conditioning width = the duration embedding's


def tiny_text_encoder(folder: Path) -> Path:
    """A T5Gemma folder (encoder weights + tokenizer) standing in for google/t5gemma-b-b-ul2."""
    torch.manual_seed(1)
    tokenizer = build_tiny_tokenizer()
    module = T5GemmaModuleConfig(
        vocab_size=len(tokenizer),
        hidden_size=COND,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=tokenizer.model_max_length,
        sliding_window=tokenizer.model_max_length,
        layer_types=["full_attention"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    ).to_dict()
    encoder = T5GemmaEncoderModel(
        T5GemmaConfig(encoder=module, decoder=module, is_encoder_decoder=False)
    )
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_components() -> dict[str, torch.nn.Module]:
    """A tiny SA3 in diffusers form, differential attention on in the VAE and the DiT."""
    torch.manual_seed(0)
    vae = AutoencoderSAME(
        audio_channels=2,
        patch_size=64,
        encoder_channels=8,
        encoder_c_mults=(2,),
        encoder_strides=(4,),
        encoder_transformer_depths=(2,),
        latent_dim=8,
        use_differential_attention=True,
        dim_heads=4,
        ff_mult=2,
        sampling_rate=SR,
    )
    transformer = StableAudio3DiTModel(
        io_channels=8,
        embed_dim=32,
        depth=2,
        num_heads=4,
        cond_token_dim=COND,
        global_cond_dim=COND,
        local_add_cond_dim=9,
        timestep_features_dim=16,
        ff_mult=2,
        num_memory_tokens=2,
        use_differential_attention=True,
    )
    for model in (vae, transformer):
        _randomise_zero_init(model)
    duration = StableAudio3DurationEmbedder(output_dim=COND, fourier_dim=16, max_val=8.0)
    return {"vae": vae, "transformer": transformer, "duration_embedder": duration}


# -- the inverse of the conversion, in the reference's own names ---------------------------------

VAE_INNER = {  # diffusers → stable-audio-tools, inside a resampling block's transformer
    "norm_attn.": "pre_norm.",
    "attn.": "self_attn.",
    "norm_ff.": "ff_norm.",
    "ff.proj_in.": "ff.ff.0.proj.",
    "ff.proj_out.": "ff.ff.2.",
}
DIT_TOP = {
    "proj_in.weight": "transformer.project_in.weight",
    "proj_out.weight": "transformer.project_out.weight",
    "memory_tokens": "transformer.memory_tokens",
    "rotary_pos_emb.inv_freq": "transformer.rotary_pos_emb.inv_freq",
}


def to_reference_qkv(weight: torch.Tensor) -> torch.Tensor:
    """diffusers' [q1|q2|k1|k2|v] → the reference's [q|k|v|q2|k2]."""
    q, q2, k, k2, v = weight.chunk(5)
    return torch.cat([q, k, v, q2, k2])


def reference_vae_key(key: str, depth: int) -> str:
    if m := re.fullmatch(r"(encoder|decoder)\.blocks\.(\d+)\.transformers\.(\d+)\.(.+)", key):
        side, block, inner, local = m.groups()
        index = int(block) if side == "encoder" else int(block) + 3
        for new, old in VAE_INNER.items():
            if local.startswith(new):
                local = old + local[len(new) :]
                break
        return f"pretransform.model.{side}.layers.{index}.transformers.{inner}.{local}"
    if m := re.fullmatch(r"(encoder|decoder)\.blocks\.(\d+)\.(.+)", key):
        side, block, local = m.groups()
        index = int(block) if side == "encoder" else int(block) + 3
        return f"pretransform.model.{side}.layers.{index}.{local}"
    if m := re.fullmatch(r"(encoder|decoder)\.proj\.(weight|bias)", key):
        index = depth + 1 if m[1] == "encoder" else 1  # [TRBs, T, Linear, T] / [T, Linear, T, TRBs]
        return f"pretransform.model.{m[1]}.layers.{index}.{m[2]}"
    if key == "bottleneck.scale":
        return "pretransform.model.bottleneck.scaling_factor"
    return f"pretransform.model.{key}"  # bottleneck.bias, bottleneck.running_std


def reference_dit_key(key: str) -> str:
    if key == "prompt_padding_embedding":
        return "conditioner.conditioners.prompt.padding_embedding"
    if m := re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)", key):
        local = m[2].replace("ff.proj_in.", "ff.ff.0.proj.").replace("ff.proj_out.", "ff.ff.2.")
        return f"model.model.transformer.layers.{m[1]}.{local}"
    if key.startswith("global_cond_embedder."):
        return f"model.model.transformer.{key}"
    return "model.model." + DIT_TOP.get(key, key)


def reference_state(components: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """The release's ``model.safetensors``: every component under its stable-audio-tools name."""
    state: dict[str, torch.Tensor] = {}
    depth = len(components["vae"].config.encoder_strides)
    for key, value in components["vae"].state_dict().items():
        if key.endswith("to_qkv.weight"):
            value = to_reference_qkv(value)
        state[reference_vae_key(key, depth)] = value
    for key, value in components["transformer"].state_dict().items():
        if key.endswith("self_attn.to_qkv.weight"):
            value = to_reference_qkv(value)
        state[reference_dit_key(key)] = value
    linear = components["duration_embedder"].linear
    prefix = "conditioner.conditioners.seconds_total.embedder.embedding.1."
    state[prefix + "weight"], state[prefix + "bias"] = linear.weight, linear.bias
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


MODEL_CONFIG = {
    "model_type": "diffusion_cond",
    "sample_rate": SR,
    "model": {
        "pretransform": {
            "type": "autoencoder",
            "config": {
                "io_channels": 2,
                "downsampling_ratio": 256,
                "encoder": {
                    "type": "same",
                    "config": {
                        "channels": 8,
                        "c_mults": [2],
                        "strides": [4],
                        "transformer_depths": [2],
                        "latent_dim": 8,
                        "dim_heads": 4,
                        "sliding_window": [1, 1],
                        "sinusoidal_blocks": [0],
                    },
                },
                "decoder": {"type": "same", "config": {"sinusoidal_blocks": [0]}},
            },
        },
        "conditioning": {
            "configs": [
                {"id": "prompt", "type": "t5gemma", "config": {}},
                {"id": "seconds_total", "type": "number", "config": {"min_val": 0, "max_val": 8}},
            ]
        },
        "diffusion": {"diffusion_objective": "rf_denoiser"},
    },
}


def write_release(folder: Path, state: dict[str, torch.Tensor], config=MODEL_CONFIG) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, folder / "model.safetensors")
    (folder / "model_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """(diffusers components, text-encoder folder, release folder, the same model saved by
    diffusers itself)."""
    root = tmp_path_factory.mktemp("sa3")
    components = tiny_components()
    text = tiny_text_encoder(root / "t5gemma")
    release = write_release(root / "release", reference_state(components))
    encoder = T5GemmaEncoderModel.from_pretrained(text)
    from transformers import AutoTokenizer

    original = root / "original"
    StableAudio3Pipeline(
        text_encoder=encoder,
        tokenizer=AutoTokenizer.from_pretrained(text),
        scheduler=FlowMatchEulerDiscreteScheduler(stochastic_sampling=True),
        **components,
    ).save_pretrained(original)
    return components, text, release, original


@pytest.fixture(scope="module")
def converted(parts, tmp_path_factory):
    _, text, release, _ = parts
    out = tmp_path_factory.mktemp("converted") / "sa3"
    report = convert_stable_audio_3(release, out, text_encoder=text)
    return out, report


def test_reorder_puts_the_differential_halves_together():
    rows = torch.arange(5.0)[:, None]  # one row each: q, k, v, q2, k2
    assert reorder_qkv(rows).flatten().tolist() == [0.0, 3.0, 1.0, 4.0, 2.0]  # q q2 k k2 v


def test_the_converted_weights_are_the_models_own(parts, converted):
    components, _, _, _ = parts
    out, report = converted
    for name, model in components.items():
        saved = load_file(out / name / "diffusion_pytorch_model.safetensors")
        expected = model.state_dict()
        assert saved.keys() == expected.keys(), name
        for key, value in expected.items():
            assert torch.equal(saved[key], value), f"{name}/{key}"
    config = json.loads((out / "vae" / "config.json").read_text())
    assert config["use_differential_attention"] and config["encoder_transformer_depths"] == [2]
    assert config["patch_size"] == 64 and config["sampling_rate"] == SR
    assert json.loads((out / "transformer" / "config.json").read_text())["num_heads"] == 4
    assert report.sampler.startswith("ping-pong") and report.default_steps == 8
    assert report.max_duration_s == 8.0 and not report.text_weights_from_release
    assert (out / "tokenizer").is_dir() and (out / "text_encoder" / "config.json").is_file()
    provenance = json.loads((out / "audiorag.json").read_text())
    assert (
        provenance["diffusion_objective"] == "rf_denoiser"
        and len(provenance["checkpoint_sha256"]) == 64
    )


def test_the_converted_folder_loads_and_renders_like_the_original(parts, converted):
    _, _, _, original = parts
    out, _ = converted
    ours, theirs = load_generator(out), load_generator(original)
    assert ours.family == "stable-audio-3" and ours.default_steps == 8
    assert ours.max_duration_s == 8.0 and ours.sample_rate == SR
    settings = RenderSettings(prompt="warm bass and drums", duration_s=1.0, steps=3, cfg=1.0)
    a, b = ours.render(settings).audio, theirs.render(settings).audio
    assert a.shape == (2, SR) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_text_encoder_weights_in_the_release_are_used(parts, tmp_path):
    _, text, release, _ = parts
    state = load_file(release / "model.safetensors")
    trained = {
        k: torch.randn_like(v)
        for k, v in T5GemmaEncoderModel.from_pretrained(text).state_dict().items()
    }
    state.update({f"conditioner.conditioners.prompt.model.{k}": v for k, v in trained.items()})
    out = tmp_path / "out"
    report = convert_stable_audio_3(write_release(tmp_path / "rel", state), out, text_encoder=text)
    assert report.text_weights_from_release
    loaded = T5GemmaEncoderModel.from_pretrained(out / "text_encoder").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained.items())


def test_unknown_and_missing_keys_are_refused_with_the_full_list(parts, tmp_path):
    _, text, release, _ = parts
    state = load_file(release / "model.safetensors")
    state["model.model.transformer.layers.0.extra.weight"] = torch.zeros(2)
    state["model_ema.model.to_cond_embed.0.weight"] = torch.zeros(2)
    del state["model.model.transformer.layers.1.cross_attn.to_kv.weight"]
    del state["pretransform.model.decoder.layers.3.new_tokens"]
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as refused:
        convert_stable_audio_3(write_release(tmp_path / "rel", state), out, text_encoder=text)
    message = str(refused.value)
    assert "nothing written" in message
    assert "missing (2):" in message and "unexpected (2):" in message
    for key in (
        "transformer/transformer_blocks.1.cross_attn.to_kv.weight",
        "vae/decoder.blocks.0.new_tokens",
        "model.model.transformer.layers.0.extra.weight",
        "model_ema.model.to_cond_embed.0.weight",
    ):
        assert key in message
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_a_wrong_shape_is_refused(parts, tmp_path):
    _, text, release, _ = parts
    state = load_file(release / "model.safetensors")
    state["model.model.transformer.layers.0.to_scale_shift_gate"] = torch.zeros(7)
    with pytest.raises(
        ConversionError, match=r"(?s)wrong shape \(1\):.*to_scale_shift_gate: \[7\]"
    ):
        convert_stable_audio_3(
            write_release(tmp_path / "rel", state), tmp_path / "o", text_encoder=text
        )


def test_the_config_must_name_what_weights_cannot_show(parts, tmp_path):
    _, text, release, _ = parts
    config = json.loads(json.dumps(MODEL_CONFIG))
    del config["model"]["pretransform"]["config"]["encoder"]["config"]["strides"]
    rel = write_release(tmp_path / "rel", load_file(release / "model.safetensors"), config)
    with pytest.raises(ConversionError, match=r"model_config.json lacks .*strides"):
        convert_stable_audio_3(rel, tmp_path / "o", text_encoder=text)
    (rel / "model_config.json").unlink()
    with pytest.raises(ConversionError, match=r"missing: .*model_config\.json"):
        convert_stable_audio_3(rel, tmp_path / "o", text_encoder=text)


def test_without_a_text_encoder_it_names_what_to_provide(parts, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    _, _, release, _ = parts
    with pytest.raises(ConversionError, match=r"google/t5gemma-b-b-ul2.*--text-encoder DIR"):
        convert_stable_audio_3(release, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_the_cli_converts_and_refuses(parts, tmp_path):
    from audiorag.cli.app import app

    _, text, release, _ = parts
    runner = CliRunner()
    out = tmp_path / "sa3"
    args = ["convert", "stable-audio-3", str(release), "--out", str(out)]
    result = runner.invoke(app, [*args, "--text-encoder", str(text)])
    assert result.exit_code == 0, result.output
    assert "AUDIORAG_GENERATOR_MODEL=" in result.output and "ping-pong" in result.output
    assert (out / "model_index.json").is_file()
    again = runner.invoke(app, [*args, "--text-encoder", str(text)])
    assert again.exit_code == 2 and "not an empty folder" in again.output


def test_the_text_encoder_is_found_in_the_offline_cache(parts, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants as hub_constants

    _, text, release, _ = parts
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--google--t5gemma-b-b-ul2"
    shutil.copytree(text, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    report = convert_stable_audio_3(release, tmp_path / "out")
    assert report.text_encoder == str(repo / "snapshots" / revision)
