"""The expansion's Exp(1) draws: the allowed columns of what `exponential_` draws, the generator advanced alike."""

from __future__ import annotations

import pytest
import torch

from lib_fooocus.expansion import draws

VOCAB = 50257  # GPT-2's row: the size the engine draws over


def _columns(count: int = 643, seed: int = 0) -> torch.Tensor:
    picked = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(seed))[:count]
    return picked.sort().values


def _generators(seeds):
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def _expected_steps(seeds, columns, steps):
    """What the engine drew before: the full row with `exponential_`, then the columns."""
    generators = _generators(seeds)
    out = []
    for _ in range(steps):
        full = torch.empty((len(seeds), VOCAB), dtype=torch.float32)
        for row, generator in enumerate(generators):
            full[row].exponential_(generator=generator)
        out.append(full[:, columns])
    return out, generators


@pytest.mark.parametrize("seeds", [[12345], [0, 1, 2**32 - 1, 7, 7]])
def test_draws_equal_exponential_at_the_columns_and_advance_the_generators_alike(seeds):
    columns = _columns()
    expected, expected_generators = _expected_steps(seeds, columns, steps=4)
    sampler = draws.ExponentialDraws(len(seeds), VOCAB, columns)
    assert sampler.by_uniform  # this torch takes the cheap path; the check below is bit for bit
    generators = _generators(seeds)
    for step in expected:
        got = sampler.draw(generators)
        assert got.dtype == torch.float32 and got.shape == (len(seeds), columns.numel())
        assert torch.equal(got, step)
    for ours, theirs in zip(generators, expected_generators):
        assert torch.equal(ours.get_state(), theirs.get_state())


def test_the_fallback_draws_the_same(monkeypatch):
    monkeypatch.setattr(draws, "uniform_derivation_holds", lambda size: False)
    columns = _columns(seed=3)
    expected, _ = _expected_steps([5, 6], columns, steps=2)
    sampler = draws.ExponentialDraws(2, VOCAB, columns)
    assert not sampler.by_uniform
    generators = _generators([5, 6])
    for step in expected:
        assert torch.equal(sampler.draw(generators), step)


def test_the_check_refuses_a_derivation_that_differs(monkeypatch):
    draws.uniform_derivation_holds.cache_clear()
    try:
        # -log(u) instead of -log1p(-u): the same distribution, other numbers
        monkeypatch.setattr(draws, "exponential_from_uniform", lambda u: u.log_().neg_().float())
        assert not draws.uniform_derivation_holds(1000)
        monkeypatch.undo()
        draws.uniform_derivation_holds.cache_clear()
        assert draws.uniform_derivation_holds(1000)
    finally:
        draws.uniform_derivation_holds.cache_clear()


def test_only_cpu_generators_take_the_cheap_path():
    columns = torch.arange(10, device="meta")
    assert not draws.ExponentialDraws(1, 100, columns).by_uniform
