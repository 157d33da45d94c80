"""The real k-diffusion sampler loops (crowsonkb/k-diffusion `k_diffusion/sampling.py`, the PyPI
package installed with --no-deps, see requirements-test-nodeps.txt), loaded without the package's
`__init__` (which imports wandb, clean-fid, torchvision ...).

`sampling.py` and `utils.py` are executed unchanged from the installed files. Modules they import
only for samplers or helpers the tests never call (scipy's `integrate` for LMS, `torchdiffeq` for
the adaptive ODE sampler, `torchsde` for Brownian-tree noise, torchvision for image helpers) are
stubbed while the files load when they are not installed; every loop used here (Euler, Heun, DPM2,
DPM++ 2M) runs on torch alone.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from pathlib import Path

PACKAGE = "_fooocus_test_kdiffusion"
STUBBED = ("scipy", "scipy.integrate", "torchdiffeq", "torchsde", "torchvision", "torchvision.transforms",
           "torchvision.transforms.functional")


def package_dir() -> Path | None:
    from importlib import metadata

    try:
        distribution = metadata.distribution("k-diffusion")
    except metadata.PackageNotFoundError:
        return None
    for file in distribution.files or ():
        if str(file).replace("\\", "/") == "k_diffusion/sampling.py":
            return Path(distribution.locate_file(file)).parent
    return None


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []
    module.integrate = types.SimpleNamespace(quad=None)
    module.odeint = None
    module.transforms = types.SimpleNamespace(functional=None)
    module.BrownianTree = None
    return module


def _installed(root: str) -> bool:
    try:
        return importlib.util.find_spec(root) is not None
    except (ValueError, ImportError):
        return False


@functools.cache
def sampling() -> types.ModuleType:
    """The real `k_diffusion.sampling` module (raises ImportError when the package is missing)."""
    folder = package_dir()
    if folder is None:
        msg = "k-diffusion is not installed: pip install --no-deps -r requirements-test-nodeps.txt"
        raise ImportError(msg)
    saved = {name: sys.modules.get(name) for name in STUBBED}
    try:
        missing = {root for root in {name.split(".")[0] for name in STUBBED} if not _installed(root)}
        for name in STUBBED:
            if name.split(".")[0] in missing:
                sys.modules[name] = _stub(name)
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(folder)]
        sys.modules[PACKAGE] = package
        loaded = {}
        for part in ("utils", "sampling"):
            spec = importlib.util.spec_from_file_location(f"{PACKAGE}.{part}", folder / f"{part}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            setattr(package, part, module)
            loaded[part] = module
        return loaded["sampling"]
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
