"""The per-process FooocusContext: lazy objects, and no lock held across another object's slow work."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lib_fooocus.webui.context import FooocusContext


@dataclass(frozen=True)
class Settings:
    revision: str


class SlowService:
    """An expansion service whose unload waits (as it would for a download in progress)."""

    def __init__(self, settings: Settings, release: threading.Event, unloading: threading.Event):
        self.settings = settings
        self.release, self.unloading = release, unloading

    def unload(self) -> None:
        self.unloading.set()
        assert self.release.wait(10), "the test never released the unload"

    def finish_generation(self) -> None:
        pass


def test_a_slow_unload_of_the_replaced_service_blocks_no_other_caller() -> None:
    release, unloading = threading.Event(), threading.Event()
    current = {"settings": Settings("a")}
    loads = []
    context = FooocusContext(
        load_style_library=lambda: loads.append(1) or object(),
        read_expansion_settings=lambda: current["settings"],
        make_expansion_service=lambda settings: SlowService(settings, release, unloading),
        make_adapter=object,
    )
    first = context.expansion_service()
    current["settings"] = Settings("b")
    switcher = threading.Thread(target=context.expansion_service)
    switcher.start()
    try:
        assert unloading.wait(5)  # the switch is now inside the old service's unload
        # Every other path answers at once: the new service, the library, the adapter.
        done = threading.Event()

        def others() -> None:
            assert context.expansion_service() is not first
            context.style_library()
            context.reload_style_library()
            context.adapter()
            done.set()

        threading.Thread(target=others, daemon=True).start()
        assert done.wait(5), "a caller waited for the old service's unload"
    finally:
        release.set()
        switcher.join(5)
    assert context.expansion_service().settings == Settings("b")
    assert len(loads) == 2


def test_objects_are_built_once_and_kept() -> None:
    built = []
    context = FooocusContext(
        load_style_library=lambda: built.append("library") or object(),
        read_expansion_settings=lambda: Settings("a"),
        make_expansion_service=lambda settings: built.append("service") or SlowService(settings, threading.Event(), threading.Event()),
        make_adapter=lambda: built.append("adapter") or object(),
    )
    for _ in range(3):
        assert context.style_library() is context.style_library()
        assert context.expansion_service() is context.expansion_service()
        assert context.adapter() is context.adapter()
    assert sorted(built) == ["adapter", "library", "service"]
