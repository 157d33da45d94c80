"""The accordion's one-click style imports: Fooocus's 277 styles (with previews) and A1111 `styles.csv`
files (the host's own by default), each ending in one result line for the UI.

The work runs in gradio's worker thread (a plain function), never on the event loop. One import at
a time per WebUI process: a second click while one runs is answered at once ("already running")
instead of waiting; the flag that says so is flipped under a lock that is never held across the
downloads or any file I/O. After an import the style library is read again (the caller's
`reload_library`), so the picker, the REST routes, generation and the X/Y/Z choices see the new
styles.

`lib_fooocus.styles.importer` (downloads, thread pool) is imported by the first import, not when the
accordion is built at WebUI start-up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Report = Callable[[int, int, str], None]  # (files done, files in all, what happened)
UI_DOWNLOAD_TIMEOUT = 20.0  # seconds per file: the UI waits for the result line
LISTED_FAILURES = 3  # the result line names this many failures, then counts the rest
BUSY_LINE = "Another style import is running; try again when it has finished."


def _no_report(_done: int, _total: int, _text: str) -> None:
    pass


def _failure_text(failures: dict[str, str]) -> str:
    """Failures grouped by reason (without the URL each reason starts with), e.g. "6 files: cannot
    connect (Connection refused)"; the first few reasons, then how many more."""
    by_reason: dict[str, list[str]] = {}
    for name, why in failures.items():
        reason = why.split(": ", 1)[1] if why.startswith(("http://", "https://")) and ": " in why else why
        by_reason.setdefault(reason, []).append(name)
    shown = []
    for reason, names in list(by_reason.items())[:LISTED_FAILURES]:
        who = names[0] if len(names) == 1 else f"{len(names)} files"
        shown.append(f"{who}: {reason}")
    more = len(by_reason) - len(shown)
    return "; ".join(shown) + (f"; and {more} more reason(s)" if more > 0 else "")


class StyleImports:
    """The two imports, with the process-wide "one at a time" flag. `reload_library()` re-reads the
    style folders and returns the new library; `get_library()` returns the current one."""

    def __init__(
        self,
        get_library: Callable[[], Any],
        reload_library: Callable[[], Any],
        *,
        user_dir: Callable[[], Path] | None = None,
        base_url: str | None = None,
        timeout: float = UI_DOWNLOAD_TIMEOUT,
        style_files: Mapping[str, str] | None = None,
        preview_files: Mapping[str, str] | None = None,
    ):
        self._get_library = get_library
        self._reload_library = reload_library
        self._user_dir = user_dir
        self._base_url = base_url
        self._timeout = timeout
        self._given_style_files = None if style_files is None else dict(style_files)  # None: the pinned table
        self._preview_files = preview_files  # None: the pinned table
        self._flag_lock = threading.Lock()
        self._busy = False

    # -- one at a time --------------------------------------------------------------------------

    def _claim(self) -> bool:
        with self._flag_lock:  # held only to flip the flag
            if self._busy:
                return False
            self._busy = True
            return True

    def _release(self) -> None:
        with self._flag_lock:
            self._busy = False

    def _destination(self) -> Path | None:
        return self._user_dir() if self._user_dir is not None else None

    @property
    def _style_files(self) -> dict[str, str]:
        """Fooocus's style files to fetch, name -> sha256."""
        if self._given_style_files is not None:
            return self._given_style_files
        from lib_fooocus.styles.importer import FOOOCUS_STYLE_SHA256

        return dict(FOOOCUS_STYLE_SHA256)

    def _current_library(self) -> Any:
        try:
            return self._get_library()
        except Exception:  # a broken library must not stop an import that may fix it
            return None

    def _library_size(self) -> int:
        library = self._current_library()
        return len(library) if library is not None else 0

    # -- Fooocus's styles -----------------------------------------------------------------------

    def import_fooocus(self, report: Report = _no_report) -> str:
        """Download Fooocus's six style files, then (only when they are there) the 279 previews, and
        reload the library. Returns the result line."""
        if not self._claim():
            return BUSY_LINE
        try:
            return self._import_fooocus(report)
        except Exception as error:  # the UI gets a line, never a traceback; the host goes on
            log.exception("Fooocus styles import failed")
            return f"Fooocus's styles not imported: {error}"
        finally:
            self._release()

    def _import_fooocus(self, report: Report) -> str:
        from lib_fooocus.styles.importer import import_fooocus_styles, preview_hashes, resolve_base_url

        before = self._library_size()
        previews = preview_hashes() if self._preview_files is None else dict(self._preview_files)
        total = len(self._style_files) + len(previews)
        done = [0]

        def step(text: str) -> None:
            done[0] += 1
            report(done[0], total, text)

        report(0, total, "Downloading Fooocus's style files…")
        files = import_fooocus_styles(self._destination(), base_url=self._base_url, expected=self._style_files,
                                      timeout=self._timeout, progress=step)
        if not files.downloaded and not files.already_present:
            return ("Fooocus's styles not imported: no style file could be downloaded from "
                    f"{resolve_base_url(self._base_url)} ({_failure_text(files.failures)}). Check the network "
                    "connection, or set a mirror "
                    "($SD_WEBUI_FOOOCUS_STYLES_BASE_URL), or point the setting “Fooocus styles folder” at a "
                    "Fooocus install.")
        report(done[0], total, "Downloading the preview images…")
        images = import_fooocus_styles(files.folder, base_url=self._base_url, expected={}, previews=True,
                                       expected_previews=previews, timeout=self._timeout, progress=step)
        library = self._reload_library()
        after = len(library)
        json_count = len(files.downloaded) + len(files.already_present)
        text = (f"Fooocus's styles imported: {json_count} of {len(self._style_files)} style files "
                f"({len(files.downloaded)} downloaded, {len(files.already_present)} already there), "
                f"{len(images.downloaded) + len(images.already_present)} of {len(previews)} previews "
                f"({len(images.downloaded)} downloaded, {len(images.already_present)} already there); "
                f"the library has {after} styles ({after - before:+d}).")
        failures = {**files.failures, **images.failures}
        if failures:
            text += f" Skipped {len(failures)} file(s) that failed: {_failure_text(failures)}."
        return text

    # -- A1111 styles.csv -----------------------------------------------------------------------

    def import_csv(self, path_text: Any, host_files: Sequence[str | Path] = ()) -> str:
        """Convert an A1111 styles.csv into a style file (`a1111_<name>.json` in the user styles
        folder) and reload the library. An empty path imports the host's own style files."""
        if not self._claim():
            return BUSY_LINE
        try:
            return self._import_csv(str(path_text or "").strip(), host_files)
        except Exception as error:
            log.exception("A1111 styles import failed")
            return f"Not imported: {error}"
        finally:
            self._release()

    def _import_csv(self, path_text: str, host_files: Sequence[str | Path]) -> str:
        from lib_fooocus.styles.importer import import_a1111_csv

        if path_text:
            sources = [Path(path_text).expanduser()]
        else:
            sources = [Path(p) for p in host_files if Path(p).is_file()]
            if not sources:
                looked = ", ".join(str(p) for p in host_files) or "no styles file configured"
                return f"The WebUI has no styles.csv to import yet (looked at: {looked}). Give a path in the box."
        for source in sources:
            if source.suffix.lower() != ".csv" or not source.is_file():
                return (f"Not imported: {source} is not a .csv file. Give the path of an A1111 styles.csv "
                        "(a CSV with the columns name, prompt, negative_prompt).")
        old = self._current_library()
        before = len(old) if old is not None else 0
        lines = []
        for source in sources:
            try:
                target, count, warnings = import_a1111_csv(source, self._destination())
            except ValueError as error:
                lines.append(f"{source.name}: not imported ({error})")
                continue
            line = f"{source.name}: {count} style(s) imported into {target.name}"
            warnings = [*_csv_row_notes(source), *warnings]
            if warnings:
                listed = "; ".join(_short(w) for w in warnings[:LISTED_FAILURES])
                more = len(warnings) - LISTED_FAILURES
                line += f", {len(warnings)} row(s) skipped ({listed}{f'; and {more} more' if more > 0 else ''})"
            replaced = _replaced_names(old, target)
            if replaced:
                line += f", {len(replaced)} replace a style of the same name ({', '.join(replaced[:LISTED_FAILURES])}"
                line += " …)" if len(replaced) > LISTED_FAILURES else ")"
            lines.append(line)
        after = len(self._reload_library())
        return "; ".join(lines) + f". The library has {after} styles ({after - before:+d})."


def _csv_row_notes(source: Path) -> list[str]:
    """Why rows of an A1111 CSV did not become a style of their own (comment rows, whose name starts
    with '#', are not counted): no name, or a name an earlier row already had (the later row wins)."""
    import csv

    from lib_fooocus.styles.library import normalize_name

    notes, seen = [], set()
    try:
        with source.open(encoding="utf-8-sig", newline="") as file:
            for number, row in enumerate(csv.DictReader(file, skipinitialspace=True), start=2):
                name = (row.get("name") or "").strip()
                if not name:
                    notes.append(f"row {number}: no name")
                elif not name.startswith("#"):
                    key = normalize_name(name)
                    if key in seen:
                        notes.append(f"row {number}: {name!r} repeats an earlier name (the later row is kept)")
                    seen.add(key)
    except (OSError, UnicodeDecodeError, csv.Error):
        return []  # the importer reports unreadable files
    return notes


def _replaced_names(old: Any, written: Path) -> list[str]:
    """Names in the written file that the library already had from another file."""
    if old is None:
        return []
    from lib_fooocus.styles.library import StyleLibrary

    names = StyleLibrary.load([written]).names
    styles = getattr(old, "styles", {})
    return [name for name in names if name in styles and Path(styles[name].source) != written]


def _short(warning: str) -> str:
    """A skipped-row warning without the file path (the line already names the file)."""
    marker = ", entry "
    return "entry " + warning.split(marker, 1)[1] if marker in warning else warning


def host_style_files() -> list[str]:
    """The host's styles.csv file(s): A1111 1.8+ and Forge keep a list (`--styles-file`, wildcards
    resolved by its style database), A1111 ≤ 1.7 one path; by default `styles.csv` at the WebUI root."""
    try:
        from modules import shared
    except ImportError:
        return []
    database = getattr(shared, "prompt_styles", None)
    resolved = getattr(database, "all_styles_files", None)
    if resolved:
        return [str(p) for p in resolved]
    configured = getattr(shared, "styles_filename", None)
    if isinstance(configured, (list, tuple)):
        return [str(p) for p in configured if "*" not in str(p) and "?" not in str(p)]
    return [str(configured)] if configured else []
