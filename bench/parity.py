"""Fooocus parity on a real WebUI: PSNR and max |Δlatent| against Fooocus's own references, per case.

    source /root/hosts/env_forge.sh   # or env_a1111.sh; then point at a host folder of your own
    flock /work/coord/slot1.lock .venv/bin/python bench/parity.py --webui /root/hosts/forge_mine \
        --python /root/hosts/forge/venv/bin/python --port 7950 \
        --args "--ckpt /root/hosts/models/sdxl_tiny.safetensors --ckpt-dir /root/hosts/models --skip-google-blockly"

Starts the host (this checkout and `bench/parity_probe` linked into its extensions/ folder for the run),
sends every case of `tests/parity/cases.py` through /sdapi/v1/txt2img with the Fooocus args of the case,
once with "Match Fooocus" off and once on (`--match`), and prints one row per case: PSNR in dB of the
decoded image against `tests/data/fooocus_parity/<case>.png` (inf = identical) and the largest absolute
difference of the sampler's output latent against Fooocus's `sampler_latent`. "n/a" when the host refused
the request (e.g. an extension without `match_fooocus`; the reason is printed under the table).

The `expansion` case needs Fooocus's own small expansion files (not in this repository):
`SD_WEBUI_EXPANSION_SMALL_FILES=<Fooocus>/models/prompt_expansion/fooocus_expansion` (see
tests/parity/parity_host.py); without it the case is skipped with a note. Its PSNR cell says whether the
host's expansion text was Fooocus's ("expansion same": equal sha256).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "parity"))

from cases import CASES, DATA_DIR  # noqa: E402
from expansion_model import expansion_digest  # noqa: E402
from parity_host import (  # noqa: E402
    SMALL_FILES_ENV,
    ExpansionFolderUnavailable,
    prepare_expansion_folder,
    psnr,
    recorded_expansion_model,
    reference_image,
    reference_latent,
    reference_metadata,
    running_host,
)
from webui_host import HostSetup  # noqa: E402  (on the path through parity_host)

MATCH_COLUMNS = {"off": [False], "on": [True], "both": [False, True], "unset": [None]}


def expansion_folder(cases: list, options: argparse.Namespace) -> tuple[Path | None, dict[str, str]]:
    """The host's expansion folder (from $SD_WEBUI_EXPANSION_SMALL_FILES, see parity_host) and the cases
    skipped for want of one, with the reason."""
    wanted = [c for c in cases if c.expansion]
    if not wanted:
        return None, {}
    recorded = recorded_expansion_model(wanted[0], options.data)
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        return prepare_expansion_folder(recorded, os.environ.get(SMALL_FILES_ENV), scratch), {}
    except ExpansionFolderUnavailable as error:
        return None, {c.name: str(error) for c in wanted}


def expansion_check(case, result: dict, data: Path) -> str:
    """'same' when the host's expansion text has the sha256 Fooocus's had, else what differs."""
    wanted = reference_metadata(data)["cases"][case.name].get("expansion_sha256")
    if not result["expansion"]:
        return "none"
    return "same" if expansion_digest(result["expansion"]) == wanted else "differs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webui", type=Path, default=os.environ.get("SD_WEBUI_DIR"), required=False)
    parser.add_argument("--python", type=Path, default=os.environ.get("SD_WEBUI_PYTHON"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SD_WEBUI_PORT", "7950")))
    parser.add_argument("--args", default=os.environ.get("SD_WEBUI_ARGS", ""), help="extra host arguments")
    parser.add_argument("--ckpt", default=os.environ.get("SD_WEBUI_CKPT"))
    parser.add_argument("--match", choices=sorted(MATCH_COLUMNS), default="both",
                        help="'unset' sends no match_fooocus field (extensions without it)")
    parser.add_argument("--cases", nargs="*", help="only these cases")
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--extension", type=Path, default=REPO,
                        help="the extension checkout to link into the host (default: this one)")
    options = parser.parse_args(argv)
    if options.webui is None:
        parser.error("--webui (or SD_WEBUI_DIR) is required")
    setup = HostSetup(options.webui, options.python or options.webui / "venv" / "bin" / "python", options.port,
                      ckpt=options.ckpt, args=tuple(shlex.split(options.args)))
    cases = [c for c in CASES if not options.cases or c.name in options.cases]
    missing = [c.name for c in cases if not (options.data / f"{c.name}.png").is_file()]
    cases = [c for c in cases if c.name not in missing]
    columns = MATCH_COLUMNS[options.match]
    rows, problems = [], []
    expansion_dir, skipped = expansion_folder(cases, options)
    cases = [c for c in cases if c.name not in skipped]
    with running_host(setup, extension=options.extension, expansion_dir=expansion_dir) as host:
        kind = "Forge" if host.forge else "A1111"
        for case in cases:
            row = [case.name]
            for match in columns:
                result = host.generate(case, match)
                if result["image"] is None:
                    row += ["n/a", "n/a"]
                    problems.append(f"{case.name} match={match}: HTTP {result['status']}: {result['error'][:200]}")
                    continue
                row.append(f"{psnr(result['image'], reference_image(case, options.data)):.2f}")
                if result["latent"] is not None:
                    delta = abs(result["latent"] - reference_latent(case, options.data)).max()
                    row.append(f"{float(delta):.3g}")
                else:
                    row.append("n/a")
                if case.expansion:
                    row[-2] += f" (expansion {expansion_check(case, result, options.data)})"
                for marker in ("unavailable", "refiner off", "error"):
                    if marker in result["info"].lower():
                        problems.append(f"{case.name} match={match}: infotext mentions '{marker}'")
                print(f"  {case.name} match={match}: {row[-2]} dB, max|Δlatent| {row[-1]}", flush=True)
            rows.append(row)
    header = ["case"]
    for match in columns:
        label = {None: "unset", False: "off", True: "on"}[match]
        header += [f"PSNR {label} (dB)", f"max|Δlat| {label}"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\nFooocus parity on {kind} ({options.webui}), extension {options.extension}, {len(cases)} cases, "
          f"references {options.data}")
    for line in [header, *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths)))
    for name, reason in skipped.items():
        print(f"note: {name}: skipped: {reason}")
    for name in missing:
        print(f"note: {name}: no reference data in {options.data} (make it with tests/parity/make_fooocus_reference.py)")
    for problem in problems:
        print(f"note: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
