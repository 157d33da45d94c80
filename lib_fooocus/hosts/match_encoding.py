"""Match Fooocus in the hosts: prompt encoding as Fooocus, and Fooocus's noise (A1111 and Forge main).

Prompt encoding (installed in `Script.process`, removed when the generation ends, also when it fails):
- the model's `get_learned_conditioning` gets an instance-level wrapper. It lets the host build its
  conditioning (so the SDXL size embeddings, devices and dtypes stay the host's), then, for each text
  the generation planned (`MatchPrompts`: the host's text → Fooocus's parts), replaces `crossattn`
  by Fooocus's multi-part encoding and the pooled columns of `vector` by the pooled sum. The text
  encoders are the host's own: A1111 `conditioner.embedders[0/1]`, Forge main
  `text_processing_engine_l/g` (their `tokenize` and `encode_with_transformers`).
- the host's cond caches are replaced by this generation's own empty ones, so a cached host encoding
  is never reused with match on and nothing of ours is reused with match off.
- texts the plan does not know (prompt editing already resolved by the host, another script's
  prompts) keep the host's encoding.

Noise (installed for the duration of `p.sample`):
- `p.rng` → Fooocus's initial noise (a CPU generator per image seed), scaled by √(1+σ₀²) as
  Fooocus does (the hosts' "SGM noise multiplier" option, on for the sampling only);
- the sampler's `create_noise_sampler` → one Brownian tree per image over this schedule's σ range.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lib_fooocus.match.prompt import CLIP_G_SPEC, CLIP_L_SPEC, TextEncoder, encode_parts, encode_text
from lib_fooocus.match.syntax import PromptParts, host_text_key, unsupported_syntax

logger = logging.getLogger("sd_webui_fooocus")

MATCH_NOTE_FALLBACK = "prompt encoded by the WebUI"


@dataclass
class MatchPrompts:
    """What Fooocus encodes for each text this generation hands the host's encoder."""

    positive: dict[str, PromptParts] = field(default_factory=dict)
    negative: dict[str, PromptParts] = field(default_factory=dict)

    def add(self, text: str, parts: PromptParts, negative: bool) -> None:
        (self.negative if negative else self.positive)[host_text_key(text)] = parts

    def find(self, text: str, negative: bool | None) -> PromptParts | None:
        key = host_text_key(text)
        first, second = (self.negative, self.positive) if negative else (self.positive, self.negative)
        found = first.get(key)
        if found is None and negative is None:
            found = second.get(key)
        return found

    def texts(self) -> list[str]:
        return [*self.positive, *self.negative]


def fallback_reason(prompts: MatchPrompts, raw_texts: Iterable[str], embeddings: Iterable[str]) -> str | None:
    """Why this generation's prompts need the host's encoder (None: Fooocus's encoding applies)."""
    names = list(embeddings)
    for text in raw_texts:
        reason = unsupported_syntax(str(text), names)
        if reason:
            return reason
    return None


# -- the host's text encoders --------------------------------------------------------------------


def host_text_encoders(sd_model: Any) -> list[TextEncoder] | None:
    """CLIP-L and CLIP-G of an SDXL model as Fooocus uses them; None for anything else."""
    engine_l = getattr(sd_model, "text_processing_engine_l", None)
    engine_g = getattr(sd_model, "text_processing_engine_g", None)
    if engine_l is not None and engine_g is not None:  # Forge main
        return _encoders(engine_l, engine_g, lambda engine: _clear(getattr(engine, "embeddings", None)))
    embedders = getattr(getattr(sd_model, "conditioner", None), "embedders", None)
    if embedders is not None and len(embedders) >= 2:  # A1111 (hijacked sgm embedders)
        first, second = embedders[0], embedders[1]
        if hasattr(first, "encode_with_transformers") and hasattr(second, "encode_with_transformers"):
            return _encoders(first, second, lambda embedder: _clear(getattr(embedder, "hijack", None)))
    return None


def _clear(holder: Any) -> None:
    """No textual-inversion fixes from an earlier call may be applied to our tokens."""
    if holder is not None and hasattr(holder, "fixes"):
        holder.fixes = None


def _encoders(clip_l: Any, clip_g: Any, before: Callable[[Any], None]) -> list[TextEncoder]:
    # Fooocus tokenises with the same CLIP tokenizer for both encoders: use CLIP-L's (Hugging Face)
    def tokenize_word(word: str) -> list[int]:
        return list(clip_l.tokenize([word])[0])

    def encoder_call(module: Any) -> Callable[[list[list[int]]], tuple[torch.Tensor, torch.Tensor | None]]:
        def encode(token_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor | None]:
            before(module)
            tokens = torch.asarray(token_lists, dtype=torch.long, device=_device_of(module))
            z = module.encode_with_transformers(tokens)
            return z, getattr(z, "pooled", None)

        return encode

    return [
        TextEncoder(tokenize_word, encoder_call(clip_l), CLIP_L_SPEC),
        TextEncoder(tokenize_word, encoder_call(clip_g), CLIP_G_SPEC),
    ]


def _device_of(module: Any) -> torch.device:
    for candidate in (module, getattr(module, "wrapped", None), getattr(module, "text_encoder", None)):
        parameters = getattr(candidate, "parameters", None)
        if callable(parameters):
            try:
                return next(iter(parameters())).device
            except (StopIteration, TypeError):
                continue
    return torch.device("cpu")


def host_embedding_names() -> list[str]:
    """Names of the textual inversions the host would recognise in a prompt."""
    names: set[str] = set()
    try:
        from modules import sd_hijack

        names |= set(getattr(sd_hijack.model_hijack.embedding_db, "word_embeddings", {}) or {})
    except Exception:
        pass
    try:
        from modules import shared

        model = shared.sd_model
        for engine in (getattr(model, "text_processing_engine_l", None), getattr(model, "text_processing_engine", None)):
            db = getattr(engine, "embeddings", None)
            names |= set(getattr(db, "word_embeddings", {}) or {})
    except Exception:
        pass
    return sorted(names)


# -- the conditioning -------------------------------------------------------------------------------


def fooocus_conditioning(parts: PromptParts, encoders: Sequence[TextEncoder]) -> tuple[torch.Tensor, torch.Tensor | None]:
    return encode_parts(parts.parts, parts.top_k, lambda text: encode_text(text, encoders))


def replace_conditioning(result: Any, texts: Sequence[str], prompts: MatchPrompts, encoders: Sequence[TextEncoder],
                         negative: bool | None) -> tuple[Any, int]:
    """The host's SDXL cond dict with Fooocus's crossattn and pooled columns for the texts the plan
    knows (all rows or none: rows must keep one token length). Returns (cond, rows replaced)."""
    if not hasattr(result, "get") or not isinstance(result.get("crossattn"), torch.Tensor):
        return result, 0
    crossattn, vector = result["crossattn"], result.get("vector")
    found = [prompts.find(str(text), negative) for text in texts]
    if not found or any(parts is None for parts in found) or len(found) != crossattn.shape[0]:
        return result, 0
    rows = [fooocus_conditioning(parts, encoders) for parts in found if parts is not None]
    lengths = {hidden.shape[1] for hidden, _ in rows}
    if len(lengths) != 1:
        return result, 0
    result["crossattn"] = torch.cat([hidden for hidden, _ in rows]).to(device=crossattn.device, dtype=crossattn.dtype)
    if isinstance(vector, torch.Tensor) and all(pooled is not None for _, pooled in rows):
        pooled = torch.cat([p for _, p in rows]).to(device=vector.device, dtype=vector.dtype)  # type: ignore[misc]
        result["vector"] = torch.cat([pooled, vector[:, pooled.shape[1]:]], dim=1)
    return result, len(rows)


class PromptEncodingHook:
    """The instance-level `get_learned_conditioning` wrapper of one generation."""

    def __init__(self, state: Any, model: Any, prompts: MatchPrompts, encoders: list[TextEncoder]):
        self.state, self.model, self.prompts, self.encoders = state, model, prompts, encoders
        self.thread = threading.get_ident()
        self.original = model.get_learned_conditioning
        self.had_instance_attribute = "get_learned_conditioning" in vars(model)
        self.previous = vars(model).get("get_learned_conditioning")
        self.replaced = 0

        def fooocus_get_learned_conditioning(texts: Any, *args: Any, **kwargs: Any) -> Any:
            return self(texts, *args, **kwargs)

        fooocus_get_learned_conditioning.__fooocus_match__ = self  # type: ignore[attr-defined]
        self.function = fooocus_get_learned_conditioning
        model.get_learned_conditioning = fooocus_get_learned_conditioning

    def active(self) -> bool:
        return not self.state.finished and threading.get_ident() == self.thread

    def __call__(self, texts: Any, *args: Any, **kwargs: Any) -> Any:
        result = self.original(texts, *args, **kwargs)
        if not self.active() or isinstance(texts, str):
            return result
        try:
            negative = getattr(texts, "is_negative_prompt", None)
            with torch.no_grad():
                result, count = replace_conditioning(result, list(texts), self.prompts, self.encoders, negative)
            self.replaced += count
            if count == 0:
                self.state.log_once("match-unknown-text", "Match Fooocus: a prompt the plan does not know was encoded by the WebUI.")
        except Exception as error:  # keep the host's conditioning rather than break the generation
            self.state.log_once("match-encode-failed", f"Match Fooocus: prompt encoding failed ({error!r}); the WebUI's encoding is used.")
            self.state.note_infotext(MATCH_NOTE_FALLBACK)
        return result

    def remove(self) -> None:
        if vars(self.model).get("get_learned_conditioning") is not self.function:
            return
        if self.had_instance_attribute:
            self.model.get_learned_conditioning = self.previous
        else:
            del self.model.get_learned_conditioning


CACHE_ATTRIBUTES = ("cached_c", "cached_uc", "cached_hr_c", "cached_hr_uc")


def private_cond_caches(p: Any) -> None:
    """This generation's own empty cond caches (the hosts share class-level ones between generations)."""
    for name in CACHE_ATTRIBUTES:
        cache = getattr(p, name, None)
        if isinstance(cache, list):
            setattr(p, name, [None] * len(cache))


def install_prompt_encoding(state: Any, p: Any, prompts: MatchPrompts, raw_texts: Iterable[str],
                            embeddings: Callable[[], Iterable[str]] = host_embedding_names) -> PromptEncodingHook | None:
    """Fooocus's prompt encoding for this generation, or None (one log line and a note saying why)."""
    reason = fallback_reason(prompts, raw_texts, embeddings())
    model = getattr(p, "sd_model", None)
    encoders = host_text_encoders(model) if reason is None else None
    if reason is None and (encoders is None or not callable(getattr(model, "get_learned_conditioning", None))):
        reason = "not an SDXL model"
    if reason is not None:
        state.log_once("match-fallback", f"Match Fooocus: {reason} - this generation's prompts are encoded by the WebUI.")
        state.note_infotext(f"{MATCH_NOTE_FALLBACK} ({reason})")
        return None
    stale = getattr(vars(model).get("get_learned_conditioning"), "__fooocus_match__", None)
    if stale is not None:  # left by a generation that failed before its end: take it off first
        stale.remove()
    private_cond_caches(p)
    hook = PromptEncodingHook(state, model, prompts, encoders or [])
    state.cleanups.append(hook.remove)
    return hook


# -- noise ----------------------------------------------------------------------------------------------


class FooocusImageRNG:
    """Stands in for the host's `p.rng`: the first `next()` is Fooocus's initial noise, later calls
    go on drawing from each image's own CPU generator (ancestral samplers)."""

    def __init__(self, shape: Sequence[int], seeds: Sequence[int], device: Any):
        self.shape = tuple(int(s) for s in shape)
        self.seeds = [int(s) for s in seeds]
        self.device = device
        self.generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in self.seeds]
        self.is_first = True

    def next(self) -> torch.Tensor:
        self.is_first = False
        rows = [torch.randn((1, *self.shape), generator=generator, device="cpu") for generator in self.generators]
        return torch.cat(rows).to(self.device)


def replace_rng(state: Any, p: Any) -> Callable[[], None] | None:
    """Put Fooocus's initial noise on `p` for this sampling; returns how to undo it."""
    current = getattr(p, "rng", None)
    if current is None or not hasattr(current, "next"):
        return None
    if float(getattr(p, "subseed_strength", 0) or 0) > 0 or int(getattr(p, "seed_resize_from_h", 0) or 0) > 0:
        state.log_once("match-variation", "Match Fooocus: variation seeds / resize seed in use - the WebUI's noise is kept.")
        state.note_infotext("WebUI noise (variation seed)")
        return None
    shape = getattr(current, "shape", None)
    seeds = getattr(current, "seeds", None)
    if shape is None or seeds is None:
        return None
    try:
        from modules import shared

        device = shared.device
    except Exception:
        device = torch.device("cpu")
    p.rng = FooocusImageRNG(shape, seeds, device)

    def undo() -> None:
        if isinstance(getattr(p, "rng", None), FooocusImageRNG):
            p.rng = current

    return undo


def force_sgm_noise_multiplier(p: Any) -> Callable[[], None] | None:
    """Fooocus scales the initial noise by √(1+σ₀²), the hosts by σ₀ unless "SGM noise multiplier"
    is on: turn it on for this sampling (and leave no trace of it in the infotext)."""
    try:
        from modules import shared
    except Exception:
        return None
    opts = shared.opts
    data = getattr(opts, "data", None)
    if not isinstance(data, dict) or bool(getattr(opts, "sgm_noise_multiplier", False)):
        return None
    had_key = "sgm_noise_multiplier" in data
    previous = data.get("sgm_noise_multiplier")
    data["sgm_noise_multiplier"] = True

    def undo() -> None:
        if had_key:
            data["sgm_noise_multiplier"] = previous
        else:
            data.pop("sgm_noise_multiplier", None)
        extra = getattr(p, "extra_generation_params", None)
        if isinstance(extra, dict):
            extra.pop("SGM noise multiplier", None)

    return undo


def wrap_class_method(owner: Any, name: str, wrapper_for: Callable[[Callable[..., Any]], Callable[..., Any]]
                      ) -> Callable[[], None] | None:
    """Replace the method `owner.name` with `wrapper_for(original)` for one sampling; returns the undo
    (which puts the original back only while our wrapper is still there), or None when the host has
    no such method."""
    original = getattr(owner, name, None)
    if original is None:
        return None
    wrapper = wrapper_for(original)
    setattr(owner, name, wrapper)

    def undo() -> None:
        if getattr(owner, name, None) is wrapper:
            setattr(owner, name, original)

    return undo


def patch_noise_sampler(state: Any, p: Any) -> Callable[[], None] | None:
    """The samplers' Brownian tree → Fooocus's (one tree per image seed over this schedule's σ range).
    Class-level for the sampling (the sampler object is made inside `p.sample`), acting only for `p`."""
    try:
        from modules import sd_samplers_common
    except Exception:
        return None

    def fooocus_create_noise_sampler(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_noise_sampler(self: Any, x: Any, sigmas: Any, sampler_p: Any) -> Any:
            if sampler_p is not state.p or state.finished:
                return original(self, x, sigmas, sampler_p)
            from lib_fooocus.match.noise import BrownianNoise, schedule_range

            low, high = schedule_range(sigmas)
            batch = int(x.shape[0])
            start = int(getattr(sampler_p, "iteration", 0) or 0) * batch
            seeds = list(sampler_p.all_seeds[start : start + batch])
            return BrownianNoise(x, low, high, seeds)

        return create_noise_sampler

    return wrap_class_method(getattr(sd_samplers_common, "Sampler", None), "create_noise_sampler",
                             fooocus_create_noise_sampler)


# -- σ schedule ----------------------------------------------------------------------------------


def fooocus_schedule_for(model_wrap: Any) -> bool:
    """Give a k-diffusion discrete-schedule wrapper (A1111's CompVisDenoiser) Fooocus's σ table
    (ᾱ in float64, σ cast to float32 once; A1111 builds σ from a float32 ᾱ) and the nearest integer
    timestep per σ (k-diffusion's `quantize`; A1111 interpolates a fractional t). Only for the
    standard 1000-step scaled-linear schedule; True when applied."""
    from lib_fooocus.guidance.schedule import sdxl_sigmas

    sigmas = getattr(model_wrap, "sigmas", None)
    if not isinstance(sigmas, torch.Tensor) or sigmas.shape != (1000,) or not hasattr(model_wrap, "quantize"):
        return False
    table = sdxl_sigmas()
    if not torch.allclose(sigmas.detach().float().cpu(), table, rtol=1e-4, atol=0):
        return False  # another schedule (v-prediction zero-SNR, a custom table): leave it
    table = table.to(device=sigmas.device, dtype=sigmas.dtype)
    model_wrap.sigmas = table
    model_wrap.log_sigmas = table.log()
    model_wrap.quantize = True
    return True


def patch_sigma_schedule(state: Any, p: Any) -> Callable[[], None] | None:
    """A1111: the sampler's schedule from Fooocus's σ table with integer timesteps (its model wrapper
    is made inside `p.sample`, so `get_sigmas` is wrapped for the sampling, acting only for `p`).
    Forge main already builds the same table and hands the UNet integer timesteps."""
    try:
        from modules import sd_samplers_kdiffusion
    except Exception:
        return None

    def fooocus_get_sigmas(original: Callable[..., Any]) -> Callable[..., Any]:
        def get_sigmas(self: Any, sampler_p: Any, steps: Any) -> Any:
            if sampler_p is state.p and not state.finished:
                fooocus_schedule_for(getattr(self, "model_wrap", None))
            return original(self, sampler_p, steps)

        return get_sigmas

    return wrap_class_method(getattr(sd_samplers_kdiffusion, "KDiffusionSampler", None), "get_sigmas",
                             fooocus_get_sigmas)


def install_noise(state: Any, p: Any) -> list[Callable[[], None]]:
    """Everything Match Fooocus changes about the sampling (noise, schedule); returns the undo steps."""
    undo = []
    for step in (replace_rng, lambda s, q: force_sgm_noise_multiplier(q), patch_noise_sampler, patch_sigma_schedule):
        try:
            done = step(state, p)
        except Exception as error:
            state.log_once(f"match-noise-{getattr(step, '__name__', 'step')}", f"Match Fooocus noise: {error!r}")
            done = None
        if done is not None:
            undo.append(done)
    return undo
