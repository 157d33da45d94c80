"""Forge adapter, for both Forge lines: main (`backend/`, name "forge-main") and the early-2024
`ldm_patched` line incl. reForge / Forge Classic (name "forge-classic"). Both expose the same
UnetPatcher methods used here; nothing Forge-specific is imported.

Created by `lib_fooocus.hosts.create_adapter(...)`, used with the same three calls as on A1111
(`begin_generation`, `before_sampling` from `process_before_every_sampling`, `end_generation`).

How it works:
- `before_sampling` (each sampling pass; idempotent, F-main calls it twice in the hires pass)
  clones `p.sd_model.forge_objects.unet`, adds
  * a conditioning modifier that only remembers the CFG scale of the current call (Forge passes it
    there, and not to post-CFG functions; it is 1.0 on skip-early/NGMS steps and for `hr_cfg` 1),
  * a post-CFG function — put FIRST in the post-CFG chain — that returns Fooocus's denoised result
    computed from `cond_denoised`, `uncond_denoised`, `input` and σ (the route that was bit-exact
    on real Forge; a `sampler_cfg_function` would be exact only to ~4e-6 and is a single slot),
  * a marker in `model_options` so a second call on the same UNet installs nothing,
  and puts the clone back on `forge_objects`. Only inside this generation's `p.sample`: the call
  from `process_batch` comes before Forge's own reset of `forge_objects` in `sample()`, whose
  `process_before_every_sampling` then patches the UNet actually used.
- When the sampling ends (the `finally` of the `p.sample` wrapper: normal end, interrupt, error) and
  at `end_generation`, every `forge_objects` we patched gets back the UNet our clone replaced (the
  host's, or another extension's that patched before us). Forge would only reset it at its next
  generation; until then the clone's closures would keep this generation's `p` alive.
- `on_cfg_denoiser` (registered only while `p.sample` runs) re-installs the patch when the UNet in
  use lost it (a refiner switch loads a model with fresh `forge_objects`) and replaces
  `text_cond['vector']` / `text_uncond['vector']` by the timed positive/negative ADM vectors (SDXL
  base only). Forge converts these dicts into the UNet's `y` after the callback.

CFG 1 (and Forge's skipped-uncond steps): Forge does not evaluate the uncond; the post-CFG function
returns the host's result unchanged, as Fooocus's own CFG-1 path returns the positive prediction.

Next to another `sampler_cfg_function` (Forge's built-in Dynamic Thresholding / LatentModifier, or
any extension's): both apply, chained. Fooocus's sharpness filters the positive eps and adaptive CFG
turns the user's CFG into Fooocus's effective scale for this step; the other function then does the
final combine with those inputs (`cond` = the sharpened positive eps, `cond_scale` = the effective
scale). The log and the infotext key "Fooocus note" say so. Other post-CFG functions (e.g. SAG) run
after Fooocus's and act on its result.

AND prompts: Forge averages the sub-prompt predictions by strength; when the strengths do not sum to
1 the effective positive is recovered from the host's own combine (c_eff = u + (D_host − u)/w), so
both Forge lines' AND semantics are kept, and Fooocus's math runs on (c_eff, u).
"""

from __future__ import annotations

from typing import Any

import torch

from .conditioning import (
    apply_negative_adm,
    is_close_to_one,
    multicond_weights,
    sigma_table_or_default,
    timesteps_and_progress,
)
from .lifecycle import CallbackAdapter, GenerationState, is_hires_pass, refiner_step

MARKER_KEY = "fooocus_generation"
HOOK_MARK = "__fooocus_hook__"


class ForgeAdapter(CallbackAdapter):
    def __init__(self, name: str = "forge-main", script_callbacks: Any = None):
        super().__init__(script_callbacks)
        self.name = name

    def _callbacks(self, state: GenerationState) -> dict[str, Any]:
        def on_cfg_denoiser(params: Any) -> None:
            try:
                on_denoiser(state, params)
            except Exception as exc:  # never break the host's generation
                state.log_once("error-cfg_denoiser", f"cfg_denoiser hook failed ({exc!r}); this call was left to the host.")

        return {"cfg_denoiser": on_cfg_denoiser}

    def _before_sampling(self, state: GenerationState) -> None:
        if not state.pass_enabled():
            state.log_once("hires-off", "hires pass: Fooocus sampling tricks are off for this pass (apply in hires pass is off).")
            return
        if state.sampling_depth <= 0:
            return  # process_batch: Forge resets forge_objects before the sampling; patch then
        holder = getattr(getattr(state.p, "sd_model", None), "forge_objects", None)
        if holder is None:
            state.log_once("no-forge-objects", "this model has no Forge UNet patcher: Fooocus CFG not installed.")
            return
        ensure_patched(holder, state)

    def _uninstall(self, state: GenerationState) -> None:
        try:
            super()._uninstall(state)
        finally:
            restore_unets(state)


# -- installing on a UnetPatcher --------------------------------------------------------------------


def is_patched(unet: Any, state: GenerationState) -> bool:
    options = getattr(unet, "model_options", None)
    return isinstance(options, dict) and options.get(MARKER_KEY) == state.token


def ensure_patched(holder: Any, state: GenerationState) -> bool:
    """Clone `holder.unet`, install Fooocus's hooks, put the clone back. False if already there."""
    unet = getattr(holder, "unet", None)
    if unet is None or is_patched(unet, state):
        return False
    clone = unet.clone()
    install_hooks(clone, state)
    holder.unet = clone
    state.forge_replaced.append((holder, unet))
    state.forge_installs += 1
    return True


def restore_unets(state: GenerationState) -> None:
    """Give every `forge_objects` we patched its previous UNet back, where the UNet on it still
    carries our hooks (our clone, or a clone another extension made of it after us). Latest first,
    so a holder patched twice ends with the UNet it had before our first clone."""
    replaced, state.forge_replaced = state.forge_replaced, []
    for holder, previous in reversed(replaced):
        if is_patched(getattr(holder, "unet", None), state):
            holder.unet = previous


def install_hooks(unet: Any, state: GenerationState) -> None:
    modifier = make_cond_scale_modifier(state)
    post_cfg = make_post_cfg_function(state)
    if hasattr(unet, "add_conditioning_modifier"):
        unet.add_conditioning_modifier(modifier)
    else:
        unet.model_options.setdefault("conditioning_modifiers", []).append(modifier)
    unet.set_model_sampler_post_cfg_function(post_cfg)
    # First in the chain: later post-CFG functions act on Fooocus's result, none is overwritten.
    chain = unet.model_options["sampler_post_cfg_function"]
    chain.remove(post_cfg)
    chain.insert(0, post_cfg)
    unet.model_options[MARKER_KEY] = state.token  # a string: survives Forge's deepcopy in clone()


def make_cond_scale_modifier(state: GenerationState) -> Any:
    # A plain closure (not a bound method): UnetPatcher.clone() deep-copies model_options, and a
    # function is copied by reference, so the state is shared, never duplicated.
    def fooocus_remember_cond_scale(model, x, timestep, uncond, cond, cond_scale, model_options, seed):
        if not state.finished:
            state.forge_cond_scale = float(cond_scale)
        return model, x, timestep, uncond, cond, cond_scale, model_options, seed

    setattr(fooocus_remember_cond_scale, HOOK_MARK, state.token)
    return fooocus_remember_cond_scale


def make_post_cfg_function(state: GenerationState) -> Any:
    def fooocus_post_cfg(args: dict[str, Any]) -> torch.Tensor:
        try:
            return fooocus_denoised(state, args)
        except Exception as exc:  # keep the host's result rather than breaking the sampling
            state.log_once("error-post-cfg", f"post-CFG hook failed ({exc!r}); this call kept the host's result.")
            return args["denoised"]

    setattr(fooocus_post_cfg, HOOK_MARK, state.token)
    return fooocus_post_cfg


# -- the CFG math on Forge's post-CFG arguments --------------------------------------------------


def fooocus_denoised(state: GenerationState, args: dict[str, Any]) -> torch.Tensor:
    from lib_fooocus.guidance.cfg import fooocus_cfg

    denoised = args["denoised"]
    cond_scale, state.forge_cond_scale = state.forge_cond_scale, None
    if state.finished or not state.pass_enabled():
        return denoised
    if cond_scale is None:
        cond_scale = fallback_cfg_scale(state.p)
        state.log_once("cfg-fallback", f"the CFG scale of this call was not visible; using {cond_scale:g} from the request.")
    if is_close_to_one(cond_scale) or args.get("uncond") is None:
        return denoised  # Forge skipped the uncond (CFG 1, skip-early, NGMS): keep the positive-only result
    x, x0_cond, x0_uncond, sigma = args["input"], args["cond_denoised"], args["uncond_denoised"], args["sigma"]
    table = sigma_table_or_default(args.get("model"))
    _t, progress = timesteps_and_progress(sigma, table)

    other = (args.get("model_options") or {}).get("sampler_cfg_function")
    if other is not None:
        report_coexistence(state, other)
        return chained_cfg(state, other, args, float(cond_scale), progress)

    strengths = [float(item.get("strength", 1.0)) for item in (args.get("cond") or []) if hasattr(item, "get")]
    if strengths and not is_close_to_one(sum(strengths)):
        x0_cond = x0_uncond + (denoised - x0_uncond) / float(cond_scale)  # the host's own AND semantics
    return fooocus_cfg(x, x0_cond, x0_uncond, sigma, float(cond_scale), state.params, progress, state.filter_method)


def chained_cfg(state: GenerationState, other: Any, args: dict[str, Any], cond_scale: float, progress: torch.Tensor) -> torch.Tensor:
    """Feed the other cfg function Fooocus's sharpened positive and effective scale."""
    from lib_fooocus.guidance.cfg import effective_cfg_scale
    from lib_fooocus.guidance.sharpness import sharpen_positive_eps

    x, x0_cond, x0_uncond, sigma = args["input"], args["cond_denoised"], args["uncond_denoised"], args["sigma"]
    eps_cond = sharpen_positive_eps(x - x0_cond, x0_cond, state.params.sharpness, progress, state.filter_method)
    scale = float(effective_cfg_scale(cond_scale, state.params.adaptive_cfg, progress).reshape(-1)[0])
    cfg_args = {
        "cond": eps_cond,
        "uncond": x - x0_uncond,
        "cond_scale": scale,
        "timestep": sigma,
        "input": x,
        "sigma": sigma,
        "cond_denoised": x - eps_cond,
        "uncond_denoised": x0_uncond,
        "model": args.get("model"),
        "model_options": args.get("model_options"),
    }
    return x - other(cfg_args)


def describe_function(function: Any) -> str:
    name = getattr(function, "__qualname__", None) or type(function).__name__
    module = getattr(function, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def report_coexistence(state: GenerationState, other: Any) -> None:
    name = describe_function(other)
    key = f"chain-{name}"
    if key in state.logged:
        return
    state.log_once(
        key,
        f"another CFG function is installed ({name}, e.g. Dynamic Thresholding or LatentModifier): both apply, "
        "chained - Fooocus's sharpness and adaptive CFG scale feed it, it does the final combine.",
    )
    state.note_infotext(f"CFG chained with {name.rsplit('.', 1)[-1]}")


def fallback_cfg_scale(p: Any) -> float:
    if is_hires_pass(p) and getattr(p, "hr_cfg", None) is not None:
        return float(p.hr_cfg)  # Forge main uses hr_cfg in the hires pass
    return float(getattr(p, "cfg_scale", 1.0))


# -- on_cfg_denoiser: refiner re-install and negative ADM ----------------------------------------


def on_denoiser(state: GenerationState, params: Any) -> None:
    denoiser = getattr(params, "denoiser", None)
    if not state.owns(denoiser):
        return
    if state.refiner is not None:
        objects = forge_objects_in_use(denoiser, state.p)
        sampler = getattr(denoiser, "sampler", None) or getattr(state.p, "sampler", None)
        model = getattr(getattr(objects, "unet", None), "model", None)
        refiner_step(state, sampler, model if getattr(model, "diffusion_model", None) is not None else None, params)
    if not state.pass_enabled():
        return
    holder = forge_objects_in_use(denoiser, state.p)
    if holder is not None and ensure_patched(holder, state) and state.forge_installs > 1:
        state.log_once(
            "reinstalled",
            "the UNet changed during sampling (refiner switch): Fooocus CFG re-installed on the new model.",
        )
    model = getattr(getattr(holder, "unet", None), "model", None)
    x, sigma = params.x, params.sigma
    table = sigma_table_or_default(model)
    t, _progress = timesteps_and_progress(sigma, table)
    sampler = getattr(denoiser, "sampler", None) or getattr(state.p, "sampler", None)
    extra_args = getattr(sampler, "sampler_extra_args", None) or {}
    t_cond = cond_row_timesteps(t, params.text_cond, extra_args.get("cond"))
    apply_negative_adm(state, params.text_cond, params.text_uncond, t_cond, t, width=x.shape[-1] * 8, height=x.shape[-2] * 8)


def forge_objects_in_use(denoiser: Any, p: Any) -> Any:
    """The `forge_objects` Forge's sampling function reads in this call: the model behind the
    denoiser (`inner_model[.inner_model]`), else `p.sd_model`'s."""
    candidates = []
    try:
        inner = denoiser.inner_model if denoiser is not None else None
    except Exception:
        inner = None
    candidates += [getattr(inner, "inner_model", None), inner, getattr(p, "sd_model", None)]
    for candidate in candidates:
        holder = getattr(candidate, "forge_objects", None)
        if holder is not None:
            return holder
    return None


def cond_row_timesteps(t: torch.Tensor, text_cond: Any, multicond: Any) -> torch.Tensor:
    """Forge's params are per image (B rows); with AND, text_cond has one row per sub-prompt."""
    shape = getattr(text_cond, "shape", None)
    n_cond = int(shape[0]) if shape is not None else t.shape[0]
    if n_cond == t.shape[0]:
        return t
    weights = multicond_weights(multicond)
    if weights is not None and len(weights) == t.shape[0] and sum(map(len, weights)) == n_cond:
        return torch.cat([t[i].expand(len(w)) for i, w in enumerate(weights)])
    return t[:1].expand(n_cond)
