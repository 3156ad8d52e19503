"""Tiny models built in memory from a config, for tests and benches (never for production).

Each saves a folder with a real model's layout, so it loads through the same code as a trained
one (``ClapEmbedder.from_pretrained``, :func:`generation.loading.load_generator`). The weights are
random: outputs are deterministic but musically meaningless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import (
    AutoencoderOobleck,
    AutoencoderSAME,
    FlowMatchEulerDiscreteScheduler,
    StableAudio3DiTModel,
    StableAudio3DurationEmbedder,
    StableAudio3Pipeline,
    StableAudioDiTModel,
    StableAudioPipeline,
)
from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
    ClapTextConfig,
    PreTrainedTokenizerFast,
    RobertaTokenizer,
    T5Config,
    T5EncoderModel,
    T5GemmaConfig,
    T5GemmaEncoderModel,
)
from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

from generation.interface import DEFAULTS_FILE
from generation.stable_audio_open import stable_audio_open_scheduler
from index.clap import train_byte_level_tokenizer

# -- CLAP -----------------------------------------------------------------------------------------

TOKENIZER_CORPUS = (
    "drums bass keys pad lead arp pluck strings guitar vocals fx loop groove beat pattern",
    "house techno hip-hop trap drum and bass funk rock reggaeton lo-fi trance ambient cinematic",
    "dark bright uplifting melancholic aggressive chill dreamy energetic groovy tense warm gritty",
    "a punchy kick and crisp hats at 124 BPM in A minor, major, minor, sharp, flat, bpm, tempo",
)


def tiny_clap_config(vocab_size: int, projection_dim: int = 64) -> ClapConfig:
    """A CLAP small enough for CPU tests, with the 64-mel / spec_size 256 geometry of real ones."""
    audio = ClapAudioConfig(
        spec_size=256,
        num_mel_bins=64,
        patch_embeds_hidden_size=16,
        hidden_size=16 * 2**3,  # HTSAT doubles the width at each of the 4 stages
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 2, 4, 8],
        window_size=8,
        projection_dim=projection_dim,
        enable_fusion=False,
    )
    text = ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=80,
        projection_dim=projection_dim,
    )
    return ClapConfig(
        text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=projection_dim
    )


def build_tiny_clap(
    folder: Path, *, seed: int = 0, texts: Sequence[str] = TOKENIZER_CORPUS
) -> Path:
    """Write a randomly initialised tiny CLAP model folder that ``from_pretrained`` loads offline.

    Random weights give deterministic but musically meaningless vectors.
    """
    folder = Path(folder)
    train_byte_level_tokenizer(texts, folder)
    tokenizer = RobertaTokenizer.from_pretrained(folder, model_max_length=78)
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    torch.manual_seed(seed)
    model = ClapModel(tiny_clap_config(vocab_size=len(tokenizer)))
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


# -- Stable Audio Open and Stable Audio 3 ------------------------------------------------------

TOKENIZER_TEXTS = (
    "punchy drums kick snare hats bass keys piano pad lead synth arp pluck strings guitar",
    "house techno hip hop trap dnb lofi ambient funk rock jazz cinematic warm bright dark",
    "at 120 BPM in A minor C major F sharp minor flat groove loop stem midi pattern",
)


def build_tiny_tokenizer(max_length: int = 64) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained offline on a few music words (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(TOKENIZER_TEXTS), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def build_tiny_stable_audio_open(
    folder: Path, *, seed: int = 0, sample_rate: int = 16000, channels: int = 2
) -> Path:
    """Save a randomly initialised, tiny Stable Audio Open–architecture model to ``folder``.

    Same layout as a real checkpoint (``StableAudioPipeline.save_pretrained``), so it loads
    through :func:`generation.loading.load_generator` like one. Renders noise-like audio.
    """
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    latent_channels, text_dim, cond_dim = 4, 16, 8
    vae = AutoencoderOobleck(
        encoder_hidden_size=2 * latent_channels,
        downsampling_ratios=[4, 4, 4],
        channel_multiples=[1, 2, 2],
        decoder_channels=8,
        decoder_input_channels=latent_channels,
        audio_channels=channels,
        sampling_rate=sample_rate,
    )
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=text_dim,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    pipe = StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=StableAudioProjectionModel(
            text_encoder_dim=text_dim, conditioning_dim=cond_dim, min_value=0, max_value=16
        ),
        tokenizer=tokenizer,
        transformer=StableAudioDiTModel(
            sample_size=1024,  # 1024 frames × 64 hop / 16 kHz ≈ 4.1 s
            in_channels=latent_channels,
            num_layers=2,
            attention_head_dim=8,
            num_attention_heads=2,
            num_key_value_attention_heads=1,
            out_channels=latent_channels,
            cross_attention_dim=cond_dim,
            time_proj_dim=8,
            global_states_input_dim=2 * cond_dim,
            cross_attention_input_dim=cond_dim,
        ),
        scheduler=stable_audio_open_scheduler(),
    )
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder)
    (folder / DEFAULTS_FILE).write_text(json.dumps({"default_steps": 8, "default_cfg": 3.0}))
    return folder


def build_tiny_stable_audio_3(
    folder: Path, *, seed: int = 0, sample_rate: int = 16000, channels: int = 2
) -> Path:
    """Save a randomly initialised, tiny Stable Audio 3–architecture model to ``folder``.

    Same layout as a real checkpoint (``StableAudio3Pipeline.save_pretrained``), so it loads
    through :func:`generation.loading.load_generator` like one. The tokenizer is a byte-level BPE
    trained offline (the real one is Gemma's; the pipelines only need ``__call__`` and padding).
    Renders noise-like audio.
    """
    torch.manual_seed(seed)
    tokenizer = build_tiny_tokenizer()
    # The text width, the DiT's cross/global conditioning width and the duration embedding
    # must agree: the duration embedding is appended to the text as one more context token.
    cond_dim, latent_dim = 16, 8
    module = T5GemmaModuleConfig(
        vocab_size=len(tokenizer),
        hidden_size=cond_dim,
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
    text_encoder = T5GemmaEncoderModel(
        T5GemmaConfig(encoder=module, decoder=module, is_encoder_decoder=False)
    )
    pipe = StableAudio3Pipeline(
        vae=AutoencoderSAME(
            audio_channels=channels,
            patch_size=64,  # × stride 4 = 256 samples a latent frame, 62.5 frames a second
            encoder_channels=8,
            encoder_c_mults=(2,),
            encoder_strides=(4,),
            encoder_transformer_depths=(1,),
            latent_dim=latent_dim,
            use_differential_attention=False,
            dim_heads=4,
            ff_mult=2,
            sampling_rate=sample_rate,
        ),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        duration_embedder=StableAudio3DurationEmbedder(
            output_dim=cond_dim,
            fourier_dim=16,
            max_val=8.0,  # the tiny model's maximum
        ),
        transformer=StableAudio3DiTModel(
            io_channels=latent_dim,
            embed_dim=32,
            depth=2,
            num_heads=4,
            cond_token_dim=cond_dim,
            global_cond_dim=cond_dim,
            local_add_cond_dim=latent_dim + 1,  # the in-paint mask and the masked latents
            timestep_features_dim=16,
            ff_mult=2,
            num_memory_tokens=2,
            use_differential_attention=False,
        ),
        # SA3 Medium's sampler: the distilled checkpoint's ping-pong (re-noise every step).
        scheduler=FlowMatchEulerDiscreteScheduler(stochastic_sampling=True),
    )
    for model in (pipe.vae, pipe.transformer):
        _randomise_zero_init(model)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder)
    # A random model gains nothing from more steps; keeps runs on it fast.
    (folder / DEFAULTS_FILE).write_text(json.dumps({"default_steps": 4, "default_cfg": 1.0}))
    return folder


def _randomise_zero_init(model: torch.nn.Module) -> None:
    """Give the zero-initialised linear layers of ``model`` their default random init.

    SAME and the SA3 DiT zero-initialise their residual branches (attention and feed-forward
    outputs, the in-paint projection) so training starts from identity. Left that way a random
    model ignores its input: the VAE decodes every latent to the same audio and in-painting
    conditioning is dropped, so no test could tell seeds, strengths or modes apart.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not module.weight.any():
            module.reset_parameters()
