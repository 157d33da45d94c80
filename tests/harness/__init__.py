"""Contract harness: fake A1111 / Forge host objects, faithful to the A1111 (1.6-1.10) and Forge APIs the adapters use."""

from __future__ import annotations

from typing import Any

from .a1111_host import A1111Host, NoScript, ScriptStandIn, registered_count


def start(host: A1111Host, monkeypatch: Any) -> Any:
    """Install the host's modules in `sys.modules` and return a freshly detected adapter."""
    import lib_fooocus.hosts as hosts

    host.install(monkeypatch)
    return hosts.create_adapter(hosts.detect_host())


def generate(host: A1111Host, adapter: Any, params: Any, filter_method: str = "auto", **p_kwargs: Any) -> tuple[Any, Any]:
    """One `process_images` run; `params=None` runs the host without the extension."""
    p = host.processing(**p_kwargs)
    script = NoScript() if params is None else ScriptStandIn(adapter, params, filter_method)
    return host.process_images(p, script), p


__all__ = ["A1111Host", "NoScript", "ScriptStandIn", "generate", "registered_count", "spy_filter_methods", "start"]


def spy_filter_methods(monkeypatch):
    """Record the `method` every sharpness filter call gets (the result is unchanged)."""
    from lib_fooocus.guidance import sharpness

    seen, real = [], sharpness.joint_bilateral_filter

    def recording(*args, method="auto", **kwargs):
        seen.append(method)
        return real(*args, method=method, **kwargs)

    monkeypatch.setattr(sharpness, "joint_bilateral_filter", recording)
    return seen
