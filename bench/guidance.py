"""Benchmark: Fooocus guidance on a 1024² SDXL latent, side by side in one run.

    python bench/guidance.py [--repeats 15] [--threads N]

Times, interleaved so machine noise hits every candidate alike:
- `fooocus_cfg` with every trick on (sharpness 2 at p = 0.7, CFG 10 > adaptive CFG 7),
- a plain CFG combine (the host's own work, the floor),
- our joint bilateral filter alone and kornia's `joint_bilateral_blur` (the reference), on the same input.
Prints medians and ratios, and the largest single tensor each filter allocates (kornia unfolds
(B, C, H, W, 169) windows; ours keeps a few (B, C, H, W) buffers).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib_fooocus.guidance.cfg import fooocus_cfg
from lib_fooocus.guidance.sharpness import joint_bilateral_filter, standardized_guide
from lib_fooocus.params import FooocusParams

SHAPE = (1, 4, 128, 128)  # SDXL latent of a 1024 × 1024 image


def largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation made while running `fn` once."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max((e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import kornia

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=gen) * 3.0
    x0_cond = torch.randn(SHAPE, generator=gen)
    x0_uncond = torch.randn(SHAPE, generator=gen)
    sigma = torch.tensor([1.5])
    progress = torch.tensor([0.7])
    params = FooocusParams(enabled=True, sharpness=2.0, adaptive_cfg=7.0)
    eps = x - x0_cond
    guide = standardized_guide(x0_cond)

    candidates = {
        "fooocus_cfg (all tricks)": lambda: fooocus_cfg(x, x0_cond, x0_uncond, sigma, 10.0, params, progress),
        "plain CFG combine": lambda: x0_uncond + 10.0 * (x0_cond - x0_uncond),
        "our filter": lambda: joint_bilateral_filter(eps, guide),
        "kornia filter": lambda: kornia.filters.joint_bilateral_blur(
            eps, guide, (13, 13), 3.0, (3.0, 3.0), "reflect", "l1"
        ),
    }
    difference = (candidates["our filter"]() - candidates["kornia filter"]()).abs().max().item()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}

    print(f"shape {SHAPE}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} repeats")
    for name, value in median.items():
        print(f"  {name:28s} median {value * 1000:8.2f} ms")
    print(f"ratio our filter / kornia filter:        {median['our filter'] / median['kornia filter']:.3f}")
    print(f"ratio fooocus_cfg / plain CFG combine:   {median['fooocus_cfg (all tricks)'] / median['plain CFG combine']:.1f}")
    print(f"max |our filter − kornia|:               {difference:.2e}")
    ours = largest_allocation(candidates["our filter"])
    theirs = largest_allocation(candidates["kornia filter"])
    print(f"largest single allocation: ours {ours / 2**20:.2f} MiB, kornia {theirs / 2**20:.2f} MiB")
    target = "met" if median["fooocus_cfg (all tricks)"] <= 0.100 else "NOT met"
    print(f"target full guidance <= 100 ms: {target}")


if __name__ == "__main__":
    main()
