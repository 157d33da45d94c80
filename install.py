"""Run by the WebUI (in a subprocess, at every start and after "Install from URL"): install the
runtime packages of `requirements.txt` that the host lacks, through the host's own `launch` helpers.
Packages the host already has are never touched (the hosts pin their own transformers etc.)."""

from __future__ import annotations

import re
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"


def requirements(path: Path = REQUIREMENTS) -> list[tuple[str, str]]:
    """(distribution name, pip spec) per requirement line; comments and blanks skipped."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        name = re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]
        found.append((name, spec))
    return found


def install_missing(launch, path: Path = REQUIREMENTS) -> list[str]:
    installed = []
    for name, spec in requirements(path):
        if launch.is_installed(name):
            continue
        launch.run_pip(f'install "{spec}"', f"sd-webui-fooocus requirement: {spec}")
        installed.append(spec)
    return installed


def main() -> None:
    import launch

    try:
        install_missing(launch)
    except Exception as error:  # offline: the host still starts; the feature needing it says what is missing
        print(f"sd-webui-fooocus: could not install a requirement ({error}); see requirements.txt")


if __name__ == "__main__":
    main()
