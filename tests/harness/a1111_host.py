"""Contract harness: the A1111 (1.6 – 1.10) objects the Fooocus adapter touches, as A1111's
`modules/sd_samplers_cfg_denoiser.py` (CFGDenoiser.forward) and `modules/script_callbacks.py` define them.

Imitated, and nothing more:
- `modules.script_callbacks`: `on_cfg_denoiser/on_cfg_denoised/on_cfg_after_cfg` with `name=` only
  from 1.9, `remove_callbacks_for_function`, exceptions in callbacks caught and reported, the three
  params classes with their per-version fields (`CFGDenoiserParams.denoiser` only from 1.8).
- `modules.prompt_parser`: `DictWithShape` (`.shape` = crossattn's), the multicond structures and
  `reconstruct_*` allocating fresh tensors on every call.
- `CFGDenoiser.forward` in the documented order: interrupt check, reconstruct, batched
  `[cond rows…, B uncond rows]` inputs, `on_cfg_denoiser` (read back), NGMS / 1.10 skip-early
  uncond skipping (cond rows copied into the uncond slots), UNet, `on_cfg_denoised` (NOT read back),
  `combine_denoised` with conds_list weights (1.10: × `cond_scale_miltiplier`), mask blend,
  `on_cfg_after_cfg` (read back), `step += 1`.
- k-diffusion samplers (`model_wrap.sigmas`, `sampler_extra_args`, InterruptedException caught in
  the sampler) and a timestep sampler (DDIM; module `modules.sd_samplers_timesteps`, eps + integer t).
- `p`: the fields read by the adapter, `sample()` with the txt2img/img2img/hires flow, and a
  `process_images` driver calling the Script hooks in the documented order.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F

from . import toy

# -- prompt_parser -----------------------------------------------------------------------------------


class DictWithShape(dict):
    """A1111's flavour: constructor `DictWithShape(x, shape)`; `.shape` is crossattn's shape."""

    def __init__(self, x, shape):
        super().__init__(x)

    @property
    def shape(self):
        return self["crossattn"].shape


class ScheduledPromptConditioning(NamedTuple):
    end_at_step: int
    cond: Any


class ComposableScheduledPromptConditioning:
    def __init__(self, schedules, weight=1.0):
        self.schedules = schedules
        self.weight = weight


class MulticondLearnedConditioning:
    def __init__(self, shape, batch):
        self.shape = shape
        self.batch = batch


def _stack(rows: list[Any]) -> Any:
    if isinstance(rows[0], dict):
        return DictWithShape({key: torch.stack([row[key] for row in rows]) for key in rows[0]}, None)
    return torch.stack(rows)


def _at_step(schedules, step):
    for entry in schedules:
        if step <= entry.end_at_step:
            return entry.cond
    return schedules[-1].cond


def reconstruct_cond_batch(c, current_step):
    return _stack([_at_step(schedules, current_step) for schedules in c])


def reconstruct_multicond_batch(c, current_step):
    rows, conds_list = [], []
    for composables in c.batch:
        entries = []
        for composable in composables:
            entries.append((len(rows), composable.weight))
            rows.append(_at_step(composable.schedules, current_step))
        conds_list.append(entries)
    return conds_list, _stack(rows)


def parse_and_prompt(prompt: str) -> list[tuple[str, float]]:
    parts = []
    for part in prompt.split(" AND "):
        text, weight = part, 1.0
        if ":" in part:
            head, tail = part.rsplit(":", 1)
            try:
                text, weight = head, float(tail)
            except ValueError:
                pass
        parts.append((text.strip(), weight))
    return parts


# -- script_callbacks ------------------------------------------------------------------------------


class InterruptedException(BaseException):
    pass


class ScriptCallback(NamedTuple):
    script: str
    callback: Any
    name: str | None


def make_script_callbacks(host: A1111Host) -> types.ModuleType:
    module = types.ModuleType("modules.script_callbacks")
    module.callback_map = {"cfg_denoiser": [], "cfg_denoised": [], "cfg_after_cfg": []}
    with_denoiser = host.version >= (1, 8)

    class CFGDenoiserParams:
        def __init__(self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, *rest):
            self.x, self.image_cond, self.sigma = x, image_cond, sigma
            self.sampling_step, self.total_sampling_steps = sampling_step, total_sampling_steps
            self.text_cond, self.text_uncond = text_cond, text_uncond
            if with_denoiser:
                self.denoiser = rest[0] if rest else None

    class CFGDenoisedParams:
        def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
            self.x, self.sampling_step, self.total_sampling_steps, self.inner_model = (
                x, sampling_step, total_sampling_steps, inner_model)

    class AfterCFGCallbackParams:
        def __init__(self, x, sampling_step, total_sampling_steps):
            self.x, self.sampling_step, self.total_sampling_steps = x, sampling_step, total_sampling_steps

    def add(category, callback, name=None):
        module.callback_map[category].append(ScriptCallback("extensions/sd-webui-fooocus/scripts/fooocus.py", callback, name))

    def make_register(category):
        if host.version >= (1, 9) or host.callbacks_take_name:
            def register(callback, *, name=None):
                add(category, callback, name)
        else:
            def register(callback):
                add(category, callback)
        register.__name__ = f"on_{category}"
        return register

    def make_fire(category):
        def fire(params):
            for entry in list(module.callback_map[category]):
                try:
                    entry.callback(params)
                except Exception as exc:  # the host reports and continues
                    host.errors.append(exc)
        return fire

    def remove_callbacks_for_function(callback_func):
        for entries in module.callback_map.values():
            for entry in [e for e in entries if e.callback == callback_func]:
                entries.remove(entry)

    for category in module.callback_map:
        setattr(module, f"on_{category}", make_register(category))
    module.cfg_denoiser_callback = make_fire("cfg_denoiser")
    module.cfg_denoised_callback = make_fire("cfg_denoised")
    module.cfg_after_cfg_callback = make_fire("cfg_after_cfg")
    module.remove_callbacks_for_function = remove_callbacks_for_function
    module.CFGDenoiserParams = CFGDenoiserParams
    module.CFGDenoisedParams = CFGDenoisedParams
    module.AfterCFGCallbackParams = AfterCFGCallbackParams
    return module


def registered_count(script_callbacks: types.ModuleType) -> int:
    return sum(len(v) for v in script_callbacks.callback_map.values())


# -- model -------------------------------------------------------------------------------------------


@dataclass
class ToyModel:
    """`shared.sd_model`: kind "sdxl" (vector 2816), "refiner" (2560) or "sd15" (plain tensor conds)."""

    kind: str = "sdxl"
    sigma_scale: float = 1.0
    unet: toy.ToyUNet = field(init=False)
    sigmas: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.unet = toy.ToyUNet(self.kind)
        self.sigmas = toy.training_sigmas(self.sigma_scale)
        # sgm's `DiffusionEngine.model` (OpenAIWrapper): the UNet the CompVis wrapper calls
        self.model = types.SimpleNamespace(diffusion_model=self.unet)


class CompVisDenoiser:
    """k-diffusion wrapper: `.sigmas`; returns x0 = x − σ·ε."""

    def __init__(self, sd_model):
        self.inner_model = sd_model
        self.sigmas = sd_model.sigmas

    def __call__(self, x, sigma, cond):
        crossattn, vector = _unpack(cond)
        return self.inner_model.model.diffusion_model.denoised(x, sigma, crossattn, vector)


class CompVisTimestepsDenoiser:
    """Timestep wrapper (no σ table): `sigma` is the integer timestep, the output is eps."""

    def __init__(self, sd_model):
        self.inner_model = sd_model

    def __call__(self, x, t, cond):
        crossattn, vector = _unpack(cond)
        sigma = self.inner_model.sigmas[t.long()]
        return self.inner_model.unet.eps(x * torch.sqrt(sigma**2 + 1).reshape(-1, 1, 1, 1), sigma, crossattn, vector)


def _unpack(cond):
    if "crossattn" in cond:
        return cond["crossattn"], cond.get("vector")
    return cond["c_crossattn"][0], None


def catenate_conds(conds):
    if not isinstance(conds[0], dict):
        return torch.cat(conds)
    return {key: torch.cat([c[key] for c in conds]) for key in conds[0]}


def subscript_cond(cond, a, b):
    if not isinstance(cond, dict):
        return cond[a:b]
    return {key: value[a:b] for key, value in cond.items()}


# -- CFGDenoiser ---------------------------------------------------------------------------------------


class CFGDenoiser:
    wrapper_class = CompVisDenoiser

    def __init__(self, sampler, host):
        self.host = host
        self.sampler = sampler
        self.model_wrap = None
        self.mask = self.nmask = self.init_latent = None
        self.step = 0
        self.total_steps = 1
        self.p = None
        if host.version >= (1, 10):
            self.cond_scale_miltiplier = 1.0

    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = self.wrapper_class(self.host.shared.sd_model)
        return self.model_wrap

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def update_inner_model(self):
        self.model_wrap = None
        c, uc = self.p.setup_conds(*self.p.current_size)
        self.sampler.sampler_extra_args["cond"], self.sampler.sampler_extra_args["uncond"] = c, uc

    def combine_denoised(self, x_out, conds_list, uncond, cond_scale):
        denoised_uncond = x_out[-uncond.shape[0] :]
        denoised = torch.clone(denoised_uncond)
        for i, conds in enumerate(conds_list):
            for cond_index, weight in conds:
                denoised[i] += (x_out[cond_index] - denoised_uncond[i]) * (weight * cond_scale)
        return denoised

    def _skip_uncond(self, sigma, s_min_uncond) -> bool:
        opts = self.host.opts
        if self.host.version >= (1, 10):
            if opts.skip_early_cond != 0.0 and self.step / self.total_steps <= opts.skip_early_cond:
                return True
            return bool((self.step % 2 or opts.s_min_uncond_all) and s_min_uncond > 0 and sigma[0] < s_min_uncond)
        return bool(self.step % 2 and s_min_uncond > 0 and sigma[0] < s_min_uncond)

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        host, sc = self.host, self.host.script_callbacks
        if host.state.interrupted:
            raise InterruptedException
        if host.apply_refiner(self):  # the switch re-reads cond/uncond, as the host does
            cond, uncond = self.sampler.sampler_extra_args["cond"], self.sampler.sampler_extra_args["uncond"]
        conds_list, tensor = reconstruct_multicond_batch(cond, self.step)
        uncond = reconstruct_cond_batch(uncond, self.step)
        batch_size = len(conds_list)
        repeats = [len(entries) for entries in conds_list]
        x_in = torch.cat([torch.stack([x[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [x])
        sigma_in = torch.cat([torch.stack([sigma[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [sigma])
        image_cond_in = torch.cat([torch.stack([image_cond[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [image_cond])

        params = sc.CFGDenoiserParams(x_in, image_cond_in, sigma_in, host.state.sampling_step, host.state.sampling_steps, tensor, uncond, self)
        sc.cfg_denoiser_callback(params)
        x_in, image_cond_in, sigma_in = params.x, params.image_cond, params.sigma
        tensor, uncond = params.text_cond, params.text_uncond

        skip_uncond = self._skip_uncond(sigma, s_min_uncond)
        if skip_uncond:
            x_in, sigma_in = x_in[:-batch_size], sigma_in[:-batch_size]

        def condition(c_crossattn, c_concat):
            if isinstance(c_crossattn, dict):
                return {**c_crossattn, "c_concat": [c_concat]}
            return {"c_crossattn": [c_crossattn], "c_concat": [c_concat]}

        if tensor.shape[1] == uncond.shape[1] or skip_uncond:
            cond_in = tensor if skip_uncond else catenate_conds([tensor, uncond])
            x_out = self.inner_model(x_in, sigma_in, cond=condition(cond_in, image_cond_in))
        else:
            x_out = torch.zeros_like(x_in)
            n = tensor.shape[0]
            x_out[:n] = self.inner_model(x_in[:n], sigma_in[:n], cond=condition(subscript_cond(tensor, 0, n), image_cond_in[:n]))
            x_out[-uncond.shape[0]:] = self.inner_model(
                x_in[-uncond.shape[0]:], sigma_in[-uncond.shape[0]:], cond=condition(uncond, image_cond_in[-uncond.shape[0]:]))

        first_rows = [entries[0][0] for entries in conds_list]
        if skip_uncond:
            x_out = torch.cat([x_out, torch.cat([x_out[i : i + 1] for i in first_rows])])

        scale = 1.0 if skip_uncond else cond_scale * getattr(self, "cond_scale_miltiplier", 1.0)
        record = {"x": x.clone(), "sigma": sigma.clone(), "x_out": x_out.clone(), "conds_list": conds_list,
                  "scale": scale, "skipped": skip_uncond, "n_cond": tensor.shape[0], "step": self.step}
        sc.cfg_denoised_callback(sc.CFGDenoisedParams(x_out, host.state.sampling_step, host.state.sampling_steps, self.inner_model))
        denoised = self.combine_denoised(x_out, conds_list, uncond, scale)
        if self.mask is not None:
            denoised = denoised * self.nmask + self.init_latent * self.mask
        self.sampler.last_latent = torch.cat([x_out[i : i + 1] for i in first_rows])
        after = sc.AfterCFGCallbackParams(denoised, host.state.sampling_step, host.state.sampling_steps)
        sc.cfg_after_cfg_callback(after)
        denoised = after.x
        record["denoised"] = denoised.clone()
        host.records.append(record)
        self.step += 1
        host.state.sampling_step = self.step
        return denoised


class CFGDenoiserTimesteps(CFGDenoiser):
    wrapper_class = CompVisTimestepsDenoiser


# -- samplers ----------------------------------------------------------------------------------------


REAL_LOOPS = {"Euler": "sample_euler", "DPM++ 2M": "sample_dpmpp_2m", "Heun": "sample_heun", "DPM2": "sample_dpm_2"}


class KDiffusionSampler:
    denoiser_class = CFGDenoiser

    def __init__(self, funcname, host):
        self.funcname = funcname
        self.host = host
        self.model_wrap_cfg = host.make_denoiser(self)
        self.model_wrap = self.model_wrap_cfg.inner_model
        self.sampler_extra_args = {}
        self.last_latent = None

    def initialize(self, p, steps):
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.step = 0
        self.model_wrap_cfg.total_steps = steps
        self.host.state.sampling_step, self.host.state.sampling_steps = 0, steps

    def launch(self, function):
        try:
            return function()
        except InterruptedException:
            return self.last_latent

    def _run(self, p, x, sigmas, conditioning, unconditional_conditioning, image_conditioning):
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning, "uncond": unconditional_conditioning,
                                   "cond_scale": p.cfg_scale, "s_min_uncond": p.s_min_uncond}
        if self.host.real_loops:  # the real k-diffusion loops (tests/kdiffusion_loops.py)
            from kdiffusion_loops import sampling

            real = getattr(sampling(), REAL_LOOPS[self.funcname])
            return self.launch(lambda: real(self.model_wrap_cfg, x, sigmas, extra_args=self.sampler_extra_args,
                                            callback=self.callback_state, disable=True))
        function = toy.SAMPLE_FUNCTIONS[self.funcname]
        return self.launch(lambda: function(self.model_wrap_cfg, x, sigmas, self.sampler_extra_args))

    def callback_state(self, d):
        self.host.callbacks_seen.append((int(d["i"]), float(d["sigma"])))

    def get_sigmas(self, p, steps):
        """The run's full schedule (A1111 `KDiffusionSampler.get_sigmas`)."""
        return toy.karras(steps)

    def sample(self, p, x, conditioning, unconditional_conditioning, image_conditioning=None):
        sigmas = self.get_sigmas(p, p.steps)
        self.initialize(p, len(sigmas) - 1)
        return self._run(p, x * sigmas[0], sigmas, conditioning, unconditional_conditioning, image_conditioning)

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, image_conditioning=None):
        sigmas = toy.karras(p.steps)
        t_enc = int(min(p.denoising_strength, 0.999) * p.steps)
        sigma_sched = sigmas[p.steps - t_enc - 1 :]
        self.initialize(p, len(sigma_sched) - 1)
        if p.mask is not None and not p.is_hr_pass:
            self.model_wrap_cfg.mask, self.model_wrap_cfg.nmask, self.model_wrap_cfg.init_latent = p.mask, 1 - p.mask, x
        return self._run(p, x + noise * sigma_sched[0], sigma_sched, conditioning, unconditional_conditioning, image_conditioning)


class CompVisSampler(KDiffusionSampler):
    """DDIM: timesteps instead of σ, eps instead of x0; its wrapper has no σ table."""

    def sample(self, p, x, conditioning, unconditional_conditioning, image_conditioning=None):
        timesteps = torch.clip(torch.arange(0, 1000, 1000 // p.steps) + 1, 0, 999)
        self.initialize(p, len(timesteps))
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning, "uncond": unconditional_conditioning,
                                   "cond_scale": p.cfg_scale, "s_min_uncond": p.s_min_uncond}
        return self.launch(lambda: toy.sample_ddim(self.model_wrap_cfg, x, timesteps, self.sampler_extra_args))

    sample_img2img = None  # not needed by the tests


CompVisSampler.__module__ = "modules.sd_samplers_timesteps"


# -- p ---------------------------------------------------------------------------------------------------


class Processing:
    """The fields and `sample()` flow of StableDiffusionProcessingTxt2Img / Img2Img that matter here."""

    def __init__(self, host, *, prompt="a cat", negative_prompt="blurry", batch_size=1, width=64, height=64,
                 cfg_scale=7.0, steps=4, sampler_name="Euler", seed=1, enable_hr=False, hr_sampler_name=None,
                 denoising_strength=0.6, init_latent=None, mask=None, s_min_uncond=0.0, hr_cfg=None, n_iter=1):
        self.host = host
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.batch_size, self.width, self.height = batch_size, width, height
        self.cfg_scale, self.steps, self.sampler_name, self.seed = cfg_scale, steps, sampler_name, seed
        self.enable_hr, self.hr_sampler_name, self.hr_cfg = enable_hr, hr_sampler_name, hr_cfg
        self.denoising_strength, self.init_latent, self.mask = denoising_strength, init_latent, mask
        self.s_min_uncond, self.n_iter = s_min_uncond, n_iter
        self.is_hr_pass = False
        self.current_size = (width, height)
        self.extra_generation_params: dict[str, Any] = {}
        self.sampler = None
        self.scripts = None

    @property
    def sd_model(self):
        return self.host.shared.sd_model

    def setup_conds(self, width, height):
        self.current_size = (width, height)
        kind = self.host.shared.sd_model.kind
        composables = []
        for _ in range(self.batch_size):
            composables.append([
                ComposableScheduledPromptConditioning([ScheduledPromptConditioning(10**6, toy.encode(text, kind, width, height))], weight)
                for text, weight in parse_and_prompt(self.prompt)
            ])
        c = MulticondLearnedConditioning((self.batch_size,), composables)
        uc = [[ScheduledPromptConditioning(10**6, toy.encode(self.negative_prompt, kind, width, height))] for _ in range(self.batch_size)]
        return c, uc

    def noise(self, shape, offset=0):
        g = torch.Generator().manual_seed(self.seed + offset)
        return torch.randn(shape, generator=g)

    def image_cond(self, x):
        return torch.zeros(x.shape[0], 5, 1, 1)

    def before_every_sampling(self, **kwargs):
        if self.host.has_process_before_every_sampling:
            self.host.script.process_before_every_sampling(self, **kwargs)

    def sample(self, conditioning, unconditional_conditioning, seeds=None, subseeds=None, subseed_strength=0.0, prompts=None):
        host = self.host
        self.sampler = host.create_sampler(self.sampler_name)
        shape = (self.batch_size, toy.CHANNELS, self.height // 8, self.width // 8)
        x = self.noise(shape)
        self.before_every_sampling(x=x, noise=x, c=conditioning, uc=unconditional_conditioning)
        if self.init_latent is None:
            samples = self.sampler.sample(self, x, conditioning, unconditional_conditioning, image_conditioning=self.image_cond(x))
        else:
            samples = self.sampler.sample_img2img(self, self.init_latent, x, conditioning, unconditional_conditioning,
                                                  image_conditioning=self.image_cond(x))
        if not self.enable_hr or host.state.interrupted:
            return samples
        return self.sample_hr_pass(samples)

    def sample_hr_pass(self, samples):
        host = self.host
        self.is_hr_pass = True
        upscaled = F.interpolate(samples, scale_factor=2, mode="nearest")
        self.sampler = host.create_sampler(self.hr_sampler_name or self.sampler_name)
        hr_c, hr_uc = self.setup_conds(self.width * 2, self.height * 2)
        host.script.before_hr(self)
        self.before_every_sampling(x=upscaled, noise=upscaled, c=hr_c, uc=hr_uc)
        noise = self.noise(upscaled.shape, offset=1)
        samples = self.sampler.sample_img2img(self, upscaled, noise, hr_c, hr_uc, image_conditioning=self.image_cond(upscaled))
        self.is_hr_pass = False
        return samples


# -- the host ----------------------------------------------------------------------------------------------


@dataclass
class Opts:
    batch_cond_uncond: bool = True
    skip_early_cond: float = 0.0
    s_min_uncond_all: bool = False


@dataclass
class HostState:
    interrupted: bool = False
    skipped: bool = False
    sampling_step: int = 0
    sampling_steps: int = 0


class A1111Host:
    """One fake A1111 process. `install(monkeypatch)` puts its modules into `sys.modules`."""

    kind = "a1111"
    sampler_classes: ClassVar[dict[str, type]] = {"Euler": KDiffusionSampler, "DPM++ 2M": KDiffusionSampler, "DDIM": CompVisSampler,
                                                  "Heun": KDiffusionSampler, "DPM2": KDiffusionSampler}
    real_loops = False  # True: samplers run the real k-diffusion loops

    def __init__(self, version=(1, 10), model="sdxl", sigma_scale=1.0, callbacks_take_name=False, refiner_switch_step=None):
        self.version = version
        self.refiner_switch_step = refiner_switch_step
        self.refiner = None
        self.callbacks_take_name = callbacks_take_name
        self.errors: list[BaseException] = []
        self.records: list[dict[str, Any]] = []
        self.callbacks_seen: list[tuple[int, float]] = []
        self.state = HostState()
        self.opts = Opts()
        self.script_callbacks = make_script_callbacks(self)
        self.shared = types.SimpleNamespace(state=self.state, opts=self.opts, sd_model=ToyModel(model, sigma_scale))
        self.script = None

    @property
    def has_process_before_every_sampling(self) -> bool:
        return self.version >= (1, 10)

    def module_table(self) -> dict[str, types.ModuleType]:
        modules = types.ModuleType("modules")
        modules.__path__ = []
        modules.script_callbacks = self.script_callbacks
        shared = types.ModuleType("modules.shared")
        shared.state, shared.opts = self.state, self.opts
        modules.shared = shared
        return {"modules": modules, "modules.script_callbacks": self.script_callbacks, "modules.shared": shared}

    def install(self, monkeypatch) -> None:
        for name in ("modules_forge", "backend", "backend.patcher", "backend.patcher.unet", "ldm_patched", "modules_forge.unet_patcher"):
            monkeypatch.setitem(sys.modules, name, None)
        for name, module in self.module_table().items():
            monkeypatch.setitem(sys.modules, name, module)

    def apply_refiner(self, denoiser, x=None) -> bool:
        """At `refiner_switch_step`: load the SDXL refiner (2560-wide vector), recompute the conds,
        `update_inner_model()` and continue the same call (A1111 `sd_models.reload_model_weights`
        during `CFGDenoiser.forward`; Forge's refiner switch the same)."""
        if self.refiner_switch_step is None or denoiser.step != self.refiner_switch_step or self.refiner is not None:
            return False
        self.refiner = self.make_refiner()
        self.shared.sd_model = self.refiner
        denoiser.update_inner_model()
        return True

    def make_refiner(self):
        return ToyModel("refiner")

    def make_denoiser(self, sampler):
        cls = CFGDenoiserTimesteps if isinstance(sampler, CompVisSampler) else CFGDenoiser
        return cls(sampler, self)

    def create_sampler(self, name):
        return self.sampler_classes[name](name, self)

    def processing(self, **kwargs) -> Processing:
        return Processing(self, **kwargs)

    def process_images(self, p, script):
        """The Script hook order of `process_images` (no try/finally around postprocess, as the host)."""
        self.script = script
        script.process(p)
        samples = []
        for n in range(p.n_iter):
            if self.state.interrupted:
                break
            script.process_batch(p)
            c, uc = p.setup_conds(p.width, p.height)
            samples.append(p.sample(conditioning=c, unconditional_conditioning=uc, seeds=[p.seed + n], subseeds=[0]))
        script.postprocess(p)
        return torch.cat(samples) if samples else None


class ScriptStandIn:
    """What `scripts/fooocus.py` does with the adapter (the Script helper's contract)."""

    def __init__(self, adapter, params, filter_method="auto"):
        self.adapter, self.params, self.filter_method = adapter, params, filter_method
        self.calls: list[str] = []

    def process(self, p):
        self.calls.append("process")
        self.adapter.begin_generation(p, self.params, filter_method=self.filter_method)

    def process_batch(self, p):
        self.calls.append("process_batch")
        self.adapter.before_sampling(p, self.params)

    def before_hr(self, p):
        self.calls.append("before_hr")
        self.adapter.before_sampling(p, self.params)

    def process_before_every_sampling(self, p, **kwargs):
        self.calls.append("process_before_every_sampling")
        self.adapter.before_sampling(p, self.params)

    def postprocess(self, p):
        self.calls.append("postprocess")
        self.adapter.end_generation(p)


class NoScript(ScriptStandIn):
    """A host without the extension."""

    def __init__(self):
        super().__init__(None, None)

    def process(self, p):
        pass

    process_batch = before_hr = postprocess = process

    def process_before_every_sampling(self, p, **kwargs):
        pass
