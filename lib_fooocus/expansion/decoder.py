"""A lean GPT-2 decoder for the expansion's float32 path, over a loaded `GPT2LMHeadModel`'s own weights.

Why not the model's `forward`: at one token per step the transformers module stack spends a good part
of each step outside the matrix products (module calls, mask preparation, a key/value cache that is
grown by concatenation, i.e. copied whole every step), and a batch of N seeds would run the shared
prompt N times. Here:
- the prompt runs once, for one row, and its keys/values are copied into every row of a cache that
  is allocated once for the whole expansion (no per-step concatenation);
- a step is the same arithmetic on the same weights: `addmm` with the model's Conv1D layout, layer
  norm, scaled-dot-product attention over the cache, tanh-GELU, residual sums done in place.

Several rows (a batch of seeds) on the CPU: MKL's `addmm` for 2-16 rows takes about twice the time of
its one-row product (it stops streaming the weights once), and falls apart when another process holds
a core. oneDNN with the weights packed for a batch does the 8-row products in ~0.85 of that time and
degrades gracefully beside a busy core; so the first batch packs the four weights of every block once
(`PackedWeights`: a second copy of the blocks, ~326 MiB for Fooocus's model, kept with the decoder) and
later batches reuse it. One row keeps `addmm` (the fastest there). Where oneDNN or its packing ops are
missing, or a packed product disagrees with `addmm` on a check, batches keep `addmm`.

Results equal the model's forward up to float32 rounding (the fused tanh-GELU and the in-place sums
round differently in the last bit; see `engine` for why that cannot change a sampled token in
practice). Only the standard GPT-2 block is supported (`supports()`): other configurations fall back
to the model's own forward.

Heavy imports (torch) happen inside functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

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

    def weights(self) -> tuple[Any, Any, Any, Any]:
        """The four products' weights, in `PackedWeights.packed` order."""
        return self.attn_weight, self.proj_weight, self.fc_weight, self.out_weight

    def biases(self) -> tuple[Any, Any, Any, Any]:
        return self.attn_bias, self.proj_bias, self.fc_bias, self.out_bias


# A packed product must agree with addmm to this fraction of the result's largest magnitude (float32
# reassociation over 3072 terms stays near 1e-6; a wrong weight or layout is off by order 1).
_PACKED_CHECK_TOLERANCE = 1e-4


class PackedWeights:
    """oneDNN-packed copies of every block's four weights, for products of several rows on the CPU.

    `build(layers, rows)` returns None where packing is unavailable or fails its check. `packed[i]`:
    layer i's (attention in-projection, attention out-projection, MLP in, MLP out), each for
    `product(bias, x, packed_weight)` = bias + x @ weight.
    """

    def __init__(self, packed: list[tuple[Any, Any, Any, Any]]):
        self.packed = packed

    @classmethod
    def build(cls, layers: list[_Layer], rows: int) -> PackedWeights | None:
        import torch

        first = layers[0].fc_weight
        if first.device.type != "cpu" or first.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
            return None
        try:
            reorder = torch.ops.mkldnn._reorder_linear_weight
            packed = [
                tuple(reorder(weight.t().contiguous(), rows) for weight in layer.weights())
                for layer in layers
            ]
            instance = cls(packed)  # type: ignore[arg-type]
            agrees = instance._agrees_with_addmm(layers[0], rows)
        except (AttributeError, RuntimeError, TypeError) as error:  # op missing, signature changed
            log.debug("Fooocus expansion: oneDNN packing unavailable (%s); batches use addmm", error)
            return None
        if not agrees:
            log.debug("Fooocus expansion: oneDNN packed products disagree with addmm; batches use addmm")
            return None
        return instance

    def product(self, bias: Any, x: Any, packed_weight: Any) -> Any:
        import torch

        return torch.ops.mkldnn._linear_pointwise(x, packed_weight, bias, "none", [], "")

    def _agrees_with_addmm(self, layer: _Layer, rows: int) -> bool:
        import torch

        generator = torch.Generator().manual_seed(0)
        for weight, bias, packed_weight in zip(layer.weights(), layer.biases(), self.packed[0]):
            x = torch.randn((rows, weight.shape[0]), generator=generator)
            expected = torch.addmm(bias, x, weight)
            got = self.product(bias, x, packed_weight)
            scale = float(expected.abs().max())
            if got.shape != expected.shape or float((got - expected).abs().max()) > _PACKED_CHECK_TOLERANCE * scale:
                return False
        return True


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
        self._packed: PackedWeights | None = None
        self._packing_tried = False
        self._step_packed: list[Any] = []  # per layer: the packed weights for this expansion's steps, or None

    def prefill(self, prompt_ids: list[int], rows: int, total: int) -> Any:
        """Runs the prompt once and gives every row its keys/values; returns the prompt's last hidden
        state, (1, E), the same for every row. `total`: positions the cache must hold."""
        import torch

        ids = torch.tensor(prompt_ids, dtype=torch.long, device=self.token_embedding.device)
        count = len(prompt_ids)
        hidden = self.token_embedding[ids] + self.position_embedding[:count]  # (T, E)
        self._caches = [hidden.new_empty((2, rows, self.heads, total, self.head_dim)) for _ in self.layers]
        self._step_packed = self.packs_for(rows)
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
        for layer, cache, packed in zip(self.layers, self._caches, self._step_packed):
            query, key_value = self._project_qkv(layer, hidden, rows, 1, packed)
            cache[:, :, :, position:end] = key_value  # one copy for the new key and value
            attended = attention(query, cache[0, :, :, :end], cache[1, :, :, :end])
            hidden = self._finish_block(layer, hidden, attended.view(rows, self.width), packed)
        self._length = end
        return self._final_norm(hidden)

    def release(self) -> None:
        """Drops the cache (it can be tens of MB for a long prompt and a big batch); packed weights stay."""
        self._caches, self._length, self._step_packed = [], 0, []

    def packs_for(self, rows: int) -> list[Any]:
        """Per layer, the packed weights that products of `rows` rows use, or None (`addmm`): one row,
        or no packing here."""
        packed = self.packed_weights(rows) if rows > 1 else None
        return list(packed.packed) if packed is not None else [None] * len(self.layers)

    def packed_weights(self, rows: int) -> PackedWeights | None:
        """The packed copy for batches: built by the first batch (once, whatever its outcome)."""
        if not self._packing_tried:
            self._packing_tried = True
            self._packed = PackedWeights.build(self.layers, rows)
        return self._packed

    # ---- one block ------------------------------------------------------------------------------

    def _project_qkv(self, layer: _Layer, hidden: Any, rows: int, count: int, packed: Any = None) -> tuple[Any, Any]:
        """(rows·count, E) -> query (rows, heads, count, d) and key/value (2, rows, heads, count, d),
        both views of one product. `packed`: the layer's packed weights (several rows) or None."""
        import torch

        normed = torch.nn.functional.layer_norm(hidden, (self.width,), *layer.ln_1, self.eps)
        qkv = self._product(layer.attn_bias, normed, layer.attn_weight, packed and packed[0])
        split = qkv.view(rows, count, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, rows, heads, count, d)
        return split[0], split[1:]

    def _finish_block(self, layer: _Layer, hidden: Any, attended: Any, packed: Any = None) -> Any:
        """Attention output projection, residual, MLP, residual; `hidden` is (n, E), updated in place."""
        import torch

        product = self._product
        hidden = hidden.add_(product(layer.proj_bias, attended, layer.proj_weight, packed and packed[1]))
        normed = torch.nn.functional.layer_norm(hidden, (self.width,), *layer.ln_2, self.eps)
        inner = product(layer.fc_bias, normed, layer.fc_weight, packed and packed[2])
        inner = torch.nn.functional.gelu(inner, approximate="tanh")
        return hidden.add_(product(layer.out_bias, inner, layer.out_weight, packed and packed[3]))

    def _product(self, bias: Any, x: Any, weight: Any, packed_weight: Any) -> Any:
        """bias + x @ weight: `addmm`, or the packed copy's product where the step has one."""
        import torch

        if packed_weight is None:
            return torch.addmm(bias, x, weight)
        return self._packed.product(bias, x, packed_weight)  # type: ignore[union-attr]

    def _final_norm(self, hidden: Any) -> Any:
        import torch

        return torch.nn.functional.layer_norm(hidden, (self.width,), *self.final_norm, self.eps)
