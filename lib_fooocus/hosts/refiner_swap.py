"""Fooocus's joint refiner swap inside the host's own sampler run (A1111 and both Forge lines).

Per generation (prepared in `Script.process`, nothing touched before sampling starts):
1. `prepare_refiner` resolves the checkpoint through the host, refuses what cannot refine this base
   (one log line + `Fooocus note`, the generation runs without refiner), and gets the refiner's UNet
   from `lib_fooocus.refiner.unet_file.CACHE` (read from disk once per file path + size + mtime,
   built as the host's own UNet class by `build_refiner_unet`).
2. In every owned `on_cfg_denoiser` call of the first pass, `RefinerSwap.on_denoiser`:
   - on the first call of a sampler run, takes the run's σ schedule from the host sampler
     (`sampler.get_sigmas(p, p.steps)`, cut at the first evaluated σ) and computes σ_switch;
   - for evaluations at σ < σ_switch puts the refiner UNet in place of the base's
     (`<model>.diffusion_model`, the attribute the host's model wrapper calls) and derives the
     refiner's conditioning from the base's in the host's own cond dicts (key assignment);
   - otherwise (and in the hires pass) makes sure the base UNet is in place.
   Nothing else changes: the k-diffusion loop keeps x, σ, its history and its noise sampler.
3. `RefinerSwap.restore()` from the `finally` of the `p.sample` bracket puts the base UNet back
   (success, interrupt, exception) and, with placement "CPU RAM", moves the refiner back to the CPU.

Host objects are read by duck typing; host modules are imported lazily in `host_checkpoint`.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from lib_fooocus.guidance.refiner import (
    BASE_ADM_DIM,
    HIGH_AESTHETIC,
    KIND_SDXL_BASE,
    KIND_SDXL_REFINER,
    LOW_AESTHETIC,
    refiner_conditioning,
    refiner_takes,
    schedule_tail,
    switch_sigma,
)

from .refiner_placement import (
    PLACEMENT_CPU,
    PLACEMENT_DEVICE,
    DirectPlacement,
    choose_placement,
    first_parameter,
)

logger = logging.getLogger("sd_webui_fooocus")

OFF_VALUES = ("", "none")


def refiner_requested(name: Any) -> bool:
    return isinstance(name, str) and name.strip().lower() not in OFF_VALUES


# -- the swap -------------------------------------------------------------------------------------------


@dataclass
class RefinerSwap:
    unet: Any  # the refiner's diffusion model (the host's own UNet class)
    kind: str  # KIND_SDXL_REFINER or KIND_SDXL_BASE
    ratio: float
    title: str = ""
    placement: Any = field(default_factory=DirectPlacement)  # refiner_placement: who moves the UNet, and where
    aesthetic: tuple[float, float] = (HIGH_AESTHETIC, LOW_AESTHETIC)
    crop: tuple[float, float] = (0.0, 0.0)
    threshold: float | None = None
    run: Any = None  # the sampler object the threshold was computed for
    holder: Any = None  # the model object whose `diffusion_model` we replaced
    original: Any = None
    evaluations: list[str] = field(default_factory=list)  # "base" / "refiner" per owned call (first pass)
    unet_inputs: dict[str, tuple[int, ...]] | None = None  # shapes of the refiner UNet's first call (probe)
    dropped: set[str] = field(default_factory=set)  # the base's UNet patches kept off the refiner (see below)
    _probe: Any = None
    _patch_filter: Any = None

    # -- σ schedule -----------------------------------------------------------------------------------

    def plan_run(self, sampler: Any, p: Any, first_sigma: float) -> None:
        """Once per sampler run: σ_switch from the run's schedule."""
        self.run = sampler
        self.threshold = None
        full = None
        get_sigmas = getattr(sampler, "get_sigmas", None)
        if callable(get_sigmas):
            try:
                full = get_sigmas(p, int(getattr(p, "steps", 0) or 0))
            except Exception as error:  # a sampler whose schedule cannot be asked for
                logger.warning("[Fooocus] refiner: the sampler's σ schedule is not readable (%r)", error)
        if full is None:
            return
        tail = schedule_tail(full, first_sigma)
        if tail is None:
            logger.warning("[Fooocus] refiner: the first σ %.4g is not in the sampler's schedule; refiner not used in this run",
                           first_sigma)
            return
        self.threshold = switch_sigma(tail, self.ratio)

    def wants_refiner(self, sigma: float) -> bool:
        return refiner_takes(sigma, self.threshold)

    # -- the UNet -------------------------------------------------------------------------------------

    def use_refiner(self, holder: Any, x_shape: tuple[int, ...] = ()) -> None:
        if self.holder is holder and getattr(holder, "diffusion_model", None) is self.unet:
            return
        self.use_base()
        self.placement.before_refiner(self.unet, holder, tuple(x_shape))  # the base is still in place here
        base = holder.diffusion_model
        self.holder, self.original = holder, base
        if self.unet_inputs is None and self._probe is None:
            self._probe = watch_first_call(self.unet, self._record_inputs)
        if self._patch_filter is None:
            self._patch_filter = keep_base_patches_off(self.unet, self.dropped)
        holder.diffusion_model = self.unet

    def use_base(self) -> None:
        holder, original = self.holder, self.original
        if holder is not None and getattr(holder, "diffusion_model", None) is self.unet:
            holder.diffusion_model = original
        self.holder = self.original = None

    def restore(self) -> None:
        """Base UNet back in place; the refiner back to the CPU unless kept on the device."""
        self.use_base()
        self.run = None
        for hook in (self._probe, self._patch_filter):
            if hook is not None:
                hook.remove()
        self._probe = self._patch_filter = None
        if self.dropped:
            logger.info("[Fooocus] refiner %s: the base's %s kept off the refiner's steps (as in Fooocus)",
                        self.title or self.kind, ", ".join(sorted(self.dropped)))
        self.placement.after_generation(self.unet)

    def _record_inputs(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self._probe = None
        self.unet_inputs = shapes
        logger.info("[Fooocus] refiner %s: its UNet's first call got %s", self.title or self.kind,
                    ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items()) or "no tensor inputs")

    # -- conditioning -----------------------------------------------------------------------------------

    def adapt_conds(self, text_cond: Any, text_uncond: Any, width: int, height: int) -> None:
        """Key assignment on the host's own dicts (never new dict objects)."""
        if self.kind == KIND_SDXL_BASE:
            return
        for cond, aesthetic in ((text_cond, self.aesthetic[0]), (text_uncond, self.aesthetic[1])):
            crossattn, vector = cond["crossattn"], cond["vector"]
            if vector.shape[1] != BASE_ADM_DIM:
                continue  # not the base's (the host rebuilds its conds every call, so never twice)
            new_crossattn, new_vector = refiner_conditioning(
                crossattn, vector, self.kind, height, width, aesthetic, self.crop[0], self.crop[1]
            )
            cond["crossattn"] = new_crossattn
            cond["vector"] = new_vector

    # -- the denoiser hook ------------------------------------------------------------------------------

    def on_denoiser(self, p: Any, sampler: Any, holder: Any, params: Any, hires: bool) -> bool:
        """Per owned denoiser call. Returns True when this call runs on the refiner."""
        sigma = float(params.sigma.detach().max())
        if hires or holder is None:
            self.use_base()
            return False
        if sampler is not self.run:
            self.plan_run(sampler, p, sigma)
        if not self.wants_refiner(sigma):
            self.use_base()
            self.evaluations.append("base")
            return False
        x = params.x
        self.use_refiner(holder, tuple(x.shape))
        self.adapt_conds(params.text_cond, params.text_uncond, width=x.shape[-1] * 8, height=x.shape[-2] * 8)
        self.evaluations.append("refiner")
        return True


# Forge passes the base's UNet patches to whatever UNet sits in the model: ControlNet residuals
# (`control`) and the extensions' entries in `transformer_options` (attention/block patches, block
# modifiers, group-norm wrappers: IP-Adapter, FreeU, PAG, …). Made for the base's layers, they fail or
# misfire on another architecture; Fooocus drops them at the swap, and so do we (the host's own
# bookkeeping in `transformer_options`, e.g. cond_or_uncond and sigmas, is kept).
BASE_PATCH_OPTIONS = ("patches", "patches_replace", "block_modifiers", "block_inner_modifiers", "group_norm_wrapper")


def keep_base_patches_off(unet: Any, dropped: set[str]) -> Any:
    """A forward pre-hook on the refiner UNet that removes the base's ControlNet residuals and
    transformer patches from its calls; the names of what it removed are added to `dropped`.
    None when the module takes no hooks."""
    register = getattr(unet, "register_forward_pre_hook", None)
    if not callable(register):
        return None

    def hook(_module: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        changed = False
        if kwargs.get("control") is not None:
            kwargs["control"] = None
            dropped.add("ControlNet")
            changed = True
        options = kwargs.get("transformer_options")
        if isinstance(options, dict):
            present = [key for key in BASE_PATCH_OPTIONS if options.get(key)]
            if present:
                kwargs["transformer_options"] = {k: v for k, v in options.items() if k not in BASE_PATCH_OPTIONS}
                dropped.update(f"transformer_options[{key!r}]" for key in present)
                changed = True
        return (args, kwargs) if changed else None

    try:
        return register(hook, with_kwargs=True)
    except TypeError:  # torch < 2.0
        return None


PROBED_INPUTS = ("context", "y")  # the cross-attention and ADM vector the UNet receives (keyword args)


class _OneShotProbe:
    def __init__(self) -> None:
        self.handle: Any = None

    def remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def watch_first_call(unet: Any, report: Any) -> Any:
    """A forward pre-hook that reports the shapes of the `context` and `y` the UNet's next call
    receives, then removes itself: evidence of what the refiner actually saw. None when the module
    takes no hooks (a stand-in, or a torch without keyword pre-hooks)."""
    register = getattr(unet, "register_forward_pre_hook", None)
    if not callable(register):
        return None
    probe = _OneShotProbe()

    def hook(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        probe.remove()
        report({name: tuple(kwargs[name].shape) for name in PROBED_INPUTS if isinstance(kwargs.get(name), torch.Tensor)})

    try:
        probe.handle = register(hook, with_kwargs=True)
    except TypeError:  # torch < 2.0
        return None
    return probe


# -- building the refiner's UNet ---------------------------------------------------------------------------


def unet_adm_width(unet: Any) -> int | None:
    """The ADM input width of a host UNet (`label_emb.0.0` Linear), None without ADM."""
    get = getattr(unet, "get_parameter", None)
    if not callable(get):
        return None
    try:
        weight = get("label_emb.0.0.weight")
    except (AttributeError, KeyError):
        return None
    return int(weight.shape[1]) if weight.ndim == 2 else None


def sdxl_refiner_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments of the SDXL refiner UNet (`sd_xl_refiner.yaml` network_config), with
    the channel counts read from the file's tensors."""
    in_weight = state["input_blocks.0.0.weight"]
    out_weight = state["out.2.weight"]
    context = {int(v.shape[1]) for k, v in state.items() if k.endswith("attn2.to_k.weight")}
    return {
        "adm_in_channels": int(state["label_emb.0.0.weight"].shape[1]),
        "num_classes": "sequential",
        "use_checkpoint": False,
        "in_channels": int(in_weight.shape[1]),
        "out_channels": int(out_weight.shape[0]),
        "model_channels": int(in_weight.shape[0]),
        "attention_resolutions": [4, 2],
        "num_res_blocks": 2,
        "channel_mult": [1, 2, 4, 4],
        "num_head_channels": 64,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": True,
        "transformer_depth": 4,
        "legacy": False,
        "context_dim": max(context) if context else 1280,
    }


def build_refiner_unet(base_unet: Any, path: str, kind: str, construct_refiner: Any = None) -> Any:
    """The refiner's UNet as the host's own class, weights from `path` (UNet tensors only), on the CPU.

    - SDXL base-type refiner: a structural copy of the base UNet (same class, same architecture) whose
      every parameter is then overwritten from the file (strict load: a missing or extra tensor fails).
    - SDXL refiner: `construct_refiner(config)` builds the host's class for the refiner architecture.
    """
    from lib_fooocus.refiner.unet_file import (
        KIND_SD1,
        KIND_SD2,
        RefinerFileError,
        load_unet_into,
        unet_shape_state,
    )

    if kind in (KIND_SD1, KIND_SD2):
        msg = (f"{os.path.basename(path)} is an SD{'1.x' if kind == KIND_SD1 else '2.x'} model; only SDXL refiners and "
               "SDXL base-type models can refine an SDXL base")
        raise RefinerFileError(msg)
    if kind not in (KIND_SDXL_BASE, KIND_SDXL_REFINER):
        msg = f"{os.path.basename(path)} is not a recognised SDXL UNet (no model.diffusion_model.label_emb of width 2816/2560)"
        raise RefinerFileError(msg)
    parameter = first_parameter(base_unet)
    dtype = parameter.dtype if parameter is not None else torch.float32
    if kind == KIND_SDXL_BASE:
        unet = _empty_copy(base_unet, dtype)
    else:
        if construct_refiner is None:
            msg = "this WebUI's UNet class for the SDXL refiner architecture is not known; use an SDXL base-type model as refiner"
            raise RefinerFileError(msg)
        shapes = unet_shape_state(path)
        unet = _materialize(construct_refiner(sdxl_refiner_config(shapes), shapes), dtype)
    load_unet_into(unet, path)  # every parameter and buffer, one tensor at a time
    unet.to(device="cpu", dtype=dtype)
    if isinstance(vars(base_unet).get("dtype"), torch.dtype):
        unet.dtype = dtype  # A1111 sets this on its loaded UNet (read for --upcast-sampling); sgm's own says fp32
    unet.eval()
    unet.requires_grad_(False)
    return unet


def _materialize(unet: Any, dtype: torch.dtype) -> Any:
    """A module built on the "meta" device (no memory, no random init) gets uninitialised CPU storage
    of the target dtype, to be filled from the file. Buffers outside the state dict would stay
    uninitialised, so such a module is refused."""
    if not any(t.is_meta for t in [*unet.parameters(), *unet.buffers()]):
        return unet
    saved = set(unet.state_dict())
    unsaved = [name for name, _ in unet.named_buffers() if name not in saved]
    if unsaved:
        msg = f"cannot build the refiner UNet without weights for its buffers {unsaved[:3]}"
        raise RuntimeError(msg)
    return unet.to(dtype=dtype).to_empty(device="cpu")


# The per-module dicts of forward/backward hooks (torch ≥ 2.0 names; missing ones are skipped).
HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
              "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")


_NOT_COPIED = object()  # stands in, during the copy, for a base module's method override


def method_overrides(module: Any) -> list[str]:
    """Instance attributes that replace one of the module's class methods (e.g. sd-webui-controlnet's
    `unet.forward = …` for its generation)."""
    cls = type(module)
    return [name for name, value in vars(module).items()
            if callable(value) and not isinstance(value, torch.nn.Module) and inspect.isfunction(getattr(cls, name, None))]


def _empty_copy(base_unet: Any, dtype: torch.dtype) -> Any:
    """A copy of the base UNet's module tree whose parameters are new, uninitialised CPU tensors of
    `dtype` (to be filled from the file; the base's weights are never copied). Buffers are copied.
    The copy gets none of the base's forward/backward hooks and instance-level method overrides:
    what a host or extension put on the base when the copy is made is meant for that generation (its
    handles and undo reach only the base), and on the cached refiner it would run in every later
    generation; its objects are not deep-copied either."""
    memo: dict[int, Any] = {}
    for tensor in base_unet.parameters():
        memo[id(tensor)] = torch.nn.Parameter(torch.empty(tensor.shape, dtype=dtype, device="cpu"), requires_grad=False)
    for tensor in base_unet.buffers():
        memo[id(tensor)] = tensor.detach().to("cpu", copy=True)
    for module in base_unet.modules():
        for name in HOOK_DICTS:
            hooks = vars(module).get(name)
            if hooks is not None:
                memo[id(hooks)] = type(hooks)()
        for name in method_overrides(module):
            memo[id(vars(module)[name])] = _NOT_COPIED
    unet = copy.deepcopy(base_unet, memo)
    for module in unet.modules():
        for name in [n for n, value in vars(module).items() if value is _NOT_COPIED]:
            delattr(module, name)  # the class's own method again
    forget_network_state(unet)
    return unet


NETWORK_ATTRIBUTE_PREFIXES = ("network_", "lora_")
NETWORK_ATTRIBUTES = ("forge_online_loras",)  # Forge main's "online" LoRA patches, read in each layer's forward


def forget_network_state(unet: Any) -> None:
    """Drop what LoRA/network code and memory managers left on the base's modules, so the copy starts
    as a plain module:
    - A1111's built-in Lora keeps `network_layer_name`, `network_current_names`,
      `network_weights_backup` … per module, and Forge main's online LoRAs `forge_online_loras`: on the
      copy they would apply the base's LoRAs (or restore the base's backed-up weights) into the refiner.
      Without them the refiner is never touched by networks (LoRAs apply to the base only).
    - Forge main's partial loading ("CPU swap") sets `parameters_manual_cast` on the layers it keeps
      off the device and saves the layer's own value in `prev_parameters_manual_cast`: the copy gets
      the layer's own value back, and Forge decides again when it loads the refiner."""
    for module in unet.modules():
        names = [n for n in vars(module) if n.startswith(NETWORK_ATTRIBUTE_PREFIXES) or n in NETWORK_ATTRIBUTES]
        for name in names:
            delattr(module, name)
        if "prev_parameters_manual_cast" in vars(module):
            module.parameters_manual_cast = module.prev_parameters_manual_cast
            del module.prev_parameters_manual_cast


# -- per generation: resolve, check, load ------------------------------------------------------------------

SETTING_PLACEMENT = "fooocus_refiner_placement"
SETTING_KEEP_CACHED = "fooocus_refiner_keep_cached"
PLACEMENT_LABELS = {"CPU RAM": PLACEMENT_CPU, "Compute device": PLACEMENT_DEVICE}


def host_option(name: str, default: Any) -> Any:
    try:
        from modules import shared
    except ImportError:
        return default
    value = getattr(getattr(shared, "opts", None), name, None)
    return default if value is None else value


def host_checkpoint(name: str) -> tuple[str, str] | None:
    """(title, file path) of a checkpoint the host knows by title, file name or short hash, as the
    host's own `refiner_checkpoint` resolves it; None when unknown."""
    from modules import sd_models

    info = sd_models.get_closet_checkpoint_match(name)
    if info is None:
        return None
    return str(getattr(info, "title", name)), str(info.filename)


def base_unet_holder(p: Any) -> Any:
    """The model object whose `diffusion_model` the host calls: Forge `forge_objects.unet.model`,
    A1111 `sd_model.model`."""
    sd_model = getattr(p, "sd_model", None)
    unet_patcher = getattr(getattr(sd_model, "forge_objects", None), "unet", None)
    for candidate in (getattr(unet_patcher, "model", None), getattr(sd_model, "model", None)):
        if candidate is not None and getattr(candidate, "diffusion_model", None) is not None:
            return candidate
    return None


def base_checkpoint_file(p: Any) -> str | None:
    info = getattr(getattr(p, "sd_model", None), "sd_checkpoint_info", None)
    filename = getattr(info, "filename", None)
    return str(filename) if filename else None


def same_file(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def host_refiner_constructor(base_unet: Any) -> Any:
    """How to build the SDXL refiner architecture with the host's own UNet class, where known.
    A1111: `sgm`'s UNetModel with the `sd_xl_refiner.yaml` arguments. Forge main: its
    `IntegratedUNet2DConditionModel.from_config` with the config `huggingface_guess` derives from the
    refiner's own tensors (as Forge's loader does), under Forge's operations on the CPU. Forge's 2024
    line: not known yet (None: the SDXL refiner is refused with a note there; SDXL base-type refiners
    work everywhere)."""
    cls = type(base_unet)
    if cls.__module__.startswith("sgm."):
        def construct_sgm(config: dict[str, Any], _state: dict[str, Any]) -> Any:
            with torch.device("meta"):  # no memory, no random init: the weights come from the file
                return cls(**config, spatial_transformer_attn_type="softmax-xformers")

        return construct_sgm
    if cls.__module__.startswith("backend.nn.unet"):
        def construct_forge_main(_config: dict[str, Any], state: dict[str, Any]) -> Any:
            import huggingface_guess
            from backend.operations import using_forge_operations

            guess = huggingface_guess.guess({f"model.diffusion_model.{k}": v for k, v in state.items()})
            parameter = first_parameter(base_unet)
            dtype = parameter.dtype if parameter is not None else torch.float32
            manual_cast = forge_manual_cast(base_unet)
            with torch.device("meta"), using_forge_operations(device=torch.device("meta"), dtype=dtype,
                                                              manual_cast_enabled=manual_cast):
                unet = cls.from_config(guess.unet_config)  # no memory, no random init: the weights come from the file
            if hasattr(unet, "_internal_dict"):
                unet._internal_dict = guess.unet_config
            return unet

        return construct_forge_main
    return None


def forge_manual_cast(base_unet: Any) -> bool:
    """Whether Forge built the base's layers to cast their weights to the computation dtype at each call
    (storage dtype ≠ computation dtype, e.g. an fp8 or bf16 UNet computed in fp16/fp32): the refiner is
    stored in the base's dtype, so it needs the same. Read from the layers' own flag (the saved one
    when Forge's partial loading has switched it on)."""
    for module in base_unet.modules():
        if "prev_parameters_manual_cast" in vars(module):
            return bool(module.prev_parameters_manual_cast)
        if hasattr(module, "parameters_manual_cast"):
            return bool(module.parameters_manual_cast)
    return False


class RefinerUnavailable(Exception):
    """Why the refiner is off for this generation (the message is the user's note)."""


def prepare_refiner(state: Any, resolve: Any = host_checkpoint, construct: Any = host_refiner_constructor,
                    place: Any = choose_placement) -> RefinerSwap | None:
    """The refiner swap for this generation, or None (with one log line and a `Fooocus note` saying
    why). Never raises: a refiner problem must not stop the generation."""
    from lib_fooocus.refiner.unet_file import CACHE, RefinerFileError

    params = state.params
    name = str(getattr(params, "refiner_checkpoint", "") or "")
    if not refiner_requested(name):
        return None
    p = state.p
    try:
        found = resolve(name.strip())
        if found is None:
            raise RefinerUnavailable(f"refiner checkpoint {name!r} is not in the checkpoint list")
        title, path = found
        if same_file(path, base_checkpoint_file(p)):
            state.log_once("refiner-is-base", f"refiner {title} is the loaded model: refiner off (as in Fooocus).")
            state.note_infotext("refiner equals the base model, off")
            return None
        holder = base_unet_holder(p)
        if holder is None:
            raise RefinerUnavailable("this model's UNet is not reachable (no diffusion_model)")
        base_unet = holder.diffusion_model
        if unet_adm_width(base_unet) != 2816:
            raise RefinerUnavailable("the loaded model is not an SDXL base model")
        unet, kind, cached = CACHE.get(path, lambda file, kind: build_refiner_unet(base_unet, file, kind, construct(base_unet)))
    except (RefinerUnavailable, RefinerFileError) as error:
        _refuse(state, str(error))
        return None
    except Exception as error:  # anything unexpected: still generate, without refiner
        _refuse(state, f"refiner {name!r} could not be prepared ({type(error).__name__}: {error})")
        return None
    mode = PLACEMENT_LABELS.get(str(host_option(SETTING_PLACEMENT, "CPU RAM")), PLACEMENT_CPU)
    placement = place(mode, p, unet, lambda name, create: CACHE.attachment(unet, name, create))
    swap = RefinerSwap(
        unet=unet,
        kind=kind,
        ratio=float(params.refiner_switch),
        title=title,
        placement=placement,
        aesthetic=(float(host_option("sdxl_refiner_high_aesthetic_score", HIGH_AESTHETIC)),
                   float(host_option("sdxl_refiner_low_aesthetic_score", LOW_AESTHETIC))),
        crop=(float(host_option("sdxl_crop_top", 0) or 0), float(host_option("sdxl_crop_left", 0) or 0)),
    )
    logger.info("[Fooocus] refiner %s (%s) %s, switch at %g, placed by %s", title, kind,
                "from the cache" if cached else "loaded from disk", swap.ratio, type(placement).__name__)
    take_over_host_refiner(state)
    return swap


def _refuse(state: Any, reason: str) -> None:
    state.log_once("refiner-refused", f"{reason}; generating without refiner.")
    state.note_infotext(f"refiner off: {reason}")


def take_over_host_refiner(state: Any) -> None:
    """The host's own refiner (resolved into `p.refiner_checkpoint_info` before `process()`) is not
    run for this generation: ours replaces it."""
    p = state.p
    if getattr(p, "refiner_checkpoint_info", None) is None:
        return
    p.refiner_checkpoint_info = None
    state.log_once("host-refiner", "the WebUI's own refiner is also set: the Fooocus refiner replaces it for this generation.")
    state.note_infotext("host refiner replaced by the Fooocus refiner")


def finish_generation(swap: RefinerSwap | None) -> None:
    """After the generation: drop the cached UNet when the setting says so."""
    from lib_fooocus.refiner.unet_file import CACHE

    if swap is not None and not bool(host_option(SETTING_KEEP_CACHED, True)):
        CACHE.clear()
