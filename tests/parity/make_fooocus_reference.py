"""Make the Fooocus-parity reference data by running Fooocus's own txt2img pipeline headless on the CPU.

    /root/fooocus-venv/bin/python tests/parity/make_fooocus_reference.py --fooocus /root/fooocus-src \
        --checkpoint /root/hosts/models/sdxl_tiny.safetensors --refiner /root/hosts/models/sdxl_tiny_b.safetensors \
        --out tests/data/fooocus_parity

Run it with a Python that has Fooocus's requirements (not the project's venv). `--fooocus` is an unmodified
checkout of Fooocus (2.5.5, commit 59f183ab); nothing of it is copied into this repository. For the run the
script writes, and removes afterwards, one file inside that checkout: our own style file
(`tests/parity/styles/parity_styles.json`) as `sdxl_styles/zz_parity_styles.json`, because Fooocus reads
styles only from its own folder. Everything else goes to a scratch folder (`--work`): a config.txt naming the
folders, hard links of the checkpoints (Fooocus renames files it cannot load and follows symlinks), our
random expansion model (tests/parity/expansion_model.py) and a seeded stand-in for the preview model.

The `expansion` case is made with Fooocus's own expansion files instead (the ones the extension pins by
sha256), so that a host can run it: `--expansion-small-files DIR` (default: $SD_WEBUI_EXPANSION_SMALL_FILES)
names the folder with the seven small files (Fooocus's `models/prompt_expansion/fooocus_expansion`), and
seeded random GPT-2 weights of their config's shape are added (`write_model_with_given_files`). Their word
list is CC BY-NC, so in that mode nothing of them is written to `--out`: the case records the sha256 of the
expansion text and of the folder's files, not the text.

    /root/fooocus-venv/bin/python tests/parity/make_fooocus_reference.py --fooocus /root/fooocus-src \
        --checkpoint /root/hosts/models/sdxl_tiny.safetensors --cases expansion --skip-workloads \
        --expansion-small-files /root/fooocus-src/models/prompt_expansion/fooocus_expansion

How Fooocus is driven (see the project's notes on running Fooocus headless): set `sys.argv` for its
`args_manager`, point `config_path` at the config, import `args_manager`, `modules.config`, call
`config.update_files()`, import `modules.async_worker` (patches and the worker thread), then per case build
an `AsyncTask` from the argument list the web UI sends (its order is `webui.py`'s `ctrls`), queue it and
wait for `finish`. Recording wraps functions Fooocus looks up at call time and calls them unchanged.

Output (see tests/data/fooocus_parity/README.md): per case `<name>.png`, `<name>.safetensors` (latents,
initial noise, σ, optional conditioning) and one `metadata.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import (  # noqa: E402  (the folder is put on sys.path just above)
    CASES,
    FOOOCUS_COMMIT,
    SDXL_LATENT_SCALE,
    STYLES_FILE,
    WORKLOAD_CASES,
    ParityCase,
)
from expansion_model import (  # noqa: E402
    expansion_digest,
    write_expansion_model,
    write_model_with_given_files,
)

STYLE_FILE_IN_FOOOCUS = "zz_parity_styles.json"
BASE_NAME = "parity_base.safetensors"
REFINER_NAME = "parity_refiner.safetensors"


# -- scratch folder ----------------------------------------------------------------------------------


def link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_preview_stand_in(path: Path) -> None:
    """Fooocus always loads its preview model (`vae_approx/xlvaeapp.pth`); previews are off, so a seeded
    random one with the right shapes never touches the result."""
    import torch

    shapes = [(8, 4, 7), (16, 8, 5), (32, 16, 3), (64, 32, 3), (32, 64, 3), (16, 32, 3), (8, 16, 3), (3, 8, 3)]
    generator = torch.Generator().manual_seed(0)
    state = {}
    for number, (out_ch, in_ch, k) in enumerate(shapes, 1):
        state[f"conv{number}.weight"] = torch.randn(out_ch, in_ch, k, k, generator=generator) * 0.01
        state[f"conv{number}.bias"] = torch.zeros(out_ch)
    torch.save(state, path)


def prepare_work_folder(work: Path, checkpoint: Path, refiner: Path | None,
                        expansion_small_files: Path | None = None) -> dict[str, str]:
    folders = {name: work / name for name in (
        "checkpoints", "loras", "embeddings", "vae_approx", "vae", "upscale_models", "inpaint", "controlnet",
        "clip_vision", "expansion", "wildcards", "safety_checker", "sam", "outputs", "temp")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    link_or_copy(checkpoint, folders["checkpoints"] / BASE_NAME)
    if refiner is not None:
        link_or_copy(refiner, folders["checkpoints"] / REFINER_NAME)
    write_preview_stand_in(folders["vae_approx"] / "xlvaeapp.pth")
    if expansion_small_files is None:
        expansion_hashes = write_expansion_model(folders["expansion"])
    else:
        shutil.rmtree(folders["expansion"])  # nothing of the made-up model may stay beside Fooocus's files
        expansion_hashes = write_model_with_given_files(folders["expansion"], expansion_small_files)
    config = {
        "path_checkpoints": [str(folders["checkpoints"])],
        "path_loras": [str(folders["loras"])],
        "path_embeddings": str(folders["embeddings"]),
        "path_vae_approx": str(folders["vae_approx"]),
        "path_vae": str(folders["vae"]),
        "path_upscale_models": str(folders["upscale_models"]),
        "path_inpaint": str(folders["inpaint"]),
        "path_controlnet": str(folders["controlnet"]),
        "path_clip_vision": str(folders["clip_vision"]),
        "path_fooocus_expansion": str(folders["expansion"]),
        "path_wildcards": str(folders["wildcards"]),
        "path_safety_checker": str(folders["safety_checker"]),
        "path_sam": str(folders["sam"]),
        "path_outputs": str(folders["outputs"]),
        "temp_path": str(folders["temp"]),
        "temp_path_cleanup_on_launch": False,
        "default_model": BASE_NAME,
        "previous_default_models": [],
        "default_refiner": "None",
        "default_loras": [],
        "checkpoint_downloads": {}, "lora_downloads": {}, "embeddings_downloads": {}, "vae_downloads": {},
    }
    (work / "config.txt").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return expansion_hashes


# -- Fooocus ------------------------------------------------------------------------------------------


def start_fooocus(fooocus: Path, work: Path) -> Any:
    """Import Fooocus the way its launcher does, minus environment preparation and downloads."""
    sys.argv = ["make_fooocus_reference", "--always-cpu", "--all-in-fp32", "--clip-in-fp32", "--vae-in-fp32",
                "--disable-analytics", "--disable-preset-download", "--disable-in-browser",
                "--disable-image-log", "--disable-metadata",
                "--output-path", str(work / "outputs"), "--temp-path", str(work / "temp")]
    os.environ["config_path"] = str(work / "config.txt")  # noqa: SIM112  (Fooocus reads this exact name)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.chdir(fooocus)
    sys.path.insert(0, str(fooocus))
    import args_manager  # noqa: F401  (parses sys.argv)
    from modules import config

    config.update_files()
    import modules.async_worker as worker

    return worker


class Recorder:
    """Wraps the functions Fooocus calls at run time; each wrapper calls the original unchanged."""

    def __init__(self) -> None:
        self.current: dict[str, Any] = {}
        self.skip_diffusion = False  # prompt assembly only: no sampling, a black image instead

    def reset(self) -> None:
        self.current = {"clip_encode": [], "sample": [], "sampler_out": [], "decode_in": [], "tree": [],
                        "diffusion": []}

    def install(self) -> None:
        import ldm_patched.modules.samplers as samplers
        import modules.core as core
        import modules.default_pipeline as pipeline
        import modules.patch as patch
        import modules.sample_hijack as hijack

        record = self

        real_clip_encode = pipeline.clip_encode

        def clip_encode(texts, pool_top_k=1):
            result = real_clip_encode(texts=texts, pool_top_k=pool_top_k)
            record.current["clip_encode"].append({
                "texts": list(texts), "pool_top_k": int(pool_top_k),
                "crossattn": result[0][0].detach().float().cpu().clone(),
                "pooled": result[0][1]["pooled_output"].detach().float().cpu().clone()})
            return result

        pipeline.clip_encode = clip_encode

        real_process = pipeline.process_diffusion

        def process_diffusion(*args, **kwargs):
            if record.skip_diffusion:
                import numpy as np

                images = [np.zeros((kwargs["height"], kwargs["width"], 3), dtype=np.uint8)]
            else:
                images = real_process(*args, **kwargs)
            record.current["diffusion"].append({"kwargs": {k: v for k, v in kwargs.items() if isinstance(
                v, (int, float, str, bool))}, "images": images})
            return images

        pipeline.process_diffusion = process_diffusion

        real_sample = hijack.sample_hacked

        def sample_hacked(model, noise, positive, negative, cfg, device, sampler, sigmas, *args, **kwargs):
            record.current["sample"].append({"noise": noise.detach().float().cpu().clone(),
                                             "sigmas": sigmas.detach().cpu().clone(), "cfg": float(cfg),
                                             "seed": kwargs.get("seed")})
            return real_sample(model, noise, positive, negative, cfg, device, sampler, sigmas, *args, **kwargs)

        hijack.sample_hacked = sample_hacked

        real_ksampler_sample = samplers.KSAMPLER.sample

        def ksampler_sample(self, *args, **kwargs):
            out = real_ksampler_sample(self, *args, **kwargs)
            record.current["sampler_out"].append(out.detach().float().cpu().clone())
            return out

        samplers.KSAMPLER.sample = ksampler_sample

        real_decode = core.decode_vae

        def decode_vae(vae, latent_image, tiled=False):
            record.current["decode_in"].append(latent_image["samples"].detach().float().cpu().clone())
            return real_decode(vae=vae, latent_image=latent_image, tiled=tiled)

        core.decode_vae = decode_vae

        real_init = patch.BrownianTreeNoiseSamplerPatched.global_init

        def global_init(x, sigma_min, sigma_max, seed=None, transform=lambda x: x, cpu=False):
            record.current["tree"].append({"sigma_min": float(sigma_min), "sigma_max": float(sigma_max),
                                           "seed": seed, "shape": list(x.shape), "cpu": bool(cpu)})
            return real_init(x, sigma_min, sigma_max, seed=seed, transform=transform, cpu=cpu)

        patch.BrownianTreeNoiseSamplerPatched.global_init = staticmethod(global_init)


def task_args(case: ParityCase, refiner_name: str) -> list[Any]:
    """The web UI's argument list (`webui.py` `ctrls` without its first element), for one txt2img image."""
    import args_manager
    import modules.config as config
    import modules.flags as flags

    cli = args_manager.args
    args: list[Any] = [
        False,  # generate_image_grid
        case.prompt, case.negative, list(case.styles),
        flags.Performance.SPEED.value, f"{case.width}×{case.height}", 1, "png", case.seed,
        False,  # read_wildcards_in_order
        case.sharpness, case.cfg,
        BASE_NAME, refiner_name, 0.5,  # refiner_switch (only its forced override below counts)
    ]
    for _ in range(config.default_max_lora_number):
        args += [False, "None", 1.0]
    args += [False, "uov"]  # input_image_checkbox, current_tab
    args += [flags.disabled, None]  # uov_method, uov_input_image
    args += [[], None, "", None]  # outpaint_selections, inpaint image, additional prompt, mask
    args += [True, True, False, False]  # disable_preview, disable_intermediate_results, seed increment, nsfw
    args += [case.adm_scaler_positive, case.adm_scaler_negative, case.adm_scaler_end, case.adaptive_cfg, 2]
    args += ["dpmpp_2m_sde_gpu", "karras", flags.default_vae]
    args += [case.steps, case.switch_step if case.refiner else -1, -1, -1, -1]  # overwrite step/switch/w/h/vary
    args += [-1, False, False]  # overwrite_upscale_strength, mixing ×2
    args += [False, False, 64, 128]  # cn preprocessor debugging/skipping, canny thresholds
    args += ["joint", 0.25]  # refiner_swap_method, controlnet_softness
    args += [False, 1.01, 1.02, 0.99, 0.95]  # FreeU
    args += [False, False, "v2.6", 1.0, 0.618, False, False, 0]  # inpaint controls
    if not cli.disable_image_log:
        args += [False]
    if not cli.disable_metadata:
        args += [False, "fooocus"]
    for _ in range(config.default_controlnet_image_count):
        args += [None, 0.5, 0.6, flags.cn_ip]
    args += [False, 0, False, None, False, flags.disabled, "Before First Enhancement", "Original Prompts"]
    for _ in range(config.default_enhance_tabs):
        args += [False, "", "", "", "sam", "full", "vit_b", 0.25, 0.3, 0, False, "v2.6", 1.0, 0.618, 0, False]
    return args


def run_case(worker: Any, recorder: Recorder, case: ParityCase, refiner_name: str) -> dict[str, Any]:
    recorder.reset()
    task = worker.AsyncTask(args=task_args(case, refiner_name))
    started = time.monotonic()
    worker.async_tasks.append(task)
    while not any(item[0] == "finish" for item in task.yields):
        time.sleep(0.1)
    record = dict(recorder.current)
    record["seconds"] = time.monotonic() - started
    if not record["diffusion"] or len(record["clip_encode"]) < 1:
        msg = f"case {case.name}: Fooocus did not generate (see its log above)"
        raise RuntimeError(msg)
    return record


# -- output ------------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expansion_entries(case: ParityCase, positive_texts: list[str], pool_count: int,
                      given_files: dict[str, str] | None) -> dict[str, Any]:
    """The metadata of a case's expansion. With the made-up model: the text, and the workloads as encoded.
    With files given at run time (Fooocus's word list, CC BY-NC): only the sha256 of the text and of the
    model files, and the workloads without the expansion (the last one, outside the pooled ones)."""
    if not case.expansion:
        return {"expansion": "", "positive_workloads": positive_texts}
    if given_files is None:
        return {"expansion": positive_texts[-1], "positive_workloads": positive_texts}
    return {
        "expansion_sha256": expansion_digest(positive_texts[-1]),
        "positive_workloads": positive_texts[:pool_count],
        "positive_workloads_note": "the expansion (last workload) is not stored: its words are Fooocus's "
                                   "CC BY-NC word list; expansion_sha256 is the sha256 of its UTF-8 text",
        "expansion_model": {
            "small_files": "Fooocus's own (the sha256 the extension pins), read at run time, never stored here",
            "weights": "seeded random GPT-2 of their config's shape (tests/parity/expansion_model.py "
                       "write_seeded_weights)",
            "sha256": given_files,
        },
    }


def save_case(out: Path, case: ParityCase, record: dict[str, Any],
              given_files: dict[str, str] | None = None) -> dict[str, Any]:
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    image = record["diffusion"][-1]["images"][0]
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(out / f"{case.name}.png", optimize=False)
    encodes = record["clip_encode"]
    positive, negative = encodes[0], (encodes[1] if len(encodes) > 1 else None)
    sample = record["sample"][0]
    tensors = {
        "sampler_latent": record["sampler_out"][-1].contiguous(),
        "decode_latent": record["decode_in"][-1].contiguous(),
        "initial_noise": sample["noise"].contiguous(),
        "sigmas": sample["sigmas"].to(torch.float32).contiguous(),
    }
    if case.save_conditioning:
        tensors["positive_crossattn"] = positive["crossattn"].to(torch.float16).contiguous()
        tensors["positive_pooled"] = positive["pooled"].to(torch.float16).contiguous()
        if negative is not None:
            tensors["negative_crossattn"] = negative["crossattn"].to(torch.float16).contiguous()
            tensors["negative_pooled"] = negative["pooled"].to(torch.float16).contiguous()
    save_file(tensors, str(out / f"{case.name}.safetensors"))
    return {
        "case": case.to_dict(),
        "seed_used": int(record["tree"][0]["seed"]) if record["tree"] else None,
        "sampler_seed": sample["seed"],
        "brownian_tree": record["tree"],
        "sigmas": [float(s) for s in sample["sigmas"].tolist()],
        **expansion_entries(case, list(positive["texts"]), int(positive["pool_top_k"]), given_files),
        "positive_pool_count": positive["pool_top_k"],
        "negative_workloads": negative["texts"] if negative else None,
        "negative_pool_count": negative["pool_top_k"] if negative else None,
        "positive_crossattn_shape": list(positive["crossattn"].shape),
        "negative_crossattn_shape": list(negative["crossattn"].shape) if negative else None,
        "process_diffusion": record["diffusion"][-1]["kwargs"],
        "png_sha256": sha256_of(out / f"{case.name}.png"),
        "latent_sha256": hashlib.sha256(tensors["sampler_latent"].numpy().tobytes()).hexdigest(),
        "seconds": round(record["seconds"], 1),
    }


def run_workload_cases(worker: Any, recorder: Recorder) -> list[dict[str, Any]]:
    """Fooocus's prompt assembly (process_prompt + clip_encode) for WORKLOAD_CASES; sampling is skipped."""
    results = []
    recorder.skip_diffusion = True
    try:
        for item in WORKLOAD_CASES:
            case = ParityCase(item.name, item.prompt, item.negative, seed=item.seed, styles=item.styles, steps=1,
                              width=64, height=64)
            record = run_case(worker, recorder, case, "None")
            positive, negative = record["clip_encode"][0], record["clip_encode"][1]
            results.append({**item.to_dict(),
                            "positive_workloads": positive["texts"], "positive_pool_count": positive["pool_top_k"],
                            "negative_workloads": negative["texts"], "negative_pool_count": negative["pool_top_k"],
                            "positive_crossattn_shape": list(positive["crossattn"].shape),
                            "negative_crossattn_shape": list(negative["crossattn"].shape)})
            print(f"[parity] workloads {item.name}: {positive['texts']} / {negative['texts']}", flush=True)
    finally:
        recorder.skip_diffusion = False
    return results


def fooocus_commit(fooocus: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(fooocus), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{FOOOCUS_COMMIT} (as given; {fooocus} is not a git checkout)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fooocus", type=Path, required=True, help="a Fooocus 2.5.5 checkout (59f183ab)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="the SDXL checkpoint (base)")
    parser.add_argument("--refiner", type=Path, help="a second SDXL checkpoint of the same shape (refiner case)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "data" / "fooocus_parity")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fooocus-parity-work"))
    parser.add_argument("--cases", nargs="*", help="only these case names (default: all)")
    parser.add_argument("--skip-workloads", action="store_true", help="do not (re)make workloads.json")
    parser.add_argument("--expansion-small-files", type=Path,
                        default=os.environ.get("SD_WEBUI_EXPANSION_SMALL_FILES") or None,
                        help="the folder with Fooocus's seven small expansion files (Fooocus's "
                             "models/prompt_expansion/fooocus_expansion): the expansion model becomes them + "
                             "seeded weights; only with --cases expansion --skip-workloads")
    options = parser.parse_args(argv)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    fooocus, out, work = options.fooocus.resolve(), options.out.resolve(), options.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cases = [c for c in CASES if not options.cases or c.name in options.cases]
    if any(c.refiner for c in cases) and options.refiner is None:
        parser.error("the refiner case needs --refiner")
    given = options.expansion_small_files
    if given is not None and (not options.skip_workloads or any(not c.expansion for c in cases)):
        parser.error("--expansion-small-files makes only the expansion case: add --cases expansion "
                     "--skip-workloads (the other data were made with the made-up expansion model)")
    expansion_hashes = prepare_work_folder(work, options.checkpoint.resolve(),
                                           options.refiner.resolve() if options.refiner else None,
                                           given.resolve() if given else None)
    style_target = fooocus / "sdxl_styles" / STYLE_FILE_IN_FOOOCUS
    shutil.copyfile(STYLES_FILE, style_target)
    metadata_path = out / "metadata.json"
    metadata = json.loads(metadata_path.read_text()) if metadata_path.exists() else {"cases": {}}
    try:
        worker = start_fooocus(fooocus, work)
        recorder = Recorder()
        recorder.install()
        import torch

        for case in cases:
            refiner_name = REFINER_NAME if case.refiner else "None"
            print(f"[parity] case {case.name}", flush=True)
            record = run_case(worker, recorder, case, refiner_name)
            metadata["cases"][case.name] = save_case(out, case, record, expansion_hashes if given else None)
            if given:
                metadata["cases"][case.name]["command"] = command
            print(f"[parity] case {case.name} done in {record['seconds']:.0f} s", flush=True)
        if not options.skip_workloads:
            workloads = {"how": ("Fooocus's handler on each input (process_prompt and clip_encode as they run; "
                                 "sampling replaced by a black image): the texts of each workload in order and "
                                 "the number of leading workloads whose pooled outputs are summed"),
                         "cases": run_workload_cases(worker, recorder)}
            (out / "workloads.json").write_text(json.dumps(workloads, indent=1, ensure_ascii=False) + "\n",
                                                encoding="utf-8")
        metadata.update({
            "fooocus_commit": fooocus_commit(fooocus),
            "torch": torch.__version__,
            "styles_file_sha256": sha256_of(STYLES_FILE),
            "latent_note": (f"sampler_latent = the k-diffusion sampler's output (before process_latent_out), the "
                            f"space a WebUI sampler returns; decode_latent = what Fooocus hands to decode_vae = "
                            f"sampler_latent / {SDXL_LATENT_SCALE}"),
            "precision": "float32 everywhere (--always-cpu --all-in-fp32 --clip-in-fp32 --vae-in-fp32)",
        })
        if given is None:  # the made-up expansion model (workloads.json) and the run that made the data
            metadata.update({
                "command": command,
                "checkpoint": {"base": options.checkpoint.name,
                               "refiner": options.refiner.name if options.refiner else None},
                "expansion_model_sha256": expansion_hashes,
            })
            if any(c.expansion for c in cases):
                shutil.copytree(work / "expansion", out / "expansion_model", dirs_exist_ok=True)
        metadata_path.write_text(json.dumps(metadata, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    finally:
        style_target.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
