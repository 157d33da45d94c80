"""A1111 WebUI (1.6 – 1.10) adapter: Fooocus's CFG and timed ADM through the cfg callbacks.

Created by `lib_fooocus.hosts.create_adapter("a1111")` (the WebUI context does it once); the Script calls
`begin_generation(p, params)` from `process()`, `before_sampling(p, params)` from
`process_before_every_sampling` (1.10) or `process_batch` + `before_hr` (1.6–1.9) and
`end_generation(p)` from `postprocess()`.

How it works (per denoiser call, only while this generation's `p.sample` runs):
- `on_cfg_denoiser`: checks the job guard, the hires switch and the sampler type; computes Fooocus's
  timestep t(σ) per batch row from the host model's own σ table (`denoiser.inner_model.sigmas`,
  else `p.sampler.model_wrap.sigmas`, else the SDXL table); replaces `text_cond['vector']` and
  `text_uncond['vector']` by the timed positive/negative ADM vectors (SDXL base only); stashes the
  noisy latent, σ, progress, the AND layout and the CFG scale for the next callback.
- `on_cfg_denoised`: computes Fooocus's denoised result D per image with `fooocus_cfg` and writes it
  back **in place** into the cond rows of `x_out` so that the host's own linear combine gives D:
  for one sub-prompt of weight 1, x0_c ← x0_u + (D − x0_u)/w. The host's mask blend, live preview
  and `on_cfg_after_cfg` then all see the Fooocus result.

AND prompts: the sub-prompt predictions of image i are first folded into one effective positive
c_eff = u + Σ_j w_j·(c_j − u) (exactly what the host's combine would use with scale 1), Fooocus's
single-cond math runs on (c_eff, u), and the difference to the target is spread over the
sub-prompts as the same shift δ/Σw on every row (or, when the weights sum to ~0, put on the row
with the largest |weight|), so the host's combine still lands on D.

Not touched (one log line per generation each): timestep samplers (DDIM, PLMS, UniPC, DDIM CFG++
give eps and integer t), the InstructPix2Pix 3-chunk layout, denoiser calls where the host skipped
the uncond (NGMS / "skip early CFG": the uncond rows are copies of the cond rows; nothing is
invented), CFG 1, and ADM on models without a 2816-wide vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .conditioning import (
    apply_negative_adm,
    conds_list_from_weights,
    is_close_to_one,
    multicond_weights,
    sigma_table_or_default,
    timesteps_and_progress,
)
from .lifecycle import CallbackAdapter, GenerationState, refiner_step

WEIGHT_SUM_EPSILON = 1e-6


@dataclass
class DenoiserStash:
    """What `on_cfg_denoiser` learned, for `on_cfg_denoised` of the same forward call."""

    x: torch.Tensor  # (B, C, H, W) noisy latent per image (the uncond rows of x_in)
    sigma: torch.Tensor  # (B,)
    progress: torch.Tensor  # (B,)
    n_cond: int
    n_uncond: int
    conds_list: list[list[tuple[int, float]]]
    cfg_scale: float


class A1111Adapter(CallbackAdapter):
    name = "a1111"

    def _callbacks(self, state: GenerationState) -> dict[str, Any]:
        def on_cfg_denoiser(params: Any) -> None:
            _guarded(state, "cfg_denoiser", on_denoiser, state, params)

        def on_cfg_denoised(params: Any) -> None:
            _guarded(state, "cfg_denoised", on_denoised, state, params)

        return {"cfg_denoiser": on_cfg_denoiser, "cfg_denoised": on_cfg_denoised}


def _guarded(state: GenerationState, where: str, function: Any, *args: Any) -> None:
    """A failure must never break the host's generation: log it once and leave the call untouched."""
    try:
        function(*args)
    except Exception as exc:  # the host would only print a traceback; keep one clear line instead
        state.stash = None
        state.log_once(f"error-{where}", f"{where} hook failed ({exc!r}); this call was left to the host.")


# -- on_cfg_denoiser ----------------------------------------------------------------------------


def on_denoiser(state: GenerationState, params: Any) -> None:
    denoiser = getattr(params, "denoiser", None)  # A1111 ≥ 1.8 only
    if not state.owns(denoiser):
        return
    state.stash = None
    if state.refiner is not None:
        _refiner(state, denoiser, params)
    if not state.pass_enabled():
        state.log_once("hires-off", "hires pass: Fooocus sampling tricks are off for this pass (apply in hires pass is off).")
        return
    p = state.p
    sampler = getattr(denoiser, "sampler", None) or getattr(p, "sampler", None)
    if not uses_kdiffusion(sampler):
        name = current_sampler_name(p)
        state.log_once(
            "timestep-sampler",
            f"sampler {name!r} is a timestep sampler (it hands eps and integer timesteps, not x0 and sigma): "
            "the Fooocus sampling tricks are skipped for this pass. Use a k-diffusion sampler (Euler, DPM++ ...).",
        )
        state.note_infotext(f"sampling tricks skipped with timestep sampler {name}")
        return

    text_cond, text_uncond = params.text_cond, params.text_uncond
    n_cond, n_uncond = _rows(text_cond), _rows(text_uncond)
    x_in, sigma_in = params.x, params.sigma
    if n_cond is None or n_uncond is None or x_in.shape[0] != n_cond + n_uncond:
        state.log_once(
            "layout",
            f"unexpected cond/uncond batch layout ({x_in.shape[0]} rows for {n_cond} cond + {n_uncond} uncond; "
            "InstructPix2Pix?): Fooocus sampling tricks skipped.",
        )
        return

    table = sigma_table_or_default(_inner_model(denoiser), getattr(sampler, "model_wrap", None))
    t, progress = timesteps_and_progress(sigma_in, table)
    apply_negative_adm(
        state, text_cond, text_uncond, t[:n_cond], t[n_cond:], width=x_in.shape[-1] * 8, height=x_in.shape[-2] * 8
    )

    extra_args = getattr(sampler, "sampler_extra_args", None) or {}
    conds_list = _conds_list(extra_args.get("cond"), n_cond, n_uncond)
    if conds_list is None:
        state.log_once(
            "and-layout",
            "could not read the AND sub-prompt weights of this batch: sharpness and adaptive CFG skipped "
            "(negative ADM still applies).",
        )
        return
    cfg_scale = float(extra_args.get("cond_scale", getattr(p, "cfg_scale", 1.0)))
    cfg_scale *= float(getattr(denoiser, "cond_scale_miltiplier", 1.0) or 1.0)  # (sic) A1111 1.10
    state.stash = DenoiserStash(
        x=x_in[n_cond:].detach(),
        sigma=sigma_in[n_cond:].detach(),
        progress=progress[n_cond:],
        n_cond=n_cond,
        n_uncond=n_uncond,
        conds_list=conds_list,
        cfg_scale=cfg_scale,
    )


def _refiner(state: GenerationState, denoiser: Any, params: Any) -> None:
    """The Fooocus refiner swap for this call: the UNet inside `sd_model.model` (what the host's
    CompVis wrapper calls), k-diffusion samplers only (timestep samplers hand integer t, not σ)."""
    p = state.p
    sampler = getattr(denoiser, "sampler", None) or getattr(p, "sampler", None)
    if not uses_kdiffusion(sampler):
        state.refiner.restore()
        state.refiner = None
        state.log_once("refiner-timestep", "the Fooocus refiner needs a k-diffusion sampler (Euler, DPM++ ...): refiner off.")
        state.note_infotext("refiner off: timestep sampler")
        return
    sd_model = getattr(_inner_model(denoiser), "inner_model", None) or getattr(p, "sd_model", None)
    holder = getattr(sd_model, "model", None)
    if getattr(holder, "diffusion_model", None) is None:
        holder = None
    refiner_step(state, sampler, holder, params)


def uses_kdiffusion(sampler: Any) -> bool:
    """k-diffusion samplers hand x0 predictions and σ; timestep samplers (module
    `sd_samplers_timesteps`: DDIM, PLMS, UniPC) hand eps and integer timesteps. Their model wrapper
    has no σ table, which is the feature tested here."""
    if sampler is None or type(sampler).__module__.endswith("sd_samplers_timesteps"):
        return False
    return isinstance(getattr(getattr(sampler, "model_wrap", None), "sigmas", None), torch.Tensor)


def current_sampler_name(p: Any) -> str:
    if getattr(p, "is_hr_pass", False) and getattr(p, "hr_sampler_name", None):
        return str(p.hr_sampler_name)
    return str(getattr(p, "sampler_name", "?"))


def _inner_model(denoiser: Any) -> Any:
    if denoiser is None:
        return None
    try:
        return denoiser.inner_model
    except Exception:  # a property that cannot build its wrapper: fall back to the other sources
        return None


def _rows(cond: Any) -> int | None:
    shape = getattr(cond, "shape", None)
    try:
        return int(shape[0])
    except (TypeError, IndexError, ValueError):
        return None


def _conds_list(multicond: Any, n_cond: int, n_uncond: int) -> list[list[tuple[int, float]]] | None:
    weights = multicond_weights(multicond)
    if weights is not None and len(weights) == n_uncond and sum(map(len, weights)) == n_cond:
        return conds_list_from_weights(weights)
    if n_cond == n_uncond:  # no AND: one sub-prompt of weight 1 per image
        return [[(i, 1.0)] for i in range(n_cond)]
    return None


# -- on_cfg_denoised ----------------------------------------------------------------------------


def on_denoised(state: GenerationState, params: Any) -> None:
    stash, state.stash = state.stash, None
    if stash is None or not state.owns(None):
        return
    x_out = params.x
    if x_out.shape[0] != stash.n_cond + stash.n_uncond or is_close_to_one(stash.cfg_scale):
        return  # CFG 1: Fooocus returns the positive prediction, which is what the host computes
    first_rows = [entries[0][0] for entries in stash.conds_list]
    uncond = x_out[stash.n_cond :]
    if torch.equal(uncond, x_out[first_rows]):
        state.log_once(
            "uncond-skipped",
            "the host skipped the negative prediction on some steps (NGMS / skip early CFG): "
            "those steps keep the host's positive-only result.",
        )
        return
    write_fooocus_result(state, x_out, stash)


def write_fooocus_result(state: GenerationState, x_out: torch.Tensor, stash: DenoiserStash) -> None:
    """Edit the cond rows of `x_out` in place so that the host's `combine_denoised` yields Fooocus's D."""
    from lib_fooocus.guidance.cfg import fooocus_cfg

    w = stash.cfg_scale
    u = x_out[stash.n_cond :].to(torch.float32)
    rows = x_out[: stash.n_cond].to(torch.float32)
    effective = torch.stack(
        [u[i] + sum(weight * (rows[index] - u[i]) for index, weight in entries) for i, entries in enumerate(stash.conds_list)]
    )
    single = [len(entries) == 1 and entries[0][1] == 1.0 for entries in stash.conds_list]
    if all(single):
        effective = rows[[entries[0][0] for entries in stash.conds_list]]
    denoised = fooocus_cfg(stash.x, effective, u, stash.sigma, w, state.params, stash.progress,
                           state.filter_method).to(torch.float32)

    # host: D_i = u_i + w·Σ_j w_j·(c_j − u_i)  ⇒  Σ_j w_j·(c_j' − u_i) must equal (D_i − u_i)/w
    target = (denoised - u) / w
    for i, entries in enumerate(stash.conds_list):
        if single[i]:
            index = entries[0][0]
            x_out[index].copy_((u[i] + target[i]).to(x_out.dtype))
            continue
        shift = target[i] - (effective[i] - u[i])
        weight_sum = sum(weight for _, weight in entries)
        if abs(weight_sum) > WEIGHT_SUM_EPSILON:
            for index, _weight in entries:
                x_out[index].copy_((rows[index] + shift / weight_sum).to(x_out.dtype))
        else:
            index, weight = max(entries, key=lambda entry: abs(entry[1]))
            if abs(weight) > WEIGHT_SUM_EPSILON:  # all weights 0: nothing to steer, keep the host's rows
                x_out[index].copy_((rows[index] + shift / weight).to(x_out.dtype))
