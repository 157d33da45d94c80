"""The Exp(1) numbers `torch.multinomial` draws for one sample, kept only where a token can win.

`torch.multinomial(probs, 1, generator=g)` on a (1, vocab) row draws one Exp(1) number e per vocabulary
entry from `g` and returns argmax(p / e). The expansion can only ever pick an allowed token (every
other one has p = 0), so only those columns of e matter, but `g` must still advance by a full row.

On the CPU, float32 `Tensor.exponential_` turns each 64-bit draw into the same double u in [0, 1) that
float64 `uniform_` gives, and returns float32(-log1p(-u)). A float64 `uniform_` over the full row thus
advances the generator exactly as `exponential_` does, at about a sixth of the cost, and the logarithm
is needed only at the allowed columns (0.91 ms -> 0.15 ms per row and token at GPT-2's 50,257 entries).
That is an implementation detail of torch, so `uniform_derivation_holds` checks it bit for bit, the
generator's state included, once per process and row size; where it does not hold (another torch, a
CUDA generator) the draws fall back to `exponential_` over the full row.

Heavy imports (torch) happen inside functions.
"""

from __future__ import annotations

import functools
from typing import Any

_CHECK_SEEDS = (0, 1, 2**32 - 1)


@functools.lru_cache(maxsize=8)
def uniform_derivation_holds(size: int) -> bool:
    """Whether float32 `exponential_` over `size` entries equals float32(-log1p(-u)) for u from float64
    `uniform_`, value for value, and leaves the generator in the same state (this torch, the CPU)."""
    import torch

    for seed in _CHECK_SEEDS:
        by_exponential = torch.Generator().manual_seed(seed)
        by_uniform = torch.Generator().manual_seed(seed)
        expected = torch.empty(size, dtype=torch.float32).exponential_(generator=by_exponential)
        uniform = torch.empty(size, dtype=torch.float64).uniform_(generator=by_uniform)
        derived = exponential_from_uniform(uniform)
        if not torch.equal(derived, expected):
            return False
        if not torch.equal(by_exponential.get_state(), by_uniform.get_state()):
            return False
    return True


def exponential_from_uniform(uniform: Any) -> Any:
    """float32(-log1p(-u)) for a float64 tensor u in [0, 1); `uniform` is used up (changed in place)."""
    return uniform.neg_().log1p_().neg_().float()


class ExponentialDraws:
    """Per sampling step, one row of Exp(1) numbers per generator, at `columns` only.

    rows: how many generators (one per batch row); vocab_size: the full row `multinomial` draws over;
    columns: (A,) long tensor, the vocabulary ids that can win. `draw(generators)` -> (rows, A) float32,
    equal to `torch.empty(vocab_size).exponential_(generator=g)[columns]` per row, with every generator
    advanced exactly as that call advances it.
    """

    def __init__(self, rows: int, vocab_size: int, columns: Any):
        import torch

        self.columns = columns
        device = columns.device
        self.by_uniform = device.type == "cpu" and uniform_derivation_holds(vocab_size)
        dtype = torch.float64 if self.by_uniform else torch.float32
        self._full = torch.empty((rows, vocab_size), dtype=dtype, device=device)

    def draw(self, generators: list[Any]) -> Any:
        full = self._full
        if self.by_uniform:
            for row, generator in enumerate(generators):
                full[row].uniform_(generator=generator)
            return exponential_from_uniform(full.index_select(1, self.columns))
        for row, generator in enumerate(generators):
            full[row].exponential_(generator=generator)
        return full.index_select(1, self.columns)
