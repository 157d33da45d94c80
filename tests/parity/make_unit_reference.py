"""Make host-free unit reference data by calling Fooocus's own functions (no checkpoint needed).

    /root/fooocus-venv/bin/python tests/parity/make_unit_reference.py --fooocus /root/fooocus-src \
        --out tests/data/fooocus_parity/unit

Run it with a Python that has Fooocus's requirements; `--fooocus` is an unmodified Fooocus 2.5.5 checkout
(59f183ab). Nothing of Fooocus is written into this repository: only the inputs we chose and the numbers
Fooocus's functions returned for them. Written files (format: tests/data/fooocus_parity/README.md):

- brownian.safetensors + brownian.json   (a) Fooocus's global Brownian-tree noise (`BrownianTreeNoiseSamplerPatched`)
- initial_noise.safetensors + .json      (b) Fooocus's initial noise (`ldm_patched.modules.sample.prepare_noise`)
- emphasis.json                           (c) the tokenizer's text -> (segment, weight) step, and the full
                                              SDXL token/weight chunks (CLIP-L and CLIP-G tokenizers)
- weighted_encoding.safetensors + .json  (d) `encode_token_weights` with Fooocus's emphasis normalisation,
                                              on a tiny seeded CLIP text model whose weights are stored too
- sigmas.safetensors + sigmas.json       (e) the SDXL σ table Fooocus registers and its Karras schedules
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import FOOOCUS_COMMIT  # noqa: E402

# (a) Brownian tree: (name, seed, sigma_min, sigma_max, shape, [(sigma, sigma_next), ...]).
KARRAS_4 = (14.614643096923828, 3.168604850769043, 0.4469185769557953, 0.0291671771556139)
BROWNIAN_CASES: tuple[tuple[str, int, float, float, tuple[int, ...], list[tuple[float, float]]], ...] = (
    ("karras4_seed1234", 1234, 0.0291671771556139, 14.614643096923828, (1, 4, 8, 8),
     [(KARRAS_4[0], KARRAS_4[1]), (KARRAS_4[1], KARRAS_4[2]), (KARRAS_4[2], KARRAS_4[3])]),
    ("big_seed_custom_range", 2**40 + 7, 0.1, 10.0, (1, 4, 4, 6),
     [(10.0, 5.0), (5.0, 2.5), (2.5, 1.0), (1.0, 0.3), (0.3, 0.1)]),
    ("refiner_like_seed5", 5, 0.0291671771556139, 14.614643096923828, (1, 4, 8, 8),
     # the same tree queried across a base -> refiner hand-over, plus one out-of-order query
     [(KARRAS_4[0], KARRAS_4[1]), (KARRAS_4[1], KARRAS_4[2]), (KARRAS_4[2], KARRAS_4[3]),
      (KARRAS_4[0], KARRAS_4[2])]),
)

# (b) initial noise: (name, seed, shape)
NOISE_CASES = (("seed1234_1x4x32x32", 1234, (1, 4, 32, 32)), ("seed_2p32_plus5_1x4x16x24", 2**32 + 5, (1, 4, 16, 24)))

# (c) emphasis strings
EMPHASIS_STRINGS = (
    "a photo of a cat",
    "",
    "(cat)",
    "((cat))",
    "(((cat)))",
    "(cat:1.3)",
    "((cat:1.3))",
    "((red (fox:1.3) in snow))",
    "(a (b (c:0.5) d) e)",
    "[cat]",
    "[[cat]]",
    "[cat:dog:0.5]",
    r"\(not weighted\)",
    r"(\(inside\))",
    r"a \(b (c) d\) e",
    "(unbalanced",
    "unbalanced)",
    "((a) b",
    "a) (b",
    "(cat:abc)",
    "(cat:)",
    "(:1.5)",
    "(cat: 1.5)",
    "(time 12:30)",
    "(a:1.2:0.8)",
    "(cat:-1)",
    "(cat:0)",
    "number 1.5 and (2.5:1.1)",
    "line one\nline (two:1.2)",
    "  spaced   out  (words  here)  ",
    "comma,(separated:1.1),words",
    "embedding:foo (bar)",
    "a " + "verylongwordthatsplitsintomanytokens" * 2 + " end",
    " ".join(["word"] * 80) + " (tail:1.2)",
)

# (d) weighted encoding: chunks of (token id, weight); ids 1..59 are words, 62 = BOS, 63 = EOS.
BOS, EOS = 62, 63
TINY_LENGTH = 12


def chunk(words: list[tuple[int, float]], pad: int) -> list[tuple[int, float]]:
    body = [(BOS, 1.0), *words, (EOS, 1.0)]
    return body + [(pad, 1.0)] * (TINY_LENGTH - len(body))


def weighted_cases(pad: int) -> list[tuple[str, list[list[tuple[int, float]]]]]:
    return [
        ("all_weights_one", [chunk([(5, 1.0), (17, 1.0), (33, 1.0)], pad)]),
        ("some_weights", [chunk([(5, 1.1), (17, 1.21), (33, 0.8), (40, 1.0)], pad)]),
        ("weight_zero_and_two", [chunk([(8, 0.0), (9, 2.0), (10, 1.0)], pad)]),
        ("two_chunks_weight_in_second", [chunk([(3, 1.0), (4, 1.0)], pad),
                                          chunk([(11, 1.3), (12, 1.0), (13, 1.0)], pad)]),
        ("two_chunks_weights_both", [chunk([(21, 0.9), (22, 1.0)], pad), chunk([(23, 1.5), (24, 1.1)], pad)]),
        ("full_chunk_no_pad", [chunk([(i, 1.1 if i % 3 == 0 else 1.0) for i in range(30, 30 + TINY_LENGTH - 2)], pad)]),
    ]


def tiny_clip_config(path: Path) -> dict[str, Any]:
    config = {
        "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
        "eos_token_id": 2, "hidden_act": "gelu", "hidden_size": 32, "initializer_factor": 1.0,
        "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-05,
        "max_position_embeddings": TINY_LENGTH, "model_type": "clip_text_model", "num_attention_heads": 4,
        "num_hidden_layers": 3, "pad_token_id": 1, "projection_dim": 32, "torch_dtype": "float32",
        "vocab_size": 64,
    }
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return config


# -- Fooocus ------------------------------------------------------------------------------------------


def start_fooocus(fooocus: Path, work: Path) -> None:
    """Import Fooocus's modules the way its launcher does (arguments, config), without loading models."""
    sys.argv = ["make_unit_reference", "--always-cpu", "--all-in-fp32", "--clip-in-fp32", "--vae-in-fp32",
                "--disable-analytics", "--disable-preset-download", "--disable-in-browser"]
    config = {key: str(work / key) for key in ("path_outputs", "temp_path")}
    config.update({"path_checkpoints": [str(work)], "path_loras": [str(work)], "default_model": "none.safetensors",
                   "checkpoint_downloads": {}, "lora_downloads": {}, "embeddings_downloads": {},
                   "vae_downloads": {}, "default_loras": []})
    (work / "config.txt").write_text(json.dumps(config), encoding="utf-8")
    os.environ["config_path"] = str(work / "config.txt")  # noqa: SIM112  (Fooocus reads this exact name)
    os.chdir(fooocus)
    sys.path.insert(0, str(fooocus))
    import args_manager  # noqa: F401
    import modules.config
    import modules.patch

    modules.patch.patch_all()


def brownian_reference(out: Path) -> None:
    import torch
    from modules.patch import BrownianTreeNoiseSamplerPatched
    from safetensors.torch import save_file

    tensors, table = {}, []
    for name, seed, sigma_min, sigma_max, shape, pairs in BROWNIAN_CASES:
        x = torch.zeros(shape, dtype=torch.float32)
        BrownianTreeNoiseSamplerPatched.global_init(x, sigma_min, sigma_max, seed=seed, cpu=False)
        sampler = BrownianTreeNoiseSamplerPatched()
        for number, (sigma, sigma_next) in enumerate(pairs):
            # The sampler hands 0-d float32 tensors (elements of its σ list).
            noise = sampler(torch.tensor(sigma, dtype=torch.float32), torch.tensor(sigma_next, dtype=torch.float32))
            tensors[f"{name}/{number}"] = noise.contiguous()
        table.append({"name": name, "seed": seed, "sigma_min": sigma_min, "sigma_max": sigma_max,
                      "shape": list(shape), "pairs": [list(p) for p in pairs],
                      "keys": [f"{name}/{n}" for n in range(len(pairs))]})
    save_file(tensors, str(out / "brownian.safetensors"))
    (out / "brownian.json").write_text(json.dumps({"cases": table, "how": (
        "BrownianTreeNoiseSamplerPatched.global_init(torch.zeros(shape), sigma_min, sigma_max, seed=seed, "
        "cpu=False) once per case (python floats for the σ range), then the sampler called with 0-d float32 "
        "tensors (sigma, sigma_next) for each pair, in the listed order")}, indent=1) + "\n")


def noise_reference(out: Path) -> None:
    import ldm_patched.modules.sample as sample
    import torch
    from safetensors.torch import save_file

    tensors, table = {}, []
    for name, seed, shape in NOISE_CASES:
        latent = torch.zeros(shape, dtype=torch.float32)
        tensors[name] = sample.prepare_noise(latent, seed, None).contiguous()
        table.append({"name": name, "seed": seed, "shape": list(shape)})
    save_file(tensors, str(out / "initial_noise.safetensors"))
    (out / "initial_noise.json").write_text(json.dumps({"cases": table, "how": (
        "ldm_patched.modules.sample.prepare_noise(torch.zeros(shape), seed, None) as Fooocus's ksampler calls "
        "it for a txt2img latent")}, indent=1) + "\n")


def emphasis_reference(out: Path) -> None:
    from ldm_patched.modules import sd1_clip
    from ldm_patched.modules.sdxl_clip import SDXLTokenizer

    tokenizer = SDXLTokenizer()
    entries = []
    for text in EMPHASIS_STRINGS:
        segments = [(sd1_clip.unescape_important(s), w)
                    for s, w in sd1_clip.token_weights(sd1_clip.escape_important(text), 1.0)]
        tokens = tokenizer.tokenize_with_weights(text)
        entries.append({
            "text": text,
            "segments": [[s, w] for s, w in segments],
            "clip_l": [[[int(t), float(w)] for t, w in batch] for batch in tokens["l"]],
            "clip_g": [[[int(t), float(w)] for t, w in batch] for batch in tokens["g"]],
        })
    how = ("segments: [unescape_important(s), w] for (s, w) in token_weights(escape_important(text), 1.0) "
           "(ldm_patched/modules/sd1_clip.py), i.e. the tokenizer's text -> (segment, weight) step; clip_l / clip_g: "
           "SDXLTokenizer().tokenize_with_weights(text) -> chunks of 77 [token id, weight] (word ids dropped). "
           "CLIP-L pads with its end token 49407, CLIP-G with 0.")
    lines = ",\n".join(json.dumps(entry, ensure_ascii=False) for entry in entries)
    (out / "emphasis.json").write_text(f'{{"how": {json.dumps(how)},\n"entries": [\n{lines}\n]}}\n', encoding="utf-8")


def weighted_encoding_reference(out: Path, work: Path) -> None:
    import ldm_patched.modules.sd1_clip as sd1_clip
    import torch
    from safetensors.torch import save_file

    config_path = work / "tiny_clip_config.json"
    config = tiny_clip_config(config_path)
    torch.manual_seed(20261129)
    state: dict[str, torch.Tensor] | None = None
    tensors: dict[str, torch.Tensor] = {}
    table = []
    for variant, pad in (("l_like", EOS), ("g_like", 0)):
        model = sd1_clip.SDClipModel(layer="hidden", layer_idx=-2, textmodel_json_config=str(config_path),
                                     special_tokens={"start": BOS, "end": EOS, "pad": pad},
                                     layer_norm_hidden_state=False)
        if state is None:  # the patched constructor leaves weights uninitialised: fill them, seeded, once
            generator = torch.Generator().manual_seed(1234)
            with torch.no_grad():
                for key, value in sorted(model.state_dict().items()):
                    if key.endswith("position_ids"):
                        continue
                    if "layer_norm" in key and key.endswith("weight"):
                        value.copy_(1.0 + 0.1 * torch.randn(value.shape, generator=generator))
                    elif key == "text_projection":
                        value.copy_(torch.randn(value.shape, generator=generator) / value.shape[0] ** 0.5)
                    else:
                        value.copy_(0.2 * torch.randn(value.shape, generator=generator))
            state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
                     if not k.endswith("position_ids")}
        else:
            model.load_state_dict(state, strict=False)
        model.eval()
        for name, chunks in weighted_cases(pad):
            with torch.no_grad():
                z, pooled = model.encode_token_weights([list(c) for c in chunks])
            key = f"{variant}/{name}"
            tensors[f"{key}/z"] = z.float().contiguous()
            tensors[f"{key}/pooled"] = pooled.float().contiguous()
            # the raw encoding of the same chunks (no weights), for diagnosis
            with torch.no_grad():
                raw, _ = model.encode([[t for t, _w in c] for c in chunks])
            tensors[f"{key}/raw"] = raw.float().contiguous()
            table.append({"key": key, "variant": variant, "pad": pad, "chunks": [[list(p) for p in c] for c in chunks]})
    for key, value in state.items():
        tensors[f"model/{key}"] = value
    save_file(tensors, str(out / "weighted_encoding.safetensors"))
    (out / "weighted_encoding.json").write_text(json.dumps({
        "how": ("ldm_patched.modules.sd1_clip.SDClipModel (as Fooocus patches it: transformers CLIPTextModel) built "
                "from `config`, layer='hidden', layer_idx=-2 (clip skip 2), layer_norm_hidden_state=False, "
                "special tokens start=62 end=63 pad=63 (l_like) or 0 (g_like), weights = the `model/*` tensors; "
                "then encode_token_weights(chunks) (Fooocus's patched_encode_token_weights) -> `<key>/z` "
                "[1, 12 * chunks, 32] and `<key>/pooled` [1, 32] (first chunk's pooled, projected); `<key>/raw` = "
                "encode(token ids only) [chunks, 12, 32]"),
        "config": config, "special_tokens": {"start": BOS, "end": EOS},
        "cases": table}, indent=1) + "\n")


def sigma_reference(out: Path) -> None:
    import types

    import ldm_patched.modules.model_sampling as model_sampling
    import modules.sample_hijack as hijack
    from safetensors.torch import save_file

    class Sampling(model_sampling.EPS, model_sampling.ModelSamplingDiscrete):
        pass

    sampling = Sampling(None)  # default settings: scaled linear 0.00085..0.012, 1000 steps (SDXL's)
    model = types.SimpleNamespace(model_sampling=sampling)
    tensors = {"sigmas_table": sampling.sigmas.detach().float().contiguous()}
    timesteps = {}
    for steps in (4, 5, 30):
        sigmas = hijack.calculate_sigmas_scheduler_hacked(model, "karras", steps)
        tensors[f"karras_{steps}"] = sigmas.float().contiguous()
        timesteps[str(steps)] = [float(sampling.timestep(s)) for s in sigmas[:-1]]
    save_file(tensors, str(out / "sigmas.safetensors"))
    (out / "sigmas.json").write_text(json.dumps({
        "how": ("sigmas_table: ModelSamplingDiscrete (EPS) with Fooocus's precision patch (ᾱ in float64, σ cast to "
                "float32), 1000 entries; karras_N: calculate_sigmas_scheduler_hacked(model, 'karras', N) (N + 1 "
                "values, last 0); timesteps: model_sampling.timestep(σ) per step"),
        "sigma_min": float(sampling.sigma_min), "sigma_max": float(sampling.sigma_max),
        "karras": {k.split("_")[1]: v.tolist() for k, v in tensors.items() if k.startswith("karras_")},
        "timesteps": timesteps}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fooocus", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=HERE.parent / "data" / "fooocus_parity" / "unit")
    options = parser.parse_args(argv)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        start_fooocus(options.fooocus.resolve(), work)
        import torch

        torch.set_num_threads(1)
        brownian_reference(out)
        noise_reference(out)
        emphasis_reference(out)
        weighted_encoding_reference(out, work)
        sigma_reference(out)
        (out / "metadata.json").write_text(json.dumps({
            "fooocus_commit": FOOOCUS_COMMIT, "command": command, "torch": torch.__version__,
            "files": sorted(p.name for p in out.iterdir() if p.name != "metadata.json")}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
