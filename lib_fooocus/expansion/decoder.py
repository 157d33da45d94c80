"""A lean GPT-2 decoder for the expansion's float32 path, over a loaded `GPT2LMHeadModel`'s own weights.

Why not the model's `forward`: at one token per step the transformers module stack spends a good part
of each step outside the matrix products (module calls, mask preparation, a key/value cache that is
grown by concatenation, i.e. copied whole every step), and a batch of N seeds would run the shared
prompt N times. Here:
- the prompt runs once, for one row, and its keys/values are copied into every row of a cache that
  is allocated once for the whole expansion (no per-step concatenation);
- a step is the same arithmetic on the same weights: `addmm` with the model's Conv1D layout, layer
  norm, scaled-dot-product attention over the cache, tanh-GELU, residual sums done in place.

Results equal the model's forward up to float32 rounding (the fused tanh-GELU and the in-place sums
round differently in the last bit; see `engine` for why that cannot change a sampled token in
practice). Only the standard GPT-2 block is supported (`supports()`): other configurations fall back
to the model's own forward.

Heavy imports (torch) happen inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Config values this decoder implements; any other value -> the model's own forward.
_SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")


def supports(model: Any) -> bool:
    """Whether `model` (a GPT2LMHeadModel) is the plain GPT-2 block this decoder computes."""
    config = model.config
    return (
        getattr(config, "model_type", "") == "gpt2"
        and getattr(config, "activation_function", "") in _SUPPORTED_ACTIVATIONS
        and getattr(config, "scale_attn_weights", True)
        and not getattr(config, "scale_attn_by_inverse_layer_idx", False)
        and not getattr(config, "reorder_and_upcast_attn", False)
        and not getattr(config, "add_cross_attention", False)
        and config.n_embd % config.n_head == 0
    )


@dataclass(frozen=True)
class _Layer:
    ln_1: tuple[Any, Any]
    attn_weight: Any  # (E, 3E), Conv1D layout: out = bias + x @ weight
    attn_bias: Any
    proj_weight: Any
    proj_bias: Any
    ln_2: tuple[Any, Any]
    fc_weight: Any
    fc_bias: Any
    out_weight: Any
    out_bias: Any


class Gpt2Decoder:
    """Runs one expansion: `prefill(prompt_ids, rows)` then `step(tokens)` once per new token."""

    def __init__(self, model: Any):
        transformer = model.transformer
        config = model.config
        self.heads = int(config.n_head)
        self.width = int(config.n_embd)
        self.head_dim = self.width // self.heads
        self.eps = float(config.layer_norm_epsilon)
        self.token_embedding = transformer.wte.weight.detach()
        self.position_embedding = transformer.wpe.weight.detach()
        self.final_norm = (transformer.ln_f.weight.detach(), transformer.ln_f.bias.detach())
        self.layers = [
            _Layer(
                ln_1=(block.ln_1.weight.detach(), block.ln_1.bias.detach()),
                attn_weight=block.attn.c_attn.weight.detach(),
                attn_bias=block.attn.c_attn.bias.detach(),
                proj_weight=block.attn.c_proj.weight.detach(),
                proj_bias=block.attn.c_proj.bias.detach(),
                ln_2=(block.ln_2.weight.detach(), block.ln_2.bias.detach()),
                fc_weight=block.mlp.c_fc.weight.detach(),
                fc_bias=block.mlp.c_fc.bias.detach(),
                out_weight=block.mlp.c_proj.weight.detach(),
                out_bias=block.mlp.c_proj.bias.detach(),
            )
            for block in transformer.h
        ]
        self._caches: list[Any] = []  # per layer (2, rows, heads, positions, d): keys, then values
        self._length = 0

    def prefill(self, prompt_ids: list[int], rows: int, total: int) -> Any:
        """Runs the prompt once and gives every row its keys/values; returns the prompt's last hidden
        state, (1, E), the same for every row. `total`: positions the cache must hold."""
        import torch

        ids = torch.tensor(prompt_ids, dtype=torch.long, device=self.token_embedding.device)
        count = len(prompt_ids)
        hidden = self.token_embedding[ids] + self.position_embedding[:count]  # (T, E)
        self._caches = [hidden.new_empty((2, rows, self.heads, total, self.head_dim)) for _ in self.layers]
        for layer, cache in zip(self.layers, self._caches):
            query, key_value = self._project_qkv(layer, hidden, 1, count)
            cache[:, :, :, :count] = key_value
            attended = torch.nn.functional.scaled_dot_product_attention(
                query, key_value[0], key_value[1], is_causal=True
            )
            hidden = self._finish_block(layer, hidden, attended.transpose(1, 2).reshape(count, self.width))
        self._length = count
        return self._final_norm(hidden[-1:])

    def step(self, tokens: Any) -> Any:
        """Feeds one token per row (a (rows,) long tensor) at the next position; returns (rows, E)."""
        import torch

        attention = torch.nn.functional.scaled_dot_product_attention
        position = self._length
        rows = tokens.shape[0]
        hidden = self.token_embedding[tokens] + self.position_embedding[position]  # (rows, E)
        end = position + 1
        for layer, cache in zip(self.layers, self._caches):
            query, key_value = self._project_qkv(layer, hidden, rows, 1)
            cache[:, :, :, position:end] = key_value  # one copy for the new key and value
            attended = attention(query, cache[0, :, :, :end], cache[1, :, :, :end])
            hidden = self._finish_block(layer, hidden, attended.view(rows, self.width))
        self._length = end
        return self._final_norm(hidden)

    def release(self) -> None:
        """Drops the cache (it can be tens of MB for a long prompt and a big batch)."""
        self._caches, self._length = [], 0

    # ---- one block ------------------------------------------------------------------------------

    def _project_qkv(self, layer: _Layer, hidden: Any, rows: int, count: int) -> tuple[Any, Any]:
        """(rows·count, E) -> query (rows, heads, count, d) and key/value (2, rows, heads, count, d),
        both views of one product."""
        import torch

        normed = torch.nn.functional.layer_norm(hidden, (self.width,), *layer.ln_1, self.eps)
        qkv = torch.addmm(layer.attn_bias, normed, layer.attn_weight)
        split = qkv.view(rows, count, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, rows, heads, count, d)
        return split[0], split[1:]

    def _finish_block(self, layer: _Layer, hidden: Any, attended: Any) -> Any:
        """Attention output projection, residual, MLP, residual; `hidden` is (n, E), updated in place."""
        import torch

        hidden = hidden.add_(torch.addmm(layer.proj_bias, attended, layer.proj_weight))
        normed = torch.nn.functional.layer_norm(hidden, (self.width,), *layer.ln_2, self.eps)
        inner = torch.nn.functional.gelu(torch.addmm(layer.fc_bias, normed, layer.fc_weight), approximate="tanh")
        return hidden.add_(torch.addmm(layer.out_bias, inner, layer.out_weight))

    def _final_norm(self, hidden: Any) -> Any:
        import torch

        return torch.nn.functional.layer_norm(hidden, (self.width,), *self.final_norm, self.eps)
