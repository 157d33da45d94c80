"""The joint refiner swap inside one sampler run, on the contract harness's A1111 and Forge hosts,
driven through the REAL k-diffusion loops (Euler, DPM++ 2M, Heun, DPM2; tests/kdiffusion_loops.py).

The toy base and refiner UNets differ (other weights, other conditioning widths), so every
evaluation is attributable; a hand-written 4-step reference checks the result and the DPM++ 2M
history term across the hand-over."""

from __future__ import annotations

import math

import pytest
import torch
from harness import A1111Host, generate, start, toy
from harness.forge_host import ForgeHost
from kdiffusion_loops import sampling as real_sampling

from lib_fooocus.guidance.refiner import KIND_SDXL_BASE, KIND_SDXL_REFINER
from lib_fooocus.hosts import refiner_swap
from lib_fooocus.params import FooocusParams

STEPS, CFG, RATIO = 4, 5.0, 0.25  # switch = round(4 · 0.25) = 1: base steps 0, 1; refiner 2, 3
# No other trick changes the numbers: sharpness 0, adaptive CFG ≥ CFG, no negative ADM window.
PARAMS = FooocusParams(enabled=True, sharpness=0.0, adaptive_cfg=30.0, adm_scaler_end=0.0,
                       refiner_checkpoint="refiner.safetensors", refiner_switch=RATIO)


@pytest.fixture(autouse=True)
def _real_widths(monkeypatch):
    """The toy encoder/UNets with SDXL's real cross-attention widths (2048 base, 1280 refiner), so the
    CLIP-G slice is exercised."""
    monkeypatch.setattr(toy, "CROSSATTN_SDXL", 2048)
    monkeypatch.setattr(toy, "CROSSATTN_REFINER", 1280)
    real_sampling()  # fails loudly when k-diffusion is missing


def make_host(kind: str):
    host = A1111Host() if kind == "a1111" else ForgeHost(line=kind)
    host.real_loops = True
    return host


def install_swap(monkeypatch, refiner_unet, kind=KIND_SDXL_REFINER, ratio=RATIO):
    swaps = []

    def prepare(state):
        swap = refiner_swap.RefinerSwap(unet=refiner_unet, kind=kind, ratio=float(state.params.refiner_switch))
        swaps.append(swap)
        return swap

    monkeypatch.setattr(refiner_swap, "prepare_refiner", prepare)
    return swaps


def base_unet_of(host):
    model = host.shared.sd_model
    return model.forge_objects.unet.model.diffusion_model if hasattr(model, "forge_objects") else model.model.diffusion_model


# -- which evaluation hits which model ------------------------------------------------------------------


@pytest.mark.parametrize("host_kind", ["a1111", "forge-main", "forge-classic"])
@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M"])
def test_base_takes_steps_0_to_switch_and_the_refiner_the_rest(monkeypatch, host_kind, sampler) -> None:
    host = make_host(host_kind)
    adapter = start(host, monkeypatch)
    base = base_unet_of(host)
    refiner = toy.ToyUNet("refiner", seed=7)
    swaps = install_swap(monkeypatch, refiner)
    generate(host, adapter, PARAMS, steps=STEPS, cfg_scale=CFG, sampler_name=sampler)
    sigmas = toy.karras(STEPS)
    every = 1 if host_kind == "a1111" else 2  # Forge runs the cond and the uncond as two UNet calls
    base_sigmas = [float(s[0]) for s in base.seen_sigmas][::every]
    refiner_sigmas = [float(s[0]) for s in refiner.seen_sigmas][::every]
    assert base_sigmas == pytest.approx([float(sigmas[0]), float(sigmas[1])])  # switch + 1 evaluations
    assert refiner_sigmas == pytest.approx([float(sigmas[2]), float(sigmas[3])])
    assert swaps[0].evaluations == ["base", "base", "refiner", "refiner"]
    # the refiner saw its own conditioning: CLIP-G crossattn (its toy asserts the 2560 vector width)
    assert all(v.shape[1] == 2560 for v in refiner.seen_vectors)
    # restored: the host's UNet is the base again
    assert base_unet_of(host) is base


# -- the result, by hand ----------------------------------------------------------------------------------


def _conds(kind_for_model, width=64, height=64):
    c = toy.encode("a cat", "sdxl", width, height)
    u = toy.encode("blurry", "sdxl", width, height)
    if kind_for_model == "base":
        return c, u
    out = []
    for row, aesthetic in ((c, 6.0), (u, 2.5)):
        vector = torch.cat([row["vector"][:1280], toy.size_block(height, width, 0, 0, aesthetic)])
        out.append({"crossattn": row["crossattn"][:, -1280:], "vector": vector})
    return out[0], out[1]


def _denoised(unet, x, sigma, kind):
    c, u = _conds(kind)
    s = sigma.reshape(1)
    x0_c = unet.denoised(x, s, c["crossattn"][None], c["vector"][None])
    x0_u = unet.denoised(x, s, u["crossattn"][None], u["vector"][None])
    return x0_u + (x0_c - x0_u) * CFG


def reference(sampler: str, base, refiner, x, keep_history: bool = True, switch: int = 1) -> torch.Tensor:
    """Independent 4-step run: base for steps 0…switch, refiner after; one loop, one history."""
    sigmas = toy.karras(STEPS).to(torch.float32)
    x = x * sigmas[0]
    old = None
    for i in range(STEPS):
        model, kind = (base, "base") if i <= switch else (refiner, "refiner")
        d = _denoised(model, x, sigmas[i], kind)
        if sampler == "Euler":
            x = x + (x - d) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
            continue
        if sigmas[i + 1] == 0:
            x = d
        else:
            h = math.log(sigmas[i]) - math.log(sigmas[i + 1])
            if not keep_history and i == switch + 1:
                old = None  # what a re-created sampler would do at the hand-over
            if old is None:
                x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * d
            else:
                r = (math.log(sigmas[i - 1]) - math.log(sigmas[i])) / h
                x = (sigmas[i + 1] / sigmas[i]) * x - math.expm1(-h) * ((1 + 1 / (2 * r)) * d - (1 / (2 * r)) * old)
        old = d
    return x


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M"])
def test_four_step_result_equals_the_hand_computed_reference(monkeypatch, sampler) -> None:
    host = make_host("a1111")
    adapter = start(host, monkeypatch)
    base = base_unet_of(host)
    refiner = toy.ToyUNet("refiner", seed=7)
    install_swap(monkeypatch, refiner)
    result, p = generate(host, adapter, PARAMS, steps=STEPS, cfg_scale=CFG, sampler_name=sampler)
    noise = p.noise((1, toy.CHANNELS, 8, 8))
    expected = reference(sampler, base, refiner, noise)
    # float32 rounding of values up to ~50 (the refiner's Fourier features are computed in float32
    # here and in float64 by the reference)
    assert torch.allclose(result, expected, rtol=1e-5, atol=5e-4), (result - expected).abs().max()
    for other_switch in (0, 2):  # one evaluation more or less on the base is far outside that tolerance
        assert (result - reference(sampler, base, refiner, noise, switch=other_switch)).abs().max() > 1e-2
    if sampler == "DPM++ 2M":
        # the first refiner step's 2nd-order term used the base's last denoised: losing the history
        # (a new sampler at the switch) gives a clearly different image
        lost = reference(sampler, base, refiner, noise, keep_history=False)
        assert (result - lost).abs().max() > 1e-3


# -- samplers with several evaluations per step ------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["Heun", "DPM2"])
def test_multi_evaluation_samplers_switch_by_sigma(monkeypatch, sampler) -> None:
    host = make_host("a1111")
    adapter = start(host, monkeypatch)
    base = base_unet_of(host)
    refiner = toy.ToyUNet("refiner", seed=7)
    install_swap(monkeypatch, refiner)
    params = PARAMS.replace(refiner_switch=0.5)  # switch 2: refiner below σ[2]
    generate(host, adapter, params, steps=STEPS, cfg_scale=CFG, sampler_name=sampler)
    sigma_switch = float(toy.karras(STEPS)[2])
    seen_base = [float(s[0]) for s in base.seen_sigmas]
    seen_refiner = [float(s[0]) for s in refiner.seen_sigmas]
    assert seen_base and seen_refiner
    assert all(s >= sigma_switch * (1 - 1e-6) for s in seen_base)
    assert all(s < sigma_switch for s in seen_refiner)
    # Fooocus's callback rule gives the same split: the 2nd evaluation of step `switch` is the refiner's
    first_refiner_call = len(seen_base)
    assert first_refiner_call == {"Heun": 5, "DPM2": 5}[sampler]  # steps 0,1 (2 each) + step 2's first


# -- lifetime ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_kind", ["a1111", "forge-main"])
def test_next_plain_request_is_bit_identical_to_a_fresh_host(monkeypatch, host_kind) -> None:
    host = make_host(host_kind)
    adapter = start(host, monkeypatch)
    install_swap(monkeypatch, toy.ToyUNet("refiner", seed=7))
    with_refiner, _ = generate(host, adapter, PARAMS, steps=STEPS, sampler_name="DPM++ 2M")
    plain_after, _ = generate(host, adapter, None, steps=STEPS, sampler_name="DPM++ 2M")
    fresh = make_host(host_kind)
    fresh_adapter = start(fresh, monkeypatch)
    plain_fresh, _ = generate(fresh, fresh_adapter, None, steps=STEPS, sampler_name="DPM++ 2M")
    assert torch.equal(plain_after, plain_fresh)
    assert not torch.allclose(with_refiner, plain_fresh)


def test_base_is_restored_after_an_exception_mid_sampling(monkeypatch) -> None:
    host = make_host("a1111")
    adapter = start(host, monkeypatch)
    base = base_unet_of(host)

    class Failing(toy.ToyUNet):
        def eps(self, *args):
            raise RuntimeError("out of memory")

    install_swap(monkeypatch, Failing("refiner", seed=7))
    with pytest.raises(RuntimeError, match="out of memory"):
        generate(host, adapter, PARAMS, steps=STEPS, sampler_name="Euler")
    assert base_unet_of(host) is base
    assert host.script_callbacks.callback_map and all(not v for v in host.script_callbacks.callback_map.values())


def test_refiner_equal_kind_base_keeps_the_conditioning(monkeypatch) -> None:
    """An SDXL base-type refiner ("two SDXL models") gets the base's conds unchanged (2816 vector)."""
    host = make_host("a1111")
    adapter = start(host, monkeypatch)
    second = toy.ToyUNet("sdxl", seed=11)
    install_swap(monkeypatch, second, kind=KIND_SDXL_BASE)
    generate(host, adapter, PARAMS, steps=STEPS, sampler_name="Euler")
    assert len(second.seen_vectors) == 2 and all(v.shape[1] == 2816 for v in second.seen_vectors)


def test_hires_pass_uses_the_base(monkeypatch) -> None:
    host = make_host("a1111")
    adapter = start(host, monkeypatch)
    refiner = toy.ToyUNet("refiner", seed=7)
    swaps = install_swap(monkeypatch, refiner)
    generate(host, adapter, PARAMS, steps=STEPS, sampler_name="Euler", enable_hr=True)
    assert len(refiner.seen_sigmas) == 2  # first pass only
    assert swaps[0].evaluations == ["base", "base", "refiner", "refiner"]
