"""Benchmark: Fooocus guidance and the sharpness filter's two paths on SDXL latents, side by side in one run.

    python bench/guidance.py [--batch 2] [--repeats 9] [--threads N] [--fooocus DIR] [--contended]

Times, interleaved so machine noise hits every candidate alike (medians):
- `fooocus_cfg` with every trick on (sharpness 2 at p = 0.7, CFG 10 > adaptive CFG 7), and a plain CFG
  combine (the host's own work, the floor);
- the sharpness filter (guide standardisation included) by our "shift" path (on a CPU: one intra-op
  thread, what `method="auto"` runs there), the same path on torch's threads, our "batched" path,
  against Fooocus's `adaptive_anisotropic_filter` (on torch's threads, as Fooocus runs it, and on one
  thread) and kornia's `joint_bilateral_blur`.

Ratios are taken within a repeat and the median over repeats is printed; the load average before and
after the timings too.

Fooocus's filter is loaded at run time from a Fooocus checkout (`--fooocus DIR` or `$FOOOCUS_DIR`: the
folder holding `modules/anisotropic.py`, e.g. at commit 59f183ab); nothing of it is in this repository.
Without it the comparison runs against our own unfold formulation (every 13 × 13 window materialised,
as Fooocus does), labelled as such.

Per filter call it also prints the number of tensor operations that are not views (counted with a
`TorchDispatchMode`; a proxy for kernel launches on an accelerator; the second call, after the cached
spatial table exists) and the peak extra memory (the largest total size of tensor storages created
during the call and alive at once, tracked in the same way).

`--contended` runs everything while another torch process does 2-thread 1024² matrix products; the bench
starts it, waits until it runs, and stops it at the end (it also stops itself after
`--contended-seconds`). `--contenders N` starts N such processes (a heavier load).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import weakref
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contention import (  # bench/contention.py: this script's folder is on sys.path
    contending_processes,
    describe,
)

from lib_fooocus.guidance import sharpness
from lib_fooocus.guidance.cfg import fooocus_cfg
from lib_fooocus.guidance.sharpness import (
    choose_filter_method,
    gaussian_kernel_1d,
    joint_bilateral_filter,
    standardized_guide,
)
from lib_fooocus.params import FooocusParams


class OpCounter(TorchDispatchMode):
    """Counts the operations that reach the kernels, views (as_strided, slice, …) excluded."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 0 if func.is_view else 1
        return func(*args, **(kwargs or {}))


class PeakMemory(TorchDispatchMode):
    """Peak of the total bytes of tensor storages created inside the mode and alive at the same time."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0
        self.known: set[int] = set()

    def _freed(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for value in tree_flatten((args, kwargs))[0]:
            if isinstance(value, torch.Tensor):
                key = value.untyped_storage().data_ptr()
                if key not in self.live:
                    self.known.add(key)  # made before the call (inputs): not "extra"
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live and key not in self.known:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    weakref.finalize(storage, self._freed, key)
        self.peak = max(self.peak, self.current)
        return out


def count_ops(fn) -> int:
    fn()
    with OpCounter() as counter:
        fn()
    return counter.count


def peak_extra_bytes(fn) -> int:
    fn()
    with PeakMemory() as tracker:
        fn()
    return tracker.peak


def load_fooocus_filter(folder: str | None):
    """Fooocus's `adaptive_anisotropic_filter(x, g)` from a checkout, or None."""
    if not folder:
        return None
    path = Path(folder).expanduser() / "modules" / "anisotropic.py"
    if not path.is_file():
        raise SystemExit(f"--fooocus: {path} not found")
    spec = importlib.util.spec_from_file_location("fooocus_anisotropic_for_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.adaptive_anisotropic_filter


def unfold_filter(x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Our own unfold formulation (the stand-in when no Fooocus checkout is given; not Fooocus's code):
    standardise the guide, materialise every 13 × 13 window of x and of the guide, weigh, sum."""
    kernel, radius = 13, 6
    batch, channels, height, width = x.shape
    guide = standardized_guide(x0)
    x_windows = F.unfold(F.pad(x, (radius,) * 4, mode="reflect"), kernel)
    g_windows = F.unfold(F.pad(guide, (radius,) * 4, mode="reflect"), kernel)
    x_windows = x_windows.view(batch, channels, kernel * kernel, height * width)
    g_windows = g_windows.view(batch, guide.shape[1], kernel * kernel, height * width)
    distance = (g_windows - guide.view(batch, guide.shape[1], 1, height * width)).abs().sum(1)
    spatial = gaussian_kernel_1d(kernel, 3.0).float()
    weight = torch.exp(distance.square() * (-0.5 / 9.0)) * (spatial[:, None] * spatial[None, :]).view(1, -1, 1)
    out = (x_windows * weight[:, None]).sum(2) / weight.sum(1)[:, None]
    return out.view(batch, channels, height, width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2, help="latent batch (default 2: (2, 4, 128, 128))")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--fooocus", default=os.environ.get("FOOOCUS_DIR"),
                        help="a Fooocus checkout (holding modules/anisotropic.py); default $FOOOCUS_DIR")
    parser.add_argument("--contended", action="store_true",
                        help="run beside another torch process doing 2-thread matrix products")
    parser.add_argument("--contenders", type=int, default=1,
                        help="with --contended: how many such processes (default 1)")
    parser.add_argument("--contended-seconds", type=float, default=600.0,
                        help="the contending process stops itself after this long (default 600)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import kornia

    fooocus_filter = load_fooocus_filter(args.fooocus)
    reference_name = "Fooocus filter" if fooocus_filter else "unfold filter (ours, stand-in)"
    reference = fooocus_filter or unfold_filter

    shape = (args.batch, 4, 128, 128)  # SDXL latents of 1024 × 1024 images
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen) * 3.0
    x0_cond = torch.randn(shape, generator=gen)
    x0_uncond = torch.randn(shape, generator=gen)
    sigma = torch.full((args.batch,), 1.5)
    progress = torch.full((args.batch,), 0.7)
    params = FooocusParams(enabled=True, sharpness=2.0, adaptive_cfg=7.0)
    eps = x - x0_cond
    auto = choose_filter_method(eps)

    def ours(method):
        """The filter and its guide as `fooocus_cfg` runs them: on a CPU, unless the batched path is
        asked for, on one intra-op thread (the guide's few operations too)."""
        def run():
            return joint_bilateral_filter(eps, standardized_guide(x0_cond), method=method)

        if eps.device.type != "cpu" or method == "batched":
            return run

        def on_one_thread():
            with sharpness.single_intra_op_thread():
                return run()

        return on_one_thread

    threads = torch.get_num_threads()

    def shift_on_torch_threads():
        return sharpness._shift_filter(eps, standardized_guide(x0_cond), 13, 3.0, 3.0)

    def reference_on_one_thread():
        with sharpness.single_intra_op_thread():
            return reference(eps, x0_cond)

    filters = {
        "shift path": ours("shift"),
        f"shift path, {threads} threads": shift_on_torch_threads,
        "batched path": ours("batched"),
        reference_name: lambda: reference(eps, x0_cond),
        f"{reference_name}, 1 thread": reference_on_one_thread,
        "kornia filter": lambda: kornia.filters.joint_bilateral_blur(
            eps, standardized_guide(x0_cond), (13, 13), 3.0, (3.0, 3.0), "reflect", "l1"
        ),
    }
    candidates = {
        "fooocus_cfg (all tricks)": lambda: fooocus_cfg(x, x0_cond, x0_uncond, sigma, 10.0, params, progress),
        "plain CFG combine": lambda: x0_uncond + 10.0 * (x0_cond - x0_uncond),
        **filters,
    }
    expected = filters[reference_name]()
    ours_names = ("shift path", f"shift path, {threads} threads", "batched path")
    differences = {name: (filters[name]() - expected).abs().max().item() for name in ours_names}
    ops = {name: count_ops(fn) for name, fn in filters.items()}
    memory = {name: peak_extra_bytes(fn) for name, fn in filters.items()}

    load_before = os.getloadavg()
    with contending_processes(args.contenders if args.contended else 0, args.contended_seconds):
        times: dict[str, list[float]] = {name: [] for name in candidates}
        for fn in candidates.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for name, fn in candidates.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()
    median = {name: statistics.median(values) for name, values in times.items()}

    def round_ratio(top: str, bottom: str) -> float:
        """The median over repeats of the ratio within a repeat (load changes hit both alike)."""
        return statistics.median(a / b for a, b in zip(times[top], times[bottom]))

    mode = describe(args.contenders if args.contended else 0)
    print(f"shape {shape}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} repeats, {mode}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, {os.cpu_count()} CPUs")
    print(f"reference: {reference_name}{' from ' + str(args.fooocus) if fooocus_filter else ''}; "
          f"auto picks the {auto} path here")
    for name, value in median.items():
        extra = ""
        if name in filters:
            extra = f"  {ops[name]:5d} ops/call  peak extra {memory[name] / 2**20:7.1f} MiB"
            if name in differences:
                extra += f"  max |Δ| vs reference {differences[name]:.1e}"
        print(f"  {name:34s} median {value * 1000:9.2f} ms{extra}")
    print("ratios (median over repeats of the ratio within a repeat):")
    for name in (*ours_names, "kornia filter", f"{reference_name}, 1 thread"):
        print(f"  {name} / {reference_name}: {round_ratio(name, reference_name):.3f}")
    auto_name = "shift path" if auto == "shift" else "batched path"
    auto_ratio = round_ratio(auto_name, reference_name)
    print(f"  {auto_name} / {reference_name}, 1 thread: {round_ratio(auto_name, f'{reference_name}, 1 thread'):.3f}")
    print(f"  fooocus_cfg / plain CFG combine: {round_ratio('fooocus_cfg (all tricks)', 'plain CFG combine'):.1f}")
    print(f"  fooocus_cfg / {reference_name}: {round_ratio('fooocus_cfg (all tricks)', reference_name):.3f}")
    limit = 0.3 if args.contended else 0.15
    print(f"target auto ({auto_name}) <= {limit}x the reference: {'met' if auto_ratio <= limit else 'NOT met'} "
          f"({auto_ratio:.3f})")
    batched_ok = ops["batched path"] <= 60 and memory["batched path"] <= 64 * 2**20
    print(f"target batched path <= 60 ops and <= 64 MiB: {'met' if batched_ok else 'NOT met'}"
          f"{'' if args.batch == 2 else ' (the target is defined at batch 2)'}")


if __name__ == "__main__":
    main()
