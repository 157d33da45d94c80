"""Shared by the tests that check which torch intra-op thread count an operation ran with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class RecordThreads(TorchDispatchMode):
    """Records torch's intra-op thread count at every operation."""

    def __init__(self):
        super().__init__()
        self.threads: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.threads.add(torch.get_num_threads())
        return func(*args, **(kwargs or {}))


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to `count` inside the block, the previous one restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
