"""`audiorag convert clap`: LAION CLAP .pt checkpoints → a ClapModel folder ClapEmbedder loads.

The checkpoint here is a small LAION CLAP written with LAION's own key names: the audio tower's
from the module definitions of LAION-AI/CLAP's htsat.py (HTSAT_Swin_Transformer with tiny widths),
the text tower a real transformers RobertaModel (which is what LAION's text_branch is), the
projections and loss MLPs from its model.py; saved as DDP does (``module.`` prefix) inside a
``{"state_dict": …}`` checkpoint. Random weights: every value is unique, so where each one lands
can be checked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import ClapConfig, ClapModel, RobertaConfig, RobertaModel
from typer.testing import CliRunner

from audiorag.convert import ConversionError, convert_laion_clap
from index.clap import ClapEmbedder, train_byte_level_tokenizer

SPEC, PATCH, MELS, N_FFT, HOP = 256, 4, 64, 1024, 480
EMBED, DEPTHS, HEADS, WINDOW = 16, (2, 2, 1, 1), (1, 2, 2, 4), 8
TEXT_WIDTH, TEXT_LAYERS, JOINT, CLASSES = 128, 2, 32, 10
CAPTIONS = [
    "punchy house drum loop with crisp hats",
    "dark minor bass line " * 30,  # far past 77 tokens: LAION cut its captions there
]


# --- a LAION CLAP state dict, named as LAION's modules name it -----------------------------------


def _relative_position_index(w: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
    return rel[:, :, 0] * (2 * w - 1) + rel[:, :, 1]


def htsat_shapes(embed, depths, heads, window, classes) -> dict[str, tuple[int, ...]]:
    """HTSAT_Swin_Transformer's state-dict keys and shapes (LAION-AI/CLAP htsat.py)."""
    shapes: dict[str, tuple[int, ...]] = {
        "spectrogram_extractor.stft.conv_real.weight": (N_FFT // 2 + 1, 1, N_FFT),
        "spectrogram_extractor.stft.conv_imag.weight": (N_FFT // 2 + 1, 1, N_FFT),
        "logmel_extractor.melW": (N_FFT // 2 + 1, MELS),
        **{f"bn0.{k}": (MELS,) for k in ("weight", "bias", "running_mean", "running_var")},
        "bn0.num_batches_tracked": (),
        "patch_embed.proj.weight": (embed, 1, PATCH, PATCH),
        "patch_embed.proj.bias": (embed,),
        "patch_embed.norm.weight": (embed,),
        "patch_embed.norm.bias": (embed,),
    }
    grid = SPEC // PATCH
    for i, depth in enumerate(depths):
        dim, res = embed * 2**i, grid // 2**i
        w = min(window, res)  # SwinTransformerBlock: no partition when the window covers it all
        for j in range(depth):
            b = f"layers.{i}.blocks.{j}."
            shapes |= {
                b + "norm1.weight": (dim,),
                b + "norm1.bias": (dim,),
                b + "attn.relative_position_bias_table": ((2 * w - 1) ** 2, heads[i]),
                b + "attn.relative_position_index": (w * w, w * w),
                b + "attn.qkv.weight": (3 * dim, dim),
                b + "attn.qkv.bias": (3 * dim,),
                b + "attn.proj.weight": (dim, dim),
                b + "attn.proj.bias": (dim,),
                b + "norm2.weight": (dim,),
                b + "norm2.bias": (dim,),
                b + "mlp.fc1.weight": (4 * dim, dim),
                b + "mlp.fc1.bias": (4 * dim,),
                b + "mlp.fc2.weight": (dim, 4 * dim),
                b + "mlp.fc2.bias": (dim,),
            }
            if j % 2 == 1 and res > window:  # shifted windows register their mask
                shapes[b + "attn_mask"] = ((res // w) ** 2, w * w, w * w)
        if i < len(depths) - 1:
            shapes |= {
                f"layers.{i}.downsample.reduction.weight": (2 * dim, 4 * dim),
                f"layers.{i}.downsample.norm.weight": (4 * dim,),
                f"layers.{i}.downsample.norm.bias": (4 * dim,),
            }
    features = embed * 2 ** (len(depths) - 1)
    freq = SPEC // 2 ** (len(depths) - 1) // PATCH // (SPEC // MELS)
    return shapes | {
        "norm.weight": (features,),
        "norm.bias": (features,),
        "tscam_conv.weight": (classes, features, freq, 3),
        "tscam_conv.bias": (classes,),
        "head.weight": (classes, classes),
        "head.bias": (classes,),
    }


def _fill(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    if key.endswith("relative_position_index"):
        return _relative_position_index(round(shape[0] ** 0.5))
    if key.endswith("num_batches_tracked"):
        return torch.tensor(1000)
    if key.endswith("melW"):  # librosa's filters, as torchlibrosa's LogmelFilterBank builds them
        mel = librosa.filters.mel(sr=48_000, n_fft=N_FFT, n_mels=MELS, fmin=50, fmax=14_000)
        return torch.from_numpy(mel.T.astype(np.float32))
    if key.endswith("running_var"):
        return torch.rand(shape, generator=gen) + 0.5
    if "norm" in key.lower() and key.endswith("weight"):
        return 1 + 0.1 * torch.randn(shape, generator=gen)
    return 0.05 * torch.randn(shape, generator=gen)


def laion_state_dict(
    vocab_size: int, seed: int = 0
) -> tuple[dict[str, torch.Tensor], RobertaModel]:
    """A LAION CLAP state dict (HTS-AT + RoBERTa, unfused) and its text tower as a module."""
    gen = torch.Generator().manual_seed(seed)
    roberta = RobertaModel(
        RobertaConfig(
            vocab_size=vocab_size,
            hidden_size=TEXT_WIDTH,
            num_hidden_layers=TEXT_LAYERS,
            num_attention_heads=TEXT_WIDTH // 64,
            intermediate_size=2 * TEXT_WIDTH,
            max_position_embeddings=514,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        )
    ).eval()
    with torch.no_grad():
        for name, param in roberta.named_parameters():
            param.copy_(_fill(name, tuple(param.shape), gen))
    features = EMBED * 2 ** (len(DEPTHS) - 1)
    heads = {
        "text_projection.0.weight": (JOINT, TEXT_WIDTH),
        "text_projection.0.bias": (JOINT,),
        "text_projection.2.weight": (JOINT, JOINT),
        "text_projection.2.bias": (JOINT,),
        "audio_projection.0.weight": (JOINT, features),
        "audio_projection.0.bias": (JOINT,),
        "audio_projection.2.weight": (JOINT, JOINT),
        "audio_projection.2.bias": (JOINT,),
        **{
            f"{side}_transform.sequential.{n}.{p}": (JOINT, JOINT) if p == "weight" else (JOINT,)
            for side in ("text", "audio")
            for n in (0, 3)
            for p in ("weight", "bias")
        },
        "logit_scale_a": (),
        "logit_scale_t": (),
    }
    audio = htsat_shapes(EMBED, DEPTHS, HEADS, WINDOW, CLASSES)
    state = {f"audio_branch.{k}": _fill(k, s, gen) for k, s in audio.items()}
    state |= {f"text_branch.{k}": v.clone() for k, v in roberta.state_dict().items()}
    # transformers < 4.31 saved RoBERTa's position ids with the weights; LAION's files have them.
    state["text_branch.embeddings.position_ids"] = torch.arange(514)[None]
    state |= {k: _fill(k, s, gen) for k, s in heads.items()}
    return state, roberta


def save_laion(state: dict[str, torch.Tensor], path: Path) -> Path:
    """As LAION's training saved it: DDP's ``module.`` on every key, inside a checkpoint dict."""
    torch.save({"epoch": 15, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("roberta-bpe")
    train_byte_level_tokenizer(
        ["punchy house drum loop with crisp hats", "dark minor bass line", "warm pad chords"],
        folder,
        vocab_size=300,
    )
    return folder


@pytest.fixture(scope="module")
def laion(tmp_path_factory, tokenizer_dir):
    from transformers import RobertaTokenizer

    vocab = len(RobertaTokenizer.from_pretrained(tokenizer_dir))
    state, roberta = laion_state_dict(vocab)
    path = save_laion(state, tmp_path_factory.mktemp("laion") / "music_audioset_tiny.pt")
    return state, roberta, path


@pytest.fixture(scope="module")
def converted(laion, tokenizer_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "laion-clap"
    convert_laion_clap(laion[2], out, base="custom", text="custom", tokenizer=tokenizer_dir)
    return out


def _convert_fails(state, tmp_path, tokenizer_dir, **kwargs) -> str:
    path = save_laion(state, tmp_path / "bad.pt")
    kwargs = {"base": "custom", "text": "custom", "tokenizer": tokenizer_dir} | kwargs
    with pytest.raises(ConversionError) as err:
        convert_laion_clap(path, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
    return str(err.value)


# --- the mapping ---------------------------------------------------------------------------------


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()


def test_every_model_weight_comes_from_exactly_one_checkpoint_tensor(laion, converted):
    state = laion[0]
    sources: dict[str, list[str]] = {}
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            continue
        parts = tensor.chunk(3) if key.endswith(("qkv.weight", "qkv.bias")) else (tensor,)
        for n, part in enumerate(parts):
            sources.setdefault(_digest(part), []).append(f"{key}[{n}]")
    written = load_file(converted / "model.safetensors")
    used = []
    for key, tensor in written.items():
        if not tensor.is_floating_point():
            continue  # position ids, relative position indices, the batch count: not weights
        found = sources.get(_digest(tensor), [])
        assert len(found) == 1, f"{key}: from {found or 'nothing in the checkpoint'}"
        used.append(found[0])
    assert len(used) == len(set(used))
    # The right tensor, not just a tensor: names line up, and q, k, v are qkv's thirds in order.
    q = "audio_model.audio_encoder.layers.1.blocks.1.attention.self.{}.weight"
    assert [sources[_digest(written[q.format(n)])][0] for n in ("query", "key", "value")] == [
        f"audio_branch.layers.1.blocks.1.attn.qkv.weight[{n}]" for n in range(3)
    ]
    # Everything the checkpoint has is used, but what ClapModel has no place for.
    dropped = ("_transform.", "tscam_conv.", "head.", "attn_mask", "stft.", "melW")
    unused = {
        key
        for key, tensor in state.items()
        if tensor.is_floating_point() and not any(d in key for d in dropped)
    } - {u.rsplit("[", 1)[0] for u in used}
    assert not unused


def test_window_attention_computes_what_laions_does(laion, converted):
    """One shifted block's attention, as LAION's WindowAttention.forward computes it from the
    checkpoint's qkv/proj/bias table, against the converted ClapModel's module."""
    state, block = laion[0], "audio_branch.layers.1.blocks.1.attn."
    dim, heads, w = EMBED * 2, HEADS[1], WINDOW
    x = torch.randn(3, w * w, dim, generator=torch.Generator().manual_seed(1))
    qkv = x @ state[block + "qkv.weight"].T + state[block + "qkv.bias"]
    q, k, v = qkv.reshape(3, w * w, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    bias = state[block + "relative_position_bias_table"]
    bias = bias[state[block + "relative_position_index"].view(-1)].view(w * w, w * w, -1)
    attn = (q * (dim // heads) ** -0.5) @ k.transpose(-2, -1) + bias.permute(2, 0, 1)[None]
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(3, w * w, dim)
    expected = out @ state[block + "proj.weight"].T + state[block + "proj.bias"]

    model = ClapModel.from_pretrained(converted).eval()
    module = model.audio_model.audio_encoder.layers[1].blocks[1].attention
    with torch.no_grad():
        torch.testing.assert_close(module(x)[0], expected, rtol=1e-5, atol=1e-5)


# --- the converted folder, through ClapEmbedder --------------------------------------------------


def test_text_embeds_like_laions_text_branch(laion, converted, tokenizer_dir):
    """LAION's encode_text: RoBERTa on 77-token, max-length-padded captions, pooler output,
    text_projection (Linear, ReLU, Linear); then L2-normalised."""
    from transformers import RobertaTokenizer

    state, roberta = laion[0], laion[1]
    tokens = RobertaTokenizer.from_pretrained(tokenizer_dir)(
        CAPTIONS, padding="max_length", truncation=True, max_length=77, return_tensors="pt"
    )
    projection = torch.nn.Sequential(
        torch.nn.Linear(TEXT_WIDTH, JOINT), torch.nn.ReLU(), torch.nn.Linear(JOINT, JOINT)
    )
    projection.load_state_dict(
        {k.removeprefix("text_projection."): v for k, v in state.items() if "text_proj" in k}
    )
    with torch.no_grad():
        pooled = roberta(**tokens).pooler_output
        expected = torch.nn.functional.normalize(projection(pooled), dim=-1).numpy()

    embedder = ClapEmbedder.from_pretrained(converted)
    assert embedder.max_text_tokens == 77
    np.testing.assert_allclose(embedder.embed_text(CAPTIONS), expected, atol=2e-5)


def test_audio_embeds_like_the_weights_loaded_strictly(laion, converted):
    """The folder as ClapEmbedder loads it (config, feature extractor) against a ClapModel built
    from the config with the converted weights loaded strictly, fed log-mels made with the
    checkpoint's own STFT size, hop and mel filter bank (LAION's front end)."""
    state = laion[0]
    clip = np.random.default_rng(3).standard_normal(48_000 * 10).astype(np.float32) * 0.1
    model = ClapModel(ClapConfig.from_pretrained(converted)).eval()
    model.load_state_dict(load_file(converted / "model.safetensors"), strict=True)
    spectrum = torch.stft(
        torch.from_numpy(clip)[None],
        n_fft=N_FFT,
        hop_length=HOP,
        window=torch.hann_window(N_FFT),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    mel = (spectrum.abs() ** 2).transpose(1, 2) @ state["audio_branch.logmel_extractor.melW"]
    features = (10 * torch.log10(mel.clamp_min(1e-10)))[:, None]
    with torch.no_grad():
        pooled = model.audio_model(input_features=features).pooler_output
        expected = torch.nn.functional.normalize(model.audio_projection(pooled), dim=-1).numpy()

    embedder = ClapEmbedder.from_pretrained(converted)
    np.testing.assert_allclose(embedder.embed_audio([clip]), expected, atol=1e-4)


def test_folder_records_laion_origin_and_front_end(converted, laion):
    meta = json.loads((converted / "audiorag.json").read_text())
    assert meta["text_max_length"] == 77 and meta["fusion"] is False
    assert meta["checkpoint"] == laion[2].name and len(meta["checkpoint_sha256"]) == 64
    assert json.loads((converted / "tokenizer_config.json").read_text())["model_max_length"] == 77
    extractor = json.loads((converted / "processor_config.json").read_text())["feature_extractor"]
    assert (extractor["truncation"], extractor["frequency_min"], extractor["frequency_max"]) == (
        "rand_trunc",
        50,
        14_000,
    )
    assert (extractor["hop_length"], extractor["fft_window_size"]) == (HOP, N_FFT)


# --- refusals ------------------------------------------------------------------------------------


def test_truncated_checkpoint_names_every_missing_key(laion, tmp_path, tokenizer_dir):
    gone = [
        "audio_branch.layers.1.blocks.0.attn.qkv.weight",
        "audio_branch.layers.2.downsample.norm.bias",
        "text_branch.pooler.dense.bias",
        "audio_projection.2.weight",
    ]
    state = {k: v for k, v in laion[0].items() if k not in gone}
    message = _convert_fails(state, tmp_path, tokenizer_dir)
    assert "missing (4)" in message and "unexpected" not in message
    assert all(key in message for key in gone)


def test_foreign_checkpoints_are_refused_with_their_keys(laion, tmp_path, tokenizer_dir):
    resnet = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "bn1.weight": torch.ones(64),
        "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
        "fc.weight": torch.zeros(1000, 2048),
    }
    message = _convert_fails(resnet, tmp_path, tokenizer_dir)
    assert "not a LAION CLAP" in message and "missing" in message
    assert all(key in message for key in resnet)

    extra = {
        "audio_branch.layers.0.blocks.0.attn.rotary.weight": torch.zeros(4),
        "text_branch.encoder.layer.0.attention.self.rotary.weight": torch.zeros(4),
        "audio_transform.sequential.6.weight": torch.zeros(4),
        "decoder.weight": torch.zeros(4),
    }
    message = _convert_fails(laion[0] | extra, tmp_path, tokenizer_dir)
    assert "unexpected (4)" in message and "missing" not in message
    assert all(key in message for key in extra)


def test_tower_choices_are_checks_on_the_weights(laion, tmp_path, tokenizer_dir):
    message = _convert_fails(laion[0], tmp_path, tokenizer_dir, base="htsat-base")
    assert "--base htsat-base expects patch width 128" in message
    assert "patch width 16, blocks [2, 2, 1, 1]" in message
    message = _convert_fails(laion[0], tmp_path, tokenizer_dir, base=None)
    assert "none of LAION's releases" in message and "--base custom" in message
    message = _convert_fails(laion[0], tmp_path, tokenizer_dir, text="roberta")
    assert "expects roberta-base" in message and f"{TEXT_LAYERS} layers × {TEXT_WIDTH}" in message


def test_fusion_and_foreign_front_ends_are_refused(laion, tmp_path, tokenizer_dir):
    fused = laion[0] | {"audio_branch.patch_embed.mel_conv2d.weight": torch.zeros(16, 1, 4, 12)}
    assert "fusion CLAP" in _convert_fails(fused, tmp_path, tokenizer_dir)
    htk = librosa.filters.mel(sr=48_000, n_fft=N_FFT, n_mels=MELS, fmin=0, fmax=14_000, htk=True)
    other = laion[0] | {"audio_branch.logmel_extractor.melW": torch.from_numpy(htk.T.copy())}
    assert "mel filter bank" in _convert_fails(other, tmp_path, tokenizer_dir)


def test_tokenizer_from_the_offline_cache_or_a_clear_refusal(
    laion, tmp_path, tokenizer_dir, monkeypatch
):
    import huggingface_hub.constants
    from transformers import RobertaTokenizer

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    with pytest.raises(ConversionError, match=r"pass --tokenizer DIR, a folder with vocab\.json"):
        convert_laion_clap(laion[2], tmp_path / "a", base="custom", text="custom")
    assert not (tmp_path / "a").exists()

    repo = cache / "models--FacebookAI--roberta-base"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for name in ("vocab.json", "merges.txt"):
        (snapshot / name).write_bytes((tokenizer_dir / name).read_bytes())
    convert_laion_clap(laion[2], tmp_path / "b", base="custom", text="custom")
    written, given = (RobertaTokenizer.from_pretrained(p) for p in (tmp_path / "b", tokenizer_dir))
    assert written.get_vocab() == given.get_vocab() and written.model_max_length == 77


def test_cli(laion, tmp_path, tokenizer_dir):
    from audiorag.cli.app import app

    runner = CliRunner()
    args = ["convert", "clap", str(laion[2]), "--out", str(tmp_path / "m")]
    args += ["--base", "custom", "--text", "custom", "--tokenizer", str(tokenizer_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"AUDIORAG_CLAP_MODEL={(tmp_path / 'm').resolve()}" in result.output
    args = [*args[:3], "--out", str(tmp_path / "n"), "--base", "htsat-tiny"]
    result = runner.invoke(app, [*args, "--tokenizer", str(tokenizer_dir)])
    assert result.exit_code == 2 and "--base htsat-tiny expects" in result.output


def test_folders_not_from_laion_keep_their_text_limit():
    """The 77-token limit comes from the folder's tokenizer: the bundled demo CLAP (80 positions,
    model_max_length 78) still reads 78 tokens."""
    from audiorag.components import BUNDLED_CLAP

    if not (BUNDLED_CLAP / "model.safetensors").is_file():
        pytest.skip("bundled CLAP not in this checkout")
    assert ClapEmbedder.from_pretrained(BUNDLED_CLAP).max_text_tokens == 78
