"""Where the cached refiner UNet lives during and between generations, and who moves it.

Two strategies, chosen per generation by `choose_placement`:

- `ForgeManagedPlacement` (Forge main, `backend.memory_management`): the refiner UNet is a model
  Forge's memory manager knows. One `ModelPatcher` wraps it for as long as it is cached
  (`ForgeUnetHandle`, kept with the cache entry); at the first refiner evaluation of a generation it is
  loaded with `load_models_gpu`, keeping the base (and the models Forge loaded for this sampling run:
  ControlNets, …) loaded, so Forge frees other models or loads the refiner partially ("CPU swap")
  when VRAM is short, and counts it in its accounting. Placement "CPU RAM": at the end of the
  generation Forge unloads it (its own `model_unload`: back to the offload device, out of the
  accounting). Placement "Compute device": it stays in Forge's list of loaded models, where Forge may
  unload it like any other model when it needs the memory.
  The base stays loaded while the refiner runs: its `KModel` (σ tables, predictor) wraps the refiner
  UNet for the rest of the run, so it must not be moved away mid-run.
- `DirectPlacement` (A1111, Forge's 2024 line): the host has no memory manager for an extra UNet; the
  refiner is moved to the base UNet's device and dtype at the switch and, with "CPU RAM", back to the
  CPU at the end.

Host modules are passed in (or imported lazily by `forge_memory_module`), so the decisions are testable
with fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger("sd_webui_fooocus")

PLACEMENT_CPU = "cpu"
PLACEMENT_DEVICE = "device"
FORGE_HANDLE = "forge-model-patcher"  # the cache attachment name of a ForgeUnetHandle


def first_parameter(module: Any) -> torch.Tensor | None:
    parameters = getattr(module, "parameters", None)
    if not callable(parameters):
        return None
    try:
        return next(iter(parameters()), None)
    except Exception:
        return None


def move_module(module: Any, device: torch.device, dtype: torch.dtype | None) -> None:
    to = getattr(module, "to", None)
    if not callable(to):
        return
    parameter = first_parameter(module)
    if parameter is not None and parameter.device == device and (dtype is None or parameter.dtype == dtype):
        return
    if dtype is None:
        to(device)
    else:
        to(device=device, dtype=dtype)


# -- A1111 / Forge 2024 line: the extension moves the module itself -----------------------------------------


@dataclass
class DirectPlacement:
    mode: str = PLACEMENT_CPU

    def before_refiner(self, unet: Any, holder: Any, x_shape: tuple[int, ...]) -> None:
        """Called with the base UNet still in `holder.diffusion_model`."""
        parameter = first_parameter(getattr(holder, "diffusion_model", None))
        if parameter is not None:
            move_module(unet, parameter.device, parameter.dtype)

    def after_generation(self, unet: Any) -> None:
        if self.mode == PLACEMENT_CPU:
            move_module(unet, torch.device("cpu"), None)


# -- Forge main: Forge's memory manager moves and counts it ----------------------------------------------------


class ForgeUnetHandle:
    """The cached refiner UNet as a model of Forge's memory manager: one `ModelPatcher` per cached UNet
    (Forge recognises a loaded model by its patcher object). `release()` is called when the cache drops
    the UNet, so Forge never keeps an entry (or device memory) for a UNet that is gone."""

    def __init__(self, unet: Any, memory: Any, make_patcher: Callable[..., Any], load_device: Any, offload_device: Any):
        self.memory = memory
        self.patcher = make_patcher(unet, load_device=load_device, offload_device=offload_device)

    def load(self, keep: list[Any], memory_required: float, preservation: float) -> None:
        """Load the refiner on Forge's compute device, `keep` (already loaded) staying loaded."""
        self.memory.load_models_gpu([*keep, self.patcher], memory_required=memory_required,
                                    hard_memory_preservation=preservation)

    def unload(self) -> bool:
        """Forge's own unload of our entry (moves it to the offload device). True when there was one."""
        loaded = self.memory.current_loaded_models
        found = False
        for index in range(len(loaded) - 1, -1, -1):
            if getattr(loaded[index], "model", None) is self.patcher:
                loaded.pop(index).model_unload()
                found = True
        return found

    def release(self) -> None:
        self.unload()


@dataclass
class ForgeManagedPlacement:
    handle: ForgeUnetHandle
    mode: str = PLACEMENT_CPU
    loaded_this_generation: bool = False

    def before_refiner(self, unet: Any, holder: Any, x_shape: tuple[int, ...]) -> None:
        if self.loaded_this_generation:
            return
        memory = self.handle.memory
        base = next((entry.model for entry in memory.current_loaded_models
                     if getattr(getattr(entry, "model", None), "model", None) is holder), None)
        keep = [] if base is None else [base, *sampling_companions(base)]
        self.handle.load(keep, inference_memory(holder, x_shape), float(getattr(base, "extra_preserved_memory_during_sampling", 0) or 0))
        self.loaded_this_generation = True

    def after_generation(self, unet: Any) -> None:
        self.loaded_this_generation = False
        if self.mode == PLACEMENT_CPU:
            self.handle.unload()


def sampling_companions(base_patcher: Any) -> list[Any]:
    """The models Forge loads together with the UNet for sampling (its extra patchers, ControlNets)."""
    models = list(getattr(base_patcher, "extra_model_patchers_during_sampling", None) or [])
    controlnets = getattr(base_patcher, "controlnet_linked_list", None)
    get_models = getattr(controlnets, "get_models", None)
    if callable(get_models):
        models += list(get_models())
    return models


def inference_memory(holder: Any, x_shape: tuple[int, ...]) -> float:
    """What Forge reserves for one UNet call on a cond+uncond batch of this latent size."""
    estimate = getattr(holder, "memory_required", None)
    if not callable(estimate) or len(x_shape) != 4:
        return 0.0
    batch, channels, height, width = x_shape
    try:
        return float(estimate([2 * batch, channels, height, width]))
    except Exception:
        return 0.0


# -- the decision ----------------------------------------------------------------------------------------


def forge_memory_module() -> Any:
    """Forge main's memory manager, or None on other hosts."""
    try:
        from backend import memory_management  # Forge main only
        from backend.patcher.base import ModelPatcher
    except ImportError:
        return None
    if not callable(getattr(memory_management, "load_models_gpu", None)):
        return None
    return memory_management, ModelPatcher


def choose_placement(mode: str, p: Any, unet: Any, attach: Callable[[str, Callable[[], Any]], Any],
                     forge: Callable[[], Any] = forge_memory_module) -> DirectPlacement | ForgeManagedPlacement:
    """Forge's memory manager when the host is Forge main and the base UNet is one of its patchers
    (load/offload devices known); the direct move otherwise. `attach(name, create)` keeps an object with
    the cached UNet (created once per cached UNet)."""
    base_patcher = getattr(getattr(getattr(p, "sd_model", None), "forge_objects", None), "unet", None)
    load_device = getattr(base_patcher, "load_device", None)
    offload_device = getattr(base_patcher, "offload_device", None)
    if load_device is None or offload_device is None:
        return DirectPlacement(mode)
    found = forge()
    if found is None:
        return DirectPlacement(mode)
    memory, make_patcher = found
    handle = attach(FORGE_HANDLE, lambda: ForgeUnetHandle(unet, memory, make_patcher, load_device, offload_device))
    return ForgeManagedPlacement(handle=handle, mode=mode)
