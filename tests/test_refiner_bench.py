"""bench/refiner.py's host requests: "ours" must differ from "plain" only by the refiner and the
sampling tricks. Omitted fields of the API's named form take the Settings defaults, and the default
styles lengthen the negative prompt (on A1111 1.7 that alone made the request 1.30x plain: cond and
uncond of different token lengths run as two UNet calls per step), so the bench pins them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lib_fooocus.params import FooocusParams
from lib_fooocus.webui.script_args import params_from_script_args

REPO = Path(__file__).resolve().parents[1]
REFINER = "sdxl_tiny_b.safetensors"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_refiner", REPO / "bench" / "refiner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_requests_differ_from_plain_only_by_the_extension_args() -> None:
    bodies = load_bench().request_bodies(REFINER)
    plain = bodies["plain"]
    assert "alwayson_scripts" not in plain
    for name in ("fooocus", "ours"):
        body = dict(bodies[name])
        assert set(body.pop("alwayson_scripts")) == {"fooocus"}
        assert body == plain
    assert bodies["host"] == {**plain, "refiner_checkpoint": REFINER, "refiner_switch_at": 0.5}


def test_the_bench_requests_keep_the_prompts_whatever_the_settings_defaults() -> None:
    """A user's Settings with default styles and Fooocus V2 on: the bench's requests still run
    without styles and without expansion (the prompts stay the plain request's)."""
    settings_defaults = FooocusParams(styles=("Fooocus Enhance", "Fooocus Sharp"), expansion=True, refiner_switch=0.8)
    bodies = load_bench().request_bodies(REFINER)
    parsed = {name: params_from_script_args(bodies[name]["alwayson_scripts"]["fooocus"]["args"], settings_defaults)
              for name in ("fooocus", "ours")}
    for params in parsed.values():
        assert params.enabled
        assert params.styles == ()
        assert params.expansion is False
        assert params.match_fooocus is False
    assert parsed["fooocus"].refiner_checkpoint == "None"
    assert (parsed["ours"].refiner_checkpoint, parsed["ours"].refiner_switch) == (REFINER, 0.5)
    assert parsed["ours"].replace(refiner_checkpoint="None", refiner_switch=0.8) == parsed["fooocus"]
