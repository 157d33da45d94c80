"""The Fooocus-parity cases: one table read by the reference maker (run with Fooocus) and the host side.

Pure data, no imports beyond the standard library, so the Fooocus venv, the WebUI harness and CI can all
read it. Every case is a txt2img request at 256x256; `styles` names the made-up styles of
`tests/parity/styles/parity_styles.json` ("Fooocus V2" turns on the prompt expansion, with the random
expansion model `tests/parity/expansion_model.py` writes). `refiner` is a key of the checkpoints given to
the scripts ("b" = the second tiny SDXL); `switch_step` is the step the refiner takes over at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STYLES_DIR = HERE / "styles"
STYLES_FILE = STYLES_DIR / "parity_styles.json"
DATA_DIR = HERE.parent / "data" / "fooocus_parity"

FOOOCUS_COMMIT = "59f183ab"
SAMPLER_FOOOCUS = "dpmpp_2m_sde_gpu"
SCHEDULER_FOOOCUS = "karras"
SAMPLER_WEBUI = "DPM++ 2M SDE"  # with scheduler "karras" (A1111 1.7: "DPM++ 2M SDE Karras")
SDXL_LATENT_SCALE = 0.13025  # SDXL's latent scale factor (process_latent_in / _out)


@dataclass(frozen=True)
class ParityCase:
    name: str
    prompt: str
    negative: str
    seed: int
    styles: tuple[str, ...] = ()
    steps: int = 4
    width: int = 256
    height: int = 256
    cfg: float = 7.0
    sharpness: float = 2.0
    adaptive_cfg: float = 7.0
    adm_scaler_positive: float = 1.5
    adm_scaler_negative: float = 0.8
    adm_scaler_end: float = 0.3
    refiner: str | None = None
    switch_step: int = -1  # -1: no refiner
    save_conditioning: bool = False
    notes: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def expansion(self) -> bool:
        return "Fooocus V2" in self.styles

    @property
    def plain_styles(self) -> tuple[str, ...]:
        return tuple(s for s in self.styles if s != "Fooocus V2")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["styles"] = list(self.styles)
        data["tags"] = list(self.tags)
        data["sampler_fooocus"], data["scheduler"] = SAMPLER_FOOOCUS, SCHEDULER_FOOOCUS
        data["sampler_webui"] = SAMPLER_WEBUI
        return data


CASES: tuple[ParityCase, ...] = (
    ParityCase("plain", "a photo of a cat", "blurry", seed=1234, save_conditioning=True,
               notes="one workload each side; the doc's ~60 dB baseline"),
    ParityCase(
        "emphasis",
        r"a ((red (fox:1.3) in snow)) with [tiny] hat, \(not weighted\) (glowing eyes:0.8), (((moss)))",
        "(blurry:1.2), lowres", seed=2024, cfg=9.0, save_conditioning=True,
        notes="nested (), (x:w) inside ((...)), [x] (no de-emphasis in Fooocus), escaped parens; cfg 9 > "
              "adaptive 7",
    ),
    ParityCase("lines", "a lighthouse on a cliff\nstormy sea, dramatic clouds\n(golden hour:1.1)",
               "blurry\nwatermark, text", seed=77, steps=5,
               notes="two extra positive lines and one extra negative line: each its own workload"),
    ParityCase("styles", "a cozy cabin in the woods", "people, text", seed=31337,
               styles=("Parity Velvet Poster", "Parity Glass Diorama", "Parity Quiet Negative"),
               notes="three styles (one negative-only, one with an emphasis) + a user negative"),
    ParityCase("styles_empty_negative", "a bowl of ramen", "", seed=5,
               styles=("Parity Ink Outline", "Parity Quiet Negative"),
               notes="empty user negative: dropped, the style negatives are the whole negative"),
    ParityCase("empty_negative", "a red bicycle", "", seed=99,
               notes="no styles, empty negative: Fooocus encodes '' (a host would zero it)"),
    ParityCase("expansion", "a small robot gardener", "blurry", seed=4242, styles=("Fooocus V2",),
               notes="random-weight expansion model: expansion text is the last positive workload, not pooled"),
    ParityCase("refiner", "a photo of a cat", "blurry", seed=1234, refiner="b", switch_step=2,
               notes="joint swap to the second tiny SDXL at step 2 of 4 (forced switch step): the base evaluates "
                     "steps 0-2, the refiner only the last step"),
    ParityCase("refiner_early", "a wooden chair in a bright room", "blurry", seed=606, refiner="b", switch_step=1,
               notes="switch at step 1 of 4: the base evaluates steps 0-1, the refiner steps 2-3"),
)

CASES_BY_NAME: dict[str, ParityCase] = {case.name: case for case in CASES}


@dataclass(frozen=True)
class WorkloadCase:
    """Prompt assembly only (Fooocus's process_prompt): which texts become workloads, and the pool counts."""

    name: str
    prompt: str
    negative: str
    styles: tuple[str, ...] = ()
    seed: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prompt": self.prompt, "negative": self.negative, "styles": list(self.styles),
                "seed": self.seed}


WORKLOAD_CASES: tuple[WorkloadCase, ...] = (
    WorkloadCase("no_styles", "a cat", "a dog"),
    WorkloadCase("empty_negative_no_styles", "a cat", ""),
    WorkloadCase("negative_only_style", "a cat", "blurry", ("Parity Quiet Negative",)),
    WorkloadCase("negative_only_style_empty_negative", "a cat", "", ("Parity Quiet Negative",)),
    WorkloadCase("style_order", "a cat", "blurry", ("Parity Glass Diorama", "Parity Velvet Poster")),
    WorkloadCase("negative_only_then_template", "a cat", "", ("Parity Quiet Negative", "Parity Ink Outline")),
    WorkloadCase("extra_lines_and_styles", "a cat\n\nsitting on a mat\n  \nat noon",
                 "blurry\ndark", ("Parity Ink Outline",)),
    WorkloadCase("safe_str_cleanup", "  a  cat   with   hat ,. ", " ,blurry.  ", ()),
    WorkloadCase("expansion_and_styles", "a small robot gardener", "", ("Fooocus V2", "Parity Velvet Poster",
                                                                         "Parity Quiet Negative"), seed=7),
    WorkloadCase("expansion_only", "a small robot gardener", "blurry", ("Fooocus V2",), seed=8),
    WorkloadCase("expansion_empty_prompt", "", "blurry", ("Fooocus V2",), seed=9),
    WorkloadCase("empty_prompt_with_style", "", "", ("Parity Ink Outline",)),
    WorkloadCase("duplicate_style", "a cat", "blurry", ("Parity Ink Outline", "Parity Ink Outline")),
    WorkloadCase("empty_everything", "", ""),
)
