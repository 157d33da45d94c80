"""Contract harness: the Forge objects the adapter touches, for both lines (Forge main `backend/sampling/sampling_function.py`,
the 2024 line `ldm_patched/modules/samplers.py` + `modules_forge/forge_sampler.py`).

- Module layout: Forge main provides `modules_forge` + `backend.patcher.unet` (no `ldm_patched`);
  the early-2024 line provides `modules_forge`, `modules_forge.unet_patcher` and `ldm_patched`.
- `UnetPatcher`: `clone()` deep-copies `model_options`; `set_model_sampler_cfg_function` (single
  slot), `set_model_sampler_post_cfg_function` (appends), `add_conditioning_modifier`; `.model`
  with `.model_sampling.sigmas` (early line) or `.predictor.sigmas` (main).
- `ForgeObjects` with `shallow_copy()`; the working copy is reset from `after_applying_lora` before
  each `process_before_every_sampling`; Forge main calls that hook twice in the hires pass.
- `CFGDenoiser.forward`: `apply_refiner(self, x)` (a switch brings fresh `forge_objects`), reconstruct,
  `on_cfg_denoiser` with UNBATCHED x/σ and the `denoiser` (read back), then the sampling function:
  conditioning modifiers (8-tuple) → CFG-1 optimisation (uncond not evaluated, uncond_pred = 0) →
  strength-weighted cond average → `sampler_cfg_function` (result `x − fn(args)`) or plain CFG
  (Forge main: × the summed AND strength when ≠ 1) → post-CFG chain; then mask blend and
  `on_cfg_after_cfg` (read back). `on_cfg_denoised` is never fired. Forge main: `hr_cfg` in the
  hires pass, skip-early / NGMS as `cond_scale = 1`.
"""

from __future__ import annotations

import copy
import math
import sys
import types
from typing import Any, ClassVar

import torch

from . import toy
from .a1111_host import (
    A1111Host,
    CFGDenoiser,
    DictWithShape,
    InterruptedException,
    KDiffusionSampler,
    Processing,
    ToyModel,
    reconstruct_cond_batch,
    reconstruct_multicond_batch,
)


class ForgeDictWithShape(DictWithShape):
    def __init__(self, x, shape=None):
        dict.__init__(self, x)

    def advanced_indexing(self, indices):
        return ForgeDictWithShape({key: value[indices] for key, value in self.items()})


class ModelSampling:
    def __init__(self, sigmas):
        self.sigmas = sigmas


class ForgeModel:
    """F-old BaseModel (`model_sampling`) / F-main KModel (`predictor`); `apply_model` returns x0."""

    def __init__(self, toy_model: ToyModel, line: str):
        self.toy = toy_model
        self.diffusion_model = toy_model.unet  # KModel / BaseModel `.diffusion_model`
        if line == "forge-main":
            self.predictor = ModelSampling(toy_model.sigmas)
        else:
            self.model_sampling = ModelSampling(toy_model.sigmas)

    def apply_model(self, x, t, c_crossattn=None, y=None, **kwargs):
        return self.diffusion_model.denoised(x, t, c_crossattn, y)


class UnetPatcher:
    def __init__(self, model):
        self.model = model
        self.model_options: dict[str, Any] = {"transformer_options": {}}

    def clone(self):
        n = type(self)(self.model)
        n.model_options = copy.deepcopy(self.model_options)
        return n

    def set_model_sampler_cfg_function(self, sampler_cfg_function, disable_cfg1_optimization=False):
        self.model_options["sampler_cfg_function"] = sampler_cfg_function
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_post_cfg_function(self, post_cfg_function, disable_cfg1_optimization=False):
        self.model_options["sampler_post_cfg_function"] = [*self.model_options.get("sampler_post_cfg_function", []), post_cfg_function]
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def append_model_option(self, k, v, ensure_uniqueness=False):
        if k not in self.model_options:
            self.model_options[k] = []
        if ensure_uniqueness and v in self.model_options[k]:
            return
        self.model_options[k].append(v)

    def add_conditioning_modifier(self, modifier, ensure_uniqueness=False):
        self.append_model_option("conditioning_modifiers", modifier, ensure_uniqueness)


class ForgeObjects:
    def __init__(self, unet, clip=None, vae=None, clipvision=None):
        self.unet, self.clip, self.vae, self.clipvision = unet, clip, vae, clipvision

    def shallow_copy(self):
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class ForgeSdModel(ToyModel):
    """`shared.sd_model` with the three `forge_objects` copies."""

    def attach(self, line: str):
        unet = UnetPatcher(ForgeModel(self, line))
        self.forge_objects_original = ForgeObjects(unet)
        self.forge_objects_after_applying_lora = self.forge_objects_original.shallow_copy()
        self.forge_objects = self.forge_objects_original.shallow_copy()
        return self


def compile_conditions(text_uncond):
    if isinstance(text_uncond, torch.Tensor):
        return [{"cross_attn": text_uncond, "model_conds": {"c_crossattn": text_uncond}}]
    return [{"cross_attn": text_uncond["crossattn"], "pooled_output": text_uncond["vector"],
             "model_conds": {"c_crossattn": text_uncond["crossattn"], "y": text_uncond["vector"]}}]


def compile_weighted_conditions(text_cond, conds_list):
    results = []
    for group in map(list, zip(*conds_list)):
        indices = [index for index, _ in group]
        weight = group[-1][1]
        feed = text_cond.advanced_indexing(indices) if hasattr(text_cond, "advanced_indexing") else text_cond[indices]
        entry = compile_conditions(feed)[0]
        entry["strength"] = weight
        results.append(entry)
    return results


def calc_cond_uncond_batch(model, cond, uncond, x, timestep):
    def run(entries):
        total, count = torch.zeros_like(x), torch.ones_like(x) * 1e-37
        for entry in entries:
            mc = entry["model_conds"]
            out = model.apply_model(x, timestep, c_crossattn=mc["c_crossattn"], y=mc.get("y"))
            mult = entry.get("strength", 1.0)
            total += out * mult
            count += mult
        return total / count

    cond_pred = run(cond)
    uncond_pred = run(uncond) if uncond is not None else torch.zeros_like(x)
    return cond_pred, uncond_pred


class ForgeCFGDenoiser:
    def __init__(self, sampler, host):
        self.host, self.sampler = host, sampler
        self.model_wrap = None
        self.mask = self.nmask = self.init_latent = None
        self.step, self.total_steps, self.p = 0, 1, None

    @property
    def inner_model(self):
        if self.model_wrap is None:
            wrap = types.SimpleNamespace(inner_model=self.host.shared.sd_model, sigmas=self.host.shared.sd_model.sigmas)
            self.model_wrap = wrap
        return self.model_wrap

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    update_inner_model = CFGDenoiser.update_inner_model

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        host, sc = self.host, self.host.script_callbacks
        if host.state.interrupted:
            raise InterruptedException
        if host.apply_refiner(self, x):
            cond, uncond = self.sampler.sampler_extra_args["cond"], self.sampler.sampler_extra_args["uncond"]
        conds_list, tensor = reconstruct_multicond_batch(cond, self.step)
        uncond = reconstruct_cond_batch(uncond, self.step)
        tensor, uncond = _forge_dict(tensor), _forge_dict(uncond)

        params = sc.CFGDenoiserParams(x, image_cond, sigma, host.state.sampling_step, host.state.sampling_steps, tensor, uncond, self)
        sc.cfg_denoiser_callback(params)
        p = self.p
        if host.kind == "forge-main":
            if p.is_hr_pass and p.hr_cfg is not None:
                cond_scale = p.hr_cfg
            skip_early = host.opts.skip_early_cond != 0.0 and self.step / self.total_steps <= host.opts.skip_early_cond
            ngms = (self.step % 2 or host.opts.s_min_uncond_all) and s_min_uncond > 0 and sigma[0] < s_min_uncond
            if skip_early or ngms:  # Forge main skips the uncond by CFG 1
                cond_scale = 1.0
        denoised = host.sampling_function(self, params, cond_scale, conds_list)
        if self.mask is not None:
            denoised = denoised * self.nmask + self.init_latent * self.mask
        self.sampler.last_latent = denoised
        after = sc.AfterCFGCallbackParams(denoised, host.state.sampling_step, host.state.sampling_steps)
        sc.cfg_after_cfg_callback(after)
        denoised = after.x
        host.records[-1]["denoised"] = denoised.clone()
        self.step += 1
        host.state.sampling_step = self.step
        return denoised


def _forge_dict(cond):
    return ForgeDictWithShape(dict(cond)) if isinstance(cond, dict) else cond


class ForgeHost(A1111Host):
    """Forge main (`line="forge-main"`) or its early-2024 line (`line="forge-classic"`)."""

    sampler_classes: ClassVar[dict[str, type]] = {"Euler": KDiffusionSampler, "DPM++ 2M": KDiffusionSampler,
                                                  "Heun": KDiffusionSampler, "DPM2": KDiffusionSampler}

    def __init__(self, line="forge-main", model="sdxl", sigma_scale=1.0, refiner_switch_step=None):
        self.kind = line
        super().__init__(version=(1, 10) if line == "forge-main" else (1, 8), model=model, sigma_scale=sigma_scale,
                         callbacks_take_name=(line == "forge-main"), refiner_switch_step=refiner_switch_step)
        self.shared.sd_model = ForgeSdModel(model, sigma_scale).attach(line)

    @property
    def has_process_before_every_sampling(self) -> bool:
        return True

    def module_table(self):
        table = super().module_table()
        forge = types.ModuleType("modules_forge")
        forge.__path__ = []
        table["modules_forge"] = forge
        if self.kind == "forge-main":
            for name in ("backend", "backend.patcher"):
                module = types.ModuleType(name)
                module.__path__ = []
                table[name] = module
            unet_module = types.ModuleType("backend.patcher.unet")
            unet_module.UnetPatcher = UnetPatcher
            table["backend.patcher.unet"] = unet_module
        else:
            table["ldm_patched"] = types.ModuleType("ldm_patched")
            unet_module = types.ModuleType("modules_forge.unet_patcher")
            unet_module.UnetPatcher = UnetPatcher
            table["modules_forge.unet_patcher"] = unet_module
        return table

    def install(self, monkeypatch):
        for name in ("backend", "backend.patcher", "backend.patcher.unet", "ldm_patched", "modules_forge.unet_patcher"):
            monkeypatch.setitem(sys.modules, name, None)
        for name, module in self.module_table().items():
            monkeypatch.setitem(sys.modules, name, module)

    def make_denoiser(self, sampler):
        return ForgeCFGDenoiser(sampler, self)

    def processing(self, **kwargs):
        return ForgeProcessing(self, **kwargs)

    def make_refiner(self):
        return ForgeSdModel("refiner").attach(self.kind)

    def sampling_function(self, denoiser, params, cond_scale, conds_list):
        """F-old `forge_sample` + `ldm_patched` `sampling_function`, or F-main `sampling_function`."""
        sd_model = denoiser.inner_model.inner_model
        unet = sd_model.forge_objects.unet
        model, model_options = unet.model, unet.model_options
        x, timestep = params.x, params.sigma
        uncond = compile_conditions(params.text_uncond)
        cond = compile_weighted_conditions(params.text_cond, conds_list)
        seed = 0
        for modifier in model_options.get("conditioning_modifiers", []):
            model, x, timestep, uncond, cond, cond_scale, model_options, seed = modifier(
                model, x, timestep, uncond, cond, cond_scale, model_options, seed)
        edit_strength = sum(item.get("strength", 1) for item in cond)
        uncond_ = None if math.isclose(cond_scale, 1.0) and not model_options.get("disable_cfg1_optimization", False) else uncond
        cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond_, x, timestep)
        if "sampler_cfg_function" in model_options:
            args = {"cond": x - cond_pred, "uncond": x - uncond_pred, "cond_scale": cond_scale, "timestep": timestep,
                    "input": x, "sigma": timestep, "cond_denoised": cond_pred, "uncond_denoised": uncond_pred,
                    "model": model, "model_options": model_options}
            cfg_result = x - model_options["sampler_cfg_function"](args)
        elif self.kind == "forge-main" and not math.isclose(edit_strength, 1.0):
            cfg_result = uncond_pred + (cond_pred - uncond_pred) * cond_scale * edit_strength
        else:
            cfg_result = uncond_pred + (cond_pred - uncond_pred) * cond_scale
        plain = cfg_result
        for fn in model_options.get("sampler_post_cfg_function", []):
            args = {"denoised": cfg_result, "cond": cond, "uncond": uncond, "model": model, "uncond_denoised": uncond_pred,
                    "cond_denoised": cond_pred, "sigma": timestep, "model_options": model_options, "input": x}
            cfg_result = fn(args)
        self.records.append({"x": x.clone(), "sigma": timestep.clone(), "cond_pred": cond_pred.clone(),
                             "uncond_pred": uncond_pred.clone(), "scale": float(cond_scale), "host_result": plain.clone(),
                             "uncond_evaluated": uncond_ is not None, "unet": unet, "step": denoiser.step})
        return cfg_result


class ForgeProcessing(Processing):
    def __init__(self, host, **kwargs):
        kwargs.setdefault("hr_cfg", None)
        super().__init__(host, **kwargs)

    def reset_forge_objects(self):
        model = self.sd_model
        model.forge_objects = model.forge_objects_after_applying_lora.shallow_copy()

    def before_every_sampling(self, **kwargs):
        self.reset_forge_objects()
        self.host.script.process_before_every_sampling(self, **kwargs)

    def sample_hr_pass(self, samples):
        if self.host.kind != "forge-main":
            return super().sample_hr_pass(samples)
        # F-main: the A1111 1.10 call, then a reset of forge_objects and a second call
        original = self.before_every_sampling

        def twice(**kwargs):
            self.host.script.process_before_every_sampling(self, **kwargs)
            original(**kwargs)

        self.before_every_sampling = twice
        try:
            return super().sample_hr_pass(samples)
        finally:
            del self.before_every_sampling


def unet_in_use(host) -> UnetPatcher:
    return host.shared.sd_model.forge_objects.unet


def post_cfg_functions(unet) -> list[Any]:
    return list(unet.model_options.get("sampler_post_cfg_function", []))


def noop_tensor(x):
    return x


__all__ = ["ForgeHost", "UnetPatcher", "post_cfg_functions", "toy", "unet_in_use"]
