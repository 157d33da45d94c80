"""Benchmark: the Fooocus refiner swap vs loading the same UNet from disk, side by side in one run.

    python bench/refiner.py [--mb 400] [--repeats 7] [--threads N]
    SD_WEBUI_URL=http://127.0.0.1:7871 SD_WEBUI_REFINER=<title> python bench/refiner.py   # + a running host

In-process (always): a UNet-sized module (`--mb` of float32 weights, SDXL's UNet is ~10 GB in fp32,
~5 GB in fp16) saved as safetensors with `model.diffusion_model.*` keys, then, interleaved:
- "swap": what a request with a cached refiner pays at the switch and at the end (put the refiner's
  UNet in place of the base's, put the base back: `RefinerSwap.use_refiner` + `restore`);
- "disk": what a refiner without our cache pays per request (`load_unet_state_dict` +
  `load_state_dict` into a built module), i.e. the UNet part of the host's checkpoint reload.

On a real host: 2nd-request wall times of a 6-step 256² txt2img, plain vs our refiner vs the host's own
refiner (`refiner_checkpoint`), interleaved rounds, each timed request following one of its kind.
"ours" differs from "plain" only by the extension (sampling tricks at their defaults + the refiner): its
request pins `styles` to none and Fooocus V2 off, which the API's named form would otherwise take from
the Settings defaults (the default styles lengthen the negative prompt past the positive's 77 tokens,
and A1111 then runs cond and uncond as two UNet calls per step: the styles' cost, not the refiner's).
The optional "fooocus" candidate is the same request without refiner (the tricks alone).
- `SD_WEBUI_DIR=<webui> python bench/refiner.py --host-only` starts that WebUI here with this checkout
  linked in (same launcher and environment as tests/webui: SD_WEBUI_PYTHON, SD_WEBUI_CKPT,
  SD_WEBUI_ARGS, SD_WEBUI_PORT) and stops it afterwards;
- `SD_WEBUI_URL=http://127.0.0.1:7871` uses a host that is already running (API on, no auth).
`SD_WEBUI_REFINER` names the refiner checkpoint (default sdxl_tiny_b.safetensors, a same-shape SDXL
model). `--candidates plain,ours` / `plain,host` measure in separate hosts when one host cannot hold
both refiners (the host's refiner reloads checkpoints; the ratios are always to plain of the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib_fooocus.hosts.refiner_swap import RefinerSwap
from lib_fooocus.refiner.unet_file import load_unet_state_dict


def unet_like(megabytes: int) -> nn.Module:
    blocks = max(1, megabytes // 16)
    module = nn.Module()
    module.input_blocks = nn.ModuleList([nn.Linear(1024, 1024) for _ in range(blocks * 4)])  # 4 MB each
    return module.eval().requires_grad_(False)


def in_process(megabytes: int, repeats: int) -> None:
    base, refiner = unet_like(megabytes), unet_like(megabytes)
    holder = type("Model", (), {})()
    holder.diffusion_model = base
    with tempfile.TemporaryDirectory() as folder:
        from safetensors.torch import save_file

        path = os.path.join(folder, "refiner.safetensors")
        save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in refiner.state_dict().items()}, path)
        swap = RefinerSwap(unet=refiner, kind="sdxl-base", ratio=0.8)
        target = unet_like(megabytes)
        swap_times, disk_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            swap.use_refiner(holder)
            swap.restore()
            swap_times.append(time.perf_counter() - start)
            assert holder.diffusion_model is base
            start = time.perf_counter()
            target.load_state_dict(load_unet_state_dict(path), strict=True)
            disk_times.append(time.perf_counter() - start)
    swap_ms, disk_ms = statistics.median(swap_times) * 1e3, statistics.median(disk_times) * 1e3
    print(f"UNet of {megabytes} MB (float32), median of {repeats}:")
    print(f"  swap (cached refiner, in place and back): {swap_ms:10.3f} ms")
    print(f"  load the same UNet from disk:             {disk_ms:10.3f} ms   ({disk_ms / max(swap_ms, 1e-6):,.0f}x the swap)")


def post(url: str, body: dict) -> tuple[float, dict]:
    request = urllib.request.Request(f"{url}/sdapi/v1/txt2img", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=1800) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - start, answer


CANDIDATES = ("plain", "fooocus", "ours", "host")
DEFAULT_CANDIDATES = ("plain", "ours", "host")
LABELS = {"plain": "plain", "fooocus": "Fooocus only", "ours": "ours", "host": "host refiner"}


def request_bodies(refiner: str) -> dict[str, dict]:
    """The txt2img bodies of every candidate: the same prompt, size, sampler and seed. The extension's
    args pin `styles` (none) and `expansion` (off): omitted, they would take the Settings defaults and
    change the prompts, so the timing would no longer be the refiner's."""
    request = {"prompt": "a photo of a cat", "negative_prompt": "blurry", "steps": 6, "width": 256, "height": 256,
               "cfg_scale": 5, "sampler_name": "DPM++ 2M", "seed": 1234, "send_images": True}

    def with_fooocus(**fields: object) -> dict:
        args = {"enabled": True, "styles": [], "expansion": False, **fields}
        return {**request, "alwayson_scripts": {"fooocus": {"args": [args]}}}

    return {"plain": request,
            "fooocus": with_fooocus(),
            "ours": with_fooocus(refiner_checkpoint=refiner, refiner_switch=0.5),
            "host": {**request, "refiner_checkpoint": refiner, "refiner_switch_at": 0.5}}


def on_host(url: str, refiner: str, rounds: int = 3, candidates: tuple[str, ...] = DEFAULT_CANDIDATES) -> None:
    every = request_bodies(refiner)
    bodies = {name: every[name] for name in CANDIDATES if name == "plain" or name in candidates}
    cpu_of_host = host_cpu_clock(url)
    times: dict[str, list[float]] = {name: [] for name in bodies}
    cpu: dict[str, list[float]] = {name: [] for name in bodies}
    for body in bodies.values():
        post(url, body)  # 1st requests (loads, warm-up)
    for _ in range(rounds):  # interleaved, so machine noise hits every candidate alike
        for name, body in bodies.items():
            post(url, body)  # the request before it is one of its kind: the timed one is a "2nd request"
            before = cpu_of_host() if cpu_of_host else 0.0
            times[name].append(post(url, body)[0])
            cpu[name].append(cpu_of_host() - before if cpu_of_host else 0.0)
    print(f"2nd request on {url} (6 steps, 256², DPM++ 2M, switch 0.5, refiner {refiner}; each timed request "
          f"follows one of its kind), median of {rounds} interleaved rounds:")
    print_ratios("wall time", times)
    if cpu_of_host:
        print_ratios("the host process's CPU time (all its threads; steadier than wall time on a shared machine)", cpu)


def print_ratios(what: str, values: dict[str, list[float]]) -> None:
    plain = statistics.median(values["plain"])
    print(f" {what}:")
    for name, seconds in values.items():
        median = statistics.median(seconds)
        print(f"  {LABELS[name]:<13} {median:7.2f} s  ({median / plain:.2f}x plain)  {[round(v, 1) for v in seconds]}")
    if "fooocus" in values and "ours" in values:
        ratio = statistics.median(values["ours"]) / statistics.median(values["fooocus"])
        print(f"  the refiner alone (ours / Fooocus only): {ratio:.2f}x")


def host_cpu_clock(url: str) -> Callable[[], float] | None:
    """The CPU seconds (user + system, all threads) used so far by the WebUI process listening on the
    URL's port, when it runs on this machine (Linux /proc); None otherwise."""
    port = urllib.parse.urlsplit(url).port
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = stat.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"launch.py" in b" ".join(args) and f"{port}".encode() in args and b"--port" in args:
            stat_file = stat.with_name("stat")

            def clock(stat_file: Path = stat_file) -> float:
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

            return clock
    return None


def candidates_arg(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CANDIDATES]
    if unknown:
        msg = f"unknown candidates {unknown}; choose from {', '.join(CANDIDATES)}"
        raise argparse.ArgumentTypeError(msg)
    return names


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds on the host")
    parser.add_argument("--candidates", type=candidates_arg, default=DEFAULT_CANDIDATES,
                        help="comma list of plain,fooocus,ours,host (plain is always measured)")
    parser.add_argument("--host-only", action="store_true", help="skip the in-process part")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.host_only:
        in_process(args.mb, args.repeats)
    refiner = os.environ.get("SD_WEBUI_REFINER", "sdxl_tiny_b.safetensors")
    url = os.environ.get("SD_WEBUI_URL")
    if url:
        on_host(url.rstrip("/"), refiner, args.rounds, args.candidates)
    elif os.environ.get("SD_WEBUI_DIR"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "webui"))
        from webui_host import running_webui

        log_path = Path(tempfile.gettempdir()) / "sd-webui-fooocus-bench-refiner.log"
        print(f"starting the WebUI in {os.environ['SD_WEBUI_DIR']} (log: {log_path})", flush=True)
        with running_webui(ui=False, log_path=log_path, auth=False) as started:
            on_host(started, refiner, args.rounds, args.candidates)
    else:
        print("(set SD_WEBUI_DIR to start a host, or SD_WEBUI_URL for a running one, for the request timings)")


if __name__ == "__main__":
    main()
