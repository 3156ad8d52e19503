"""Speed-ups for the Stable Audio Open render path on GPUs (see ``StableAudioOpen.optimize``),
and the named presets the service picks them by (``AUDIORAG_RENDER_SPEED``).

Kept apart from the sampler so the sampler reads top to bottom: fused-QKV attention running
grouped-query attention inside SDPA, a CUDA-graph wrapper for the denoiser call, and folding the
VAE's weight norm into plain weights. None of these change results in float32 (tested).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from diffusers import StableAudioDiTModel


def speed_options(
    preset: str, device: str | torch.device, *, bf16_decode: bool = False
) -> dict[str, Any] | None:
    """``StableAudioOpen.optimize`` arguments for a named preset on ``device`` (None: leave the
    stock numerics alone).

    - ``off``: none — the render equals diffusers' pipeline to float rounding (tested).
    - ``fast``: fused-QKV/GQA attention; on a GPU also bf16 compute for the DiT and the text
      encoder (fp32 sampler, fp32 VAE), the SDPA kernel order cuDNN → flash → efficient, and
      the denoiser call replayed from a CUDA graph (one per length, the last few kept). Close
      to ``off``, not bit-equal, on a GPU. ``bf16_decode`` also runs the VAE in bf16 (opt-in:
      the decode is one pass, and the last word on every sample).
    - ``compiled``: ``fast`` plus ``torch.compile`` of the DiT blocks and the VAE decoder:
      fastest once warm, but every new render length compiles first (seconds to minutes) —
      for sessions that render one length over and over.
    - ``auto``: ``fast`` on a GPU; ``off`` on a CPU, where bf16 is slow and the fused attention
      gains nothing measurable on the small models that run there.

    >>> speed_options("auto", "cpu") is None
    True
    >>> speed_options("fast", "cuda")["dtype"], speed_options("fast", "cuda").get("vae_dtype")
    (torch.bfloat16, None)
    """
    cuda = torch.device(device).type == "cuda"
    if preset == "auto":
        preset = "fast" if cuda else "off"
    if preset == "off":
        return None
    if preset not in ("fast", "compiled"):
        raise ValueError(f"render speed must be auto, off, fast or compiled, not {preset!r}")
    options: dict[str, Any] = {"fast_attention": True}
    if cuda:
        options.update(dtype=torch.bfloat16, cuda_graphs=True)
        if bf16_decode:
            options.update(vae_dtype=torch.bfloat16)
    if preset == "compiled":
        options.update(compile=True, compile_vae=True)
    return options


def call_transformer(
    transformer: StableAudioDiTModel,
    model_input: torch.Tensor,
    timestep: torch.Tensor,
    cross: torch.Tensor,
    global_states: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    backends: list | None = None,
) -> torch.Tensor:
    """One DiT call; ``backends``: SDPA kernels to use, in priority order (None: torch's)."""
    if backends is None:
        return transformer(
            model_input,
            timestep,
            encoder_hidden_states=cross,
            global_hidden_states=global_states,
            rotary_embedding=(cos, sin),
            return_dict=False,
        )[0]
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(backends, set_priority=True):
        return call_transformer(transformer, model_input, timestep, cross, global_states, cos, sin)


class GraphedDenoiser:
    """The transformer call captured in one CUDA graph per input shape, then replayed.

    Inputs are copied into the graph's static tensors; the output is cloned out, so the next
    replay cannot overwrite a prediction the sampler still holds.
    """

    def __init__(
        self, transformer: StableAudioDiTModel, backends: list | None, max_graphs: int = 4
    ) -> None:
        self.transformer = transformer
        self.backends = backends
        # One graph per render length, least recently used dropped first: each holds its own
        # static inputs and memory pool, and a service sees many lengths.
        self.max_graphs = max_graphs
        self.graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, tuple, torch.Tensor]] = (
            OrderedDict()
        )

    def _run(self, *args: torch.Tensor) -> torch.Tensor:
        return call_transformer(self.transformer, *args, backends=self.backends)

    def _capture(self, args: tuple[torch.Tensor, ...]) -> tuple:
        static = tuple(a.clone() for a in args)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: compilation, autotuning, cuBLAS/cuDNN workspaces
                self._run(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._run(*static)
        return graph, static, out

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(a.shape), a.dtype) for a in args)
        entry = self.graphs.get(key)
        if entry is None:
            while len(self.graphs) >= self.max_graphs:
                self.graphs.popitem(last=False)
            entry = self.graphs[key] = self._capture(args)
        self.graphs.move_to_end(key)
        graph, static, out = entry
        for dst, src in zip(static, args, strict=True):
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src, non_blocking=True)
        graph.replay()
        return out.clone()


class FastStableAudioAttnProcessor:
    """diffusers' ``StableAudioAttnProcessor2_0`` without its waste, same maths.

    One matmul for Q, K and V in self-attention (K and V in cross-attention) against a fused
    weight whose slices *are* the original ``to_q``/``to_k``/``to_v`` weights (no extra memory),
    grouped-query attention inside SDPA instead of materialising repeated key/value heads, and
    the rotary tables used where they already are (on the device). Rotary is applied in fp32 as
    in the stock processor. Only installed on attention layers it covers (no masks, no q/k
    norms, no residual inside attention); others keep the stock processor.
    """

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        import torch.nn.functional as F

        if attention_mask is not None:
            from diffusers.models.attention_processor import StableAudioAttnProcessor2_0

            return StableAudioAttnProcessor2_0()(
                attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb
            )
        batch, length, _ = hidden_states.shape
        heads = attn.heads
        head_dim = attn.inner_dim // heads
        if encoder_hidden_states is None:
            qkv = F.linear(hidden_states, attn.fused_qkv_weight)
            query, key, value = qkv.view(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            kv_heads = heads
        else:
            kv_heads = attn.fused_kv_weight.shape[0] // (2 * head_dim)
            query = attn.to_q(hidden_states).view(batch, length, heads, head_dim).transpose(1, 2)
            kv = F.linear(encoder_hidden_states, attn.fused_kv_weight)
            key, value = kv.view(batch, -1, 2, kv_heads, head_dim).permute(2, 0, 3, 1, 4)
        if rotary_emb is not None:
            query = _apply_rotary(query, rotary_emb)
            if encoder_hidden_states is None:
                key = _apply_rotary(key, rotary_emb)
        out = F.scaled_dot_product_attention(query, key, value, enable_gqa=kv_heads != heads)
        out = out.transpose(1, 2).reshape(batch, length, heads * head_dim)
        return attn.to_out[0](out)


def _apply_rotary(x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate the first ``rot`` channels of (batch, heads, seq, head_dim) in fp32 (stock maths)."""
    cos, sin = rotary
    rot = cos.shape[-1]
    part = x[..., :rot].float()
    real, imag = part.chunk(2, dim=-1)
    rotated = part * cos + torch.cat([-imag, real], dim=-1) * sin
    return torch.cat([rotated.to(x.dtype), x[..., rot:]], dim=-1)


def install_fast_attention(transformer: StableAudioDiTModel) -> int:
    """Put :class:`FastStableAudioAttnProcessor` on every DiT attention layer it covers.

    The fused weight is one tensor; the original projection weights become views into it, so
    the model's parameters (and memory) stay as they were. Returns the layers changed.
    """
    changed = 0
    for block in transformer.transformer_blocks:
        for attn in (block.attn1, block.attn2):
            if isinstance(attn.processor, FastStableAudioAttnProcessor):
                changed += 1
                continue
            plain = (
                attn.norm_q is None
                and attn.norm_k is None
                and attn.norm_cross is None
                and not attn.residual_connection
                and attn.rescale_output_factor == 1.0
                and attn.to_q.bias is None
                and attn.to_k.bias is None
                and attn.to_v.bias is None
                and (attn.is_cross_attention or attn.to_k.out_features == attn.to_q.out_features)
            )
            if not plain:
                continue
            with torch.no_grad():
                if attn.is_cross_attention:
                    parts, name = (attn.to_k, attn.to_v), "fused_kv_weight"
                else:
                    parts, name = (attn.to_q, attn.to_k, attn.to_v), "fused_qkv_weight"
                fused = torch.cat([p.weight.detach() for p in parts])
                offset = 0
                for p in parts:
                    rows = p.weight.shape[0]
                    p.weight.data = fused[offset : offset + rows]
                    offset += rows
            attn.register_buffer(name, fused, persistent=False)
            attn.set_processor(FastStableAudioAttnProcessor())
            changed += 1
    return changed


def fold_weight_norm(module: torch.nn.Module) -> int:
    """Fold old-style ``weight_norm`` hooks (the Oobleck VAE's) into plain weights."""
    from torch.nn.utils import remove_weight_norm
    from torch.nn.utils.weight_norm import WeightNorm

    stripped = 0
    for sub in module.modules():
        if any(isinstance(hook, WeightNorm) for hook in sub._forward_pre_hooks.values()):
            remove_weight_norm(sub)
            stripped += 1
    return stripped
