"""install.py installs only what the host lacks, through the host's `launch` helpers."""

from __future__ import annotations

import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class FakeLaunch:
    def __init__(self, present: set[str]):
        self.present = present
        self.pip: list[str] = []

    def is_installed(self, name: str) -> bool:
        return name in self.present

    def run_pip(self, command: str, desc: str = "") -> None:
        self.pip.append(command)


def load_install() -> dict:
    return runpy.run_path(str(REPO / "install.py"), run_name="not_main")  # importing installs nothing


def test_importing_install_py_installs_nothing() -> None:
    namespace = load_install()
    assert callable(namespace["install_missing"])


def test_only_missing_packages_are_installed(tmp_path: Path) -> None:
    namespace = load_install()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# runtime\neinops>=0.6\ntransformers>=4.30,<6  # host pins it\n\nsafetensors>=0.3.1\n")
    launch = FakeLaunch({"transformers", "safetensors"})
    assert namespace["install_missing"](launch, requirements) == ["einops>=0.6"]
    assert launch.pip == ['install "einops>=0.6"']
    everything = FakeLaunch({"einops", "transformers", "safetensors"})
    assert namespace["install_missing"](everything, requirements) == []
    assert everything.pip == []


def test_the_real_requirements_are_all_known_to_a1111() -> None:
    names = [name for name, _ in load_install()["requirements"]()]
    assert names and all(name.replace("-", "_").isidentifier() for name in names)
    assert "torch" not in names and "gradio" not in names  # the host's own, never installed by us
