"""Where the refiner UNet is placed, and by whom: Forge main's memory manager (`load_models_gpu`, its
list of loaded models, `model_unload`) or the extension's own move (A1111). The Forge side is a fake
that follows Forge main's `backend/memory_management.py` contract: a loaded model is a `LoadedModel`
whose `.model` is the ModelPatcher; `load_models_gpu(models, memory_required, hard_memory_preservation)`
keeps the listed models that are already loaded and loads the others; `model_unload()` moves the
patcher's module to its offload device. (No GPU here: the real path is exercised on Forge main's CPU
device only, by tests/webui.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from lib_fooocus.hosts import refiner_placement, refiner_swap
from lib_fooocus.hosts.refiner_placement import (
    DirectPlacement,
    ForgeManagedPlacement,
    ForgeUnetHandle,
    choose_placement,
)
from lib_fooocus.refiner.unet_file import UnetCache

GPU = "fake-gpu"


class FakePatcher:
    def __init__(self, model, load_device, offload_device, **extra):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        for name, value in extra.items():
            setattr(self, name, value)


class FakeLoadedModel:
    def __init__(self, patcher):
        self.model = patcher
        self.unloaded = 0

    def model_unload(self):
        self.unloaded += 1
        self.model.model.where = self.model.offload_device


class FakeMemory:
    """Forge main's memory manager, reduced to what the extension relies on."""

    def __init__(self):
        self.current_loaded_models: list[FakeLoadedModel] = []
        self.calls: list[dict] = []
        self.on_load = None

    def load_models_gpu(self, models, memory_required=0, hard_memory_preservation=0):
        if self.on_load is not None:
            self.on_load()
        self.calls.append({"models": list(models), "memory_required": memory_required,
                           "preservation": hard_memory_preservation})
        for patcher in models:
            if not any(entry.model is patcher for entry in self.current_loaded_models):
                patcher.model.where = patcher.load_device
                self.current_loaded_models.insert(0, FakeLoadedModel(patcher))


class Module:
    where = "cpu"


class KModel:
    """Forge main's KModel: holds `diffusion_model`, estimates inference memory per input shape."""

    def __init__(self, diffusion_model):
        self.diffusion_model = diffusion_model

    def memory_required(self, input_shape):
        batch, _channels, height, width = input_shape
        return 1000.0 * batch * height * width


def forge_setup(extra_models=(), preserved=0):
    memory = FakeMemory()
    base = Module()
    holder = KModel(base)
    base_patcher = FakePatcher(holder, GPU, "cpu", extra_model_patchers_during_sampling=list(extra_models),
                               extra_preserved_memory_during_sampling=preserved, controlnet_linked_list=None)
    memory.load_models_gpu([base_patcher, *extra_models])  # what Forge's sampling_prepare did
    memory.calls.clear()
    p = SimpleNamespace(sd_model=SimpleNamespace(forge_objects=SimpleNamespace(unet=base_patcher)))
    return memory, holder, base_patcher, p


def attach_in(store):
    def attach(name, create):
        if name not in store:
            store[name] = create()
        return store[name]

    return attach


# -- the decision -------------------------------------------------------------------------------------------


def test_forge_main_places_the_refiner_through_its_memory_manager() -> None:
    memory, _holder, _base_patcher, p = forge_setup()
    refiner, store = Module(), {}
    placement = choose_placement("cpu", p, refiner, attach_in(store), forge=lambda: (memory, FakePatcher))
    assert isinstance(placement, ForgeManagedPlacement)
    assert placement.handle.patcher.model is refiner
    assert (placement.handle.patcher.load_device, placement.handle.patcher.offload_device) == (GPU, "cpu")
    again = choose_placement("device", p, refiner, attach_in(store), forge=lambda: (memory, FakePatcher))
    assert again.handle is placement.handle  # one patcher per cached UNet: Forge knows it as the same model


@pytest.mark.parametrize("case", ["a1111", "no-devices", "no-forge-backend"])
def test_other_hosts_move_the_refiner_themselves(case) -> None:
    if case == "a1111":
        p = SimpleNamespace(sd_model=SimpleNamespace(model=KModel(Module())))
    elif case == "no-devices":  # Forge's 2024 line exposes no load/offload device here
        p = SimpleNamespace(sd_model=SimpleNamespace(forge_objects=SimpleNamespace(unet=SimpleNamespace())))
    else:
        p = forge_setup()[3]
    placement = choose_placement("device", p, Module(), attach_in({}), forge=lambda: None)
    assert isinstance(placement, DirectPlacement) and placement.mode == "device"


# -- Forge main: loading, accounting, unloading ------------------------------------------------------------


def test_the_switch_loads_the_refiner_keeping_the_base_and_its_companions_loaded() -> None:
    controlnet = FakePatcher(Module(), GPU, "cpu")
    memory, holder, base_patcher, _p = forge_setup(extra_models=[controlnet], preserved=123)
    refiner = Module()
    handle = ForgeUnetHandle(refiner, memory, FakePatcher, GPU, "cpu")
    placement = ForgeManagedPlacement(handle=handle, mode="cpu")
    placement.before_refiner(refiner, holder, (1, 4, 32, 32))
    [call] = memory.calls
    assert call["models"] == [base_patcher, controlnet, handle.patcher]
    assert call["memory_required"] == holder.memory_required([2, 4, 32, 32])  # cond + uncond batch
    assert call["preservation"] == 123
    assert refiner.where == GPU
    placement.before_refiner(refiner, holder, (1, 4, 32, 32))  # later refiner calls of the generation
    assert len(memory.calls) == 1


def test_the_refiner_is_loaded_while_the_base_is_still_in_place() -> None:
    """Forge may unload models while loading ours; an unload moves the whole KModel, so the base UNet
    (not the refiner) must be inside it at that moment."""
    memory, holder, _base_patcher, _p = forge_setup()
    base, refiner = holder.diffusion_model, Module()
    seen = []
    memory.on_load = lambda: seen.append(holder.diffusion_model)
    swap = refiner_swap.RefinerSwap(unet=refiner, kind="sdxl-base", ratio=0.5,
                                    placement=ForgeManagedPlacement(ForgeUnetHandle(refiner, memory, FakePatcher, GPU, "cpu")))
    swap.use_refiner(holder, (1, 4, 8, 8))
    assert seen == [base] and holder.diffusion_model is refiner
    swap.restore()
    assert holder.diffusion_model is base


@pytest.mark.parametrize(("mode", "stays_loaded"), [("cpu", False), ("device", True)])
def test_after_the_generation_forge_unloads_it_or_keeps_counting_it(mode, stays_loaded) -> None:
    memory, holder, base_patcher, _p = forge_setup()
    refiner = Module()
    handle = ForgeUnetHandle(refiner, memory, FakePatcher, GPU, "cpu")
    placement = ForgeManagedPlacement(handle=handle, mode=mode)
    placement.before_refiner(refiner, holder, (1, 4, 8, 8))
    placement.after_generation(refiner)
    loaded = [entry.model for entry in memory.current_loaded_models]
    assert (handle.patcher in loaded) is stays_loaded
    assert base_patcher in loaded  # the base is Forge's business
    assert refiner.where == (GPU if stays_loaded else "cpu")
    placement.before_refiner(refiner, holder, (1, 4, 8, 8))  # the next generation loads it again
    assert len(memory.calls) == 2


def test_dropping_the_cached_unet_unloads_it_from_forge(tmp_path) -> None:
    memory, holder, _base_patcher, _p = forge_setup()
    cache = UnetCache()
    path = tmp_path / "a.safetensors"
    save_file({"model.diffusion_model.label_emb.0.0.weight": torch.zeros(4, 2816)}, str(path))
    refiner, _kind, _cached = cache.get(path, lambda _file, _kind: Module())
    handle = cache.attachment(refiner, refiner_placement.FORGE_HANDLE,
                              lambda: ForgeUnetHandle(refiner, memory, FakePatcher, GPU, "cpu"))
    assert cache.attachment(refiner, refiner_placement.FORGE_HANDLE, lambda: pytest.fail("made twice")) is handle
    ForgeManagedPlacement(handle=handle, mode="device").before_refiner(refiner, holder, (1, 4, 8, 8))
    assert refiner.where == GPU
    assert cache.clear()
    assert handle.patcher not in [entry.model for entry in memory.current_loaded_models]
    assert refiner.where == "cpu"


# -- the direct move (A1111) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cpu", "device"])
def test_direct_placement_follows_the_bases_dtype(mode) -> None:
    base = torch.nn.Linear(2, 2).to(torch.float64)
    refiner = torch.nn.Linear(2, 2)
    placement = DirectPlacement(mode)
    placement.before_refiner(refiner, KModel(base), (1, 4, 8, 8))
    assert refiner.weight.dtype == torch.float64
    placement.after_generation(refiner)
    assert refiner.weight.device.type == "cpu" and refiner.weight.dtype == torch.float64  # CPU-only machine


# -- what the refiner UNet actually received -----------------------------------------------------------------


class Recorder(torch.nn.Module):
    def forward(self, x, timesteps=None, context=None, y=None):
        return x


def test_the_probe_reports_the_first_calls_context_and_vector_then_removes_itself() -> None:
    unet, reports = Recorder(), []
    probe = refiner_swap.watch_first_call(unet, reports.append)
    assert probe is not None
    unet(torch.zeros(2, 4, 8, 8), torch.zeros(2), context=torch.zeros(2, 77, 1280), y=torch.zeros(2, 2560))
    unet(torch.zeros(1, 4, 8, 8), context=torch.zeros(1, 77, 2048), y=torch.zeros(1, 2816))
    assert reports == [{"context": (2, 77, 1280), "y": (2, 2560)}]
    assert not unet._forward_pre_hooks


def test_the_swap_records_what_the_refiner_received_and_leaves_no_hook() -> None:
    base, refiner = Recorder(), Recorder()
    holder = KModel(base)
    swap = refiner_swap.RefinerSwap(unet=refiner, kind="sdxl-refiner", ratio=0.5)
    swap.use_refiner(holder, (2, 4, 8, 8))
    holder.diffusion_model(torch.zeros(2, 4, 8, 8), torch.zeros(2), context=torch.zeros(2, 77, 1280), y=torch.zeros(2, 2560))
    swap.restore()
    assert swap.unet_inputs == {"context": (2, 77, 1280), "y": (2, 2560)}
    unused = refiner_swap.RefinerSwap(unet=Recorder(), kind="sdxl-refiner", ratio=0.5)
    unused.use_refiner(KModel(Recorder()), (1, 4, 8, 8))
    unused.restore()  # never called: the hook must not stay behind
    assert not unused.unet._forward_pre_hooks and unused.unet_inputs is None


# -- the copy of a Forge base forgets Forge's per-layer state -------------------------------------------------


def test_the_copy_forgets_forge_online_loras_and_partial_load_flags() -> None:
    unet = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    unet[0].forge_online_loras = {"weight": ["a patch"]}
    unet[1].parameters_manual_cast = True  # Forge's CPU swap of this layer
    unet[1].prev_parameters_manual_cast = False
    refiner_swap.forget_network_state(unet)
    assert not hasattr(unet[0], "forge_online_loras")
    assert unet[1].parameters_manual_cast is False and not hasattr(unet[1], "prev_parameters_manual_cast")


# -- the base's UNet patches stay off the refiner (Forge passes them to whatever UNet is in the model) -------


class ForgeLikeUNet(torch.nn.Module):
    """Records what Forge main's UNet forward would receive."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, timesteps=None, context=None, y=None, control=None, transformer_options=None):
        self.calls.append({"control": control, "transformer_options": dict(transformer_options or {})})
        return x


def test_controlnet_and_transformer_patches_reach_the_base_but_not_the_refiner() -> None:
    base, refiner = ForgeLikeUNet(), ForgeLikeUNet()
    holder = KModel(base)
    options = {"cond_or_uncond": [0, 1], "sigmas": torch.ones(2), "patches": {"attn2_patch": ["ip-adapter"]},
               "patches_replace": {"attn1": {}}, "block_modifiers": ["freeu"], "group_norm_wrapper": "wrapper"}

    def call():
        holder.diffusion_model(torch.zeros(2, 4, 8, 8), torch.zeros(2), context=torch.zeros(2, 77, 2048),
                               y=torch.zeros(2, 2816), control={"input": ["residuals"]}, transformer_options=options)

    swap = refiner_swap.RefinerSwap(unet=refiner, kind="sdxl-refiner", ratio=0.5)
    call()
    swap.use_refiner(holder, (2, 4, 8, 8))
    call()
    swap.restore()
    call()
    assert [c["control"] for c in base.calls] == [{"input": ["residuals"]}] * 2
    assert all(c["transformer_options"] == options for c in base.calls)
    [seen] = refiner.calls
    assert seen["control"] is None
    assert set(seen["transformer_options"]) == {"cond_or_uncond", "sigmas"}  # the host's bookkeeping stays
    assert "patches" in options  # the host's own dict is not edited
    assert swap.dropped == {"ControlNet", "transformer_options['patches']", "transformer_options['patches_replace']",
                            "transformer_options['block_modifiers']", "transformer_options['group_norm_wrapper']"}
    assert not refiner._forward_pre_hooks


@pytest.mark.parametrize(("flags", "expected"), [
    ({"parameters_manual_cast": True}, True),  # fp8/bf16 storage computed in another dtype
    ({"parameters_manual_cast": False}, False),
    ({"parameters_manual_cast": True, "prev_parameters_manual_cast": False}, False),  # only Forge's CPU swap
    ({}, False),  # not Forge's operations
])
def test_the_refiner_casts_its_weights_when_the_bases_layers_do(flags, expected) -> None:
    base = torch.nn.Sequential(torch.nn.Linear(2, 2))
    for name, value in flags.items():
        setattr(base[0], name, value)
    assert refiner_swap.forge_manual_cast(base) is expected
