"""Fooocus-format style library: loading, name rules, ordering and prompt assembly.

A style is a name, a positive template holding `{prompt}` and a negative text. Folders are read the
way Fooocus reads its `sdxl_styles/` folder (Fooocus `modules/sdxl_styles.py` at 59f183ab): every `.json` file (a list of
`{name, prompt, negative_prompt}` objects), case-insensitively sorted, with Fooocus's own six files
moved to the end of their folder in a fixed order; names go through Fooocus's normalisation. A1111
`styles.csv` files are read too and converted to the same form.

`StyleLibrary.assemble_lines` (called by `styles.assembly.plan_prompt`) reproduces Fooocus's
per-image assembly: styles in selection order, every
template line its own part, the prompt prepended when no selected style holds `{prompt}`, style
negatives before the user's negative, further prompt lines as extra parts, empty parts dropped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib_fooocus.text import safe_str

logger = logging.getLogger(__name__)

FOOOCUS_V2 = "Fooocus V2"
RANDOM_STYLE = "Random Style"
SPECIAL_NAMES: tuple[str, ...] = (FOOOCUS_V2, RANDOM_STYLE)

# Fooocus moves these files, when present, to the end of its file list in this order (Fooocus
# `modules/sdxl_styles.py`, the loop over the six built-in file names at 59f183ab).
FOOOCUS_BUILTIN_FILES: tuple[str, ...] = (
    "sdxl_styles_fooocus.json",
    "sdxl_styles_sai.json",
    "sdxl_styles_mre.json",
    "sdxl_styles_twri.json",
    "sdxl_styles_diva.json",
    "sdxl_styles_marc_k3nt3l.json",
)

FOOOCUS_DEFAULT_SELECTION: tuple[str, ...] = (FOOOCUS_V2, "Fooocus Enhance", "Fooocus Sharp")
# Without Fooocus's files: our negative-only quality style and our sharp cinematic style, the same
# roles as Fooocus Enhance + Sharp. The V2 expansion stays opt-in (its weights are non-commercial).
OWN_DEFAULT_SELECTION: tuple[str, ...] = ("Clean Quality Negative", "Crisp Cinematic Still")

PLACEHOLDER = "{prompt}"
PREVIEW_FOLDER = "samples"

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_STYLES_DIR = REPO_ROOT / "styles"
USER_STYLES_ENV = "SD_WEBUI_FOOOCUS_STYLES_DIR"


class UnknownStyleError(ValueError):
    """One or more selected style names are not in the library. `names` lists all of them."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        listed = ", ".join(repr(n) for n in self.names)
        super().__init__(
            f"unknown style name(s): {listed}. List the available names with "
            "`python -m lib_fooocus styles list` or GET /fooocus/v1/styles; after adding style files, refresh."
        )


def default_user_styles_dir() -> Path:
    """Where imported and user styles live: $SD_WEBUI_FOOOCUS_STYLES_DIR, else `<extension>/user_styles`."""
    configured = os.environ.get(USER_STYLES_ENV, "").strip()
    return Path(configured).expanduser() if configured else REPO_ROOT / "user_styles"


def default_style_folders(fooocus_styles_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Bundled styles, then the user folder, then (optionally) an existing Fooocus `sdxl_styles` folder."""
    folders = [BUNDLED_STYLES_DIR, default_user_styles_dir()]
    if fooocus_styles_dir:
        folders.append(Path(fooocus_styles_dir).expanduser())
    return folders


def load_library(
    fooocus_styles_dir: str | os.PathLike[str] | None = None,
    extra: Iterable[str | os.PathLike[str]] = (),
) -> StyleLibrary:
    """The library the extension uses: bundled styles, the user folder, optionally an existing Fooocus
    install (its root or its `sdxl_styles` folder; a wrong path becomes a warning), then `extra`
    folders or files (e.g. an A1111 styles.csv)."""
    folders: list[Path] = default_style_folders()
    problems: list[str] = []
    if fooocus_styles_dir and str(fooocus_styles_dir).strip():
        try:
            folders.append(find_fooocus_styles_dir(fooocus_styles_dir))
        except ValueError as exc:
            problems.append(f"Fooocus styles folder setting: {exc}")
    library = StyleLibrary.load([*folders, *(Path(e) for e in extra)])
    for problem in problems:
        library._warn(problem)
    return library


def find_fooocus_styles_dir(path: str | os.PathLike[str]) -> Path:
    """Accept a Fooocus install folder or its `sdxl_styles` folder; return the folder holding the
    style JSON files. Raises ValueError naming the path when neither holds any."""
    folder = Path(path).expanduser()
    for candidate in (folder / "sdxl_styles", folder):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    msg = (f"{folder} is not a Fooocus install or its sdxl_styles folder (no style .json files found); "
           "point it at the folder that holds sdxl_styles_fooocus.json")
    raise ValueError(msg)


# -- Fooocus's text rules -------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """Fooocus's `normalize_key`: '-' becomes ' ', every word is capitalised (rest lower-cased), then
    the fixed replacements '3d'→'3D', 'Sai'→'SAI', 'Mre'→'MRE', '(s'→'(S' (anywhere in the name)."""
    words = name.replace("-", " ").split(" ")
    text = " ".join(word[:1].upper() + word[1:].lower() for word in words)
    for old, new in (("3d", "3D"), ("Sai", "SAI"), ("Mre", "MRE"), ("(s", "(S")):
        text = text.replace(old, new)
    return text


def preview_key(name: str) -> str:
    """File stem of a style's preview image, as Fooocus names its samples."""
    return name.lower().replace(" ", "_")


def split_prompt_lines(text: str) -> tuple[str, list[str]]:
    """Fooocus's line handling: every line through `safe_str`, empty lines dropped; the first line is
    the main prompt ('' when there is none), the rest are extra prompts."""
    lines = _non_empty((safe_str(line) for line in text.splitlines()), default="")
    return lines[0], lines[1:]


def _non_empty(items: Iterable[str], default: str) -> list[str]:
    kept = [item for item in items if item != ""]
    return kept or [default]


# An absolute POSIX or Windows path not inside a URL, up to whitespace or a quote.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(?:/|[A-Za-z]:\\)[^\s'\"]+")


# -- the library ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = ""
    negative_prompt: str = ""
    source: str = ""
    preview_path: str | None = None

    @property
    def has_placeholder(self) -> bool:
        return PLACEHOLDER in self.prompt

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "source": self.source,
            "has_preview": self.preview_path is not None,
        }


@dataclass(frozen=True)
class StyledPrompt:
    """Fooocus's workloads for one image. `styles` is the applied list with Random Style resolved and
    Fooocus V2 removed."""

    positive: list[str]
    negative: list[str]
    styles: list[str]
    expansion_requested: bool
    main_prompt: str
    main_negative_prompt: str


@dataclass
class StyleLibrary:
    styles: dict[str, Style] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    special_previews: dict[str, str] = field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def load(cls, folders: Iterable[str | os.PathLike[str]]) -> StyleLibrary:
        """Read every style folder (or single style file) in order. Missing folders are skipped;
        malformed files or entries are skipped with one warning each (also kept in `.warnings`)."""
        library = cls()
        for folder in folders:
            path = Path(folder).expanduser()
            library.folders.append(str(path))
            if path.is_file():
                library._load_file(path, preview_root=path.parent)
            elif path.is_dir():
                for file in style_files_in_order(path):
                    library._load_file(file, preview_root=path)
                library._find_special_previews(path)
            else:
                logger.debug("style folder %s does not exist; skipped", path)
        return library

    @classmethod
    def from_styles(cls, styles: Iterable[Style | dict[str, Any]]) -> StyleLibrary:
        library = cls()
        for item in styles:
            style = item if isinstance(item, Style) else Style(**item)
            library._add(Style(normalize_name(style.name), style.prompt, style.negative_prompt,
                               style.source, style.preview_path))
        return library

    def _warn(self, message: str) -> None:
        logger.warning("%s", message)
        self.warnings.append(message)

    def _add(self, style: Style) -> None:
        previous = self.styles.get(style.name)
        if previous is not None:
            # Fooocus keeps a plain dict: the later definition wins but keeps the earlier position.
            note = f"style {style.name!r} from {style.source} replaces the one from {previous.source}"
            logger.info("%s", note)
            self.overrides.append(note)
        self.styles[style.name] = style

    def _load_file(self, path: Path, preview_root: Path) -> None:
        try:
            if path.suffix.lower() == ".csv":
                entries = list(_read_a1111_csv(path))
            else:
                entries = list(_read_fooocus_json(path))
        except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
            self._warn(f"style file {path}: cannot be read ({exc}); its styles are skipped")
            return
        previews = preview_root / PREVIEW_FOLDER
        # One look at the folder instead of one per style when it is absent (our bundled styles have
        # none): this runs when the WebUI builds its UI.
        may_have_previews = previews.is_dir()
        for index, entry in enumerate(entries):
            style, problem = _style_from_entry(entry, path)
            if problem:
                self._warn(f"style file {path}, entry {index + 1}{_entry_label(entry)}: {problem}; entry skipped")
                continue
            preview = previews / f"{preview_key(style.name)}.jpg" if may_have_previews else None
            if preview is not None and preview.is_file():
                style = Style(style.name, style.prompt, style.negative_prompt, style.source, str(preview))
            self._add(style)

    def _find_special_previews(self, folder: Path) -> None:
        for name in SPECIAL_NAMES:
            preview = folder / PREVIEW_FOLDER / f"{preview_key(name)}.jpg"
            if preview.is_file():
                self.special_previews.setdefault(name, str(preview))

    # -- what clients may see -------------------------------------------------------------------

    def _folder_labels(self) -> list[tuple[str, str]]:
        """(folder as loaded, its last path component), longest folder first."""
        labels = {folder: Path(folder).name or folder for folder in self.folders}
        return sorted(labels.items(), key=lambda item: -len(item[0]))

    def public_source(self, source: str) -> str:
        """`source` without the server's directories: `<style folder name>/<path inside it>` (a style
        file given directly: its name); anything else: its file name."""
        for folder, label in self._folder_labels():
            try:
                relative = Path(source).relative_to(folder)
            except ValueError:
                continue
            return label if relative == Path() else f"{label}/{relative.as_posix()}"
        return Path(source).name if source else source

    def public_warnings(self) -> list[str]:
        """`warnings` with the style folders shown by name and any other absolute path by its last part."""
        public = []
        for warning in self.warnings:
            for folder, label in self._folder_labels():
                warning = warning.replace(folder, label)
            public.append(_ABSOLUTE_PATH.sub(lambda m: Path(m.group(0).replace("\\", "/")).name, warning))
        return public

    # -- lookup ---------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self.styles)

    @property
    def selectable_names(self) -> list[str]:
        """What a picker offers, as in Fooocus: the two special entries, then every style."""
        return [*SPECIAL_NAMES, *self.names]

    def __len__(self) -> int:
        return len(self.styles)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def resolve(self, name: str) -> str | None:
        """The library's spelling of `name`: exact match first, then Fooocus's normalised form (so
        'sai-anime' finds 'SAI Anime'). Special entries resolve to themselves."""
        for candidate in (name, normalize_name(name.strip())):
            if candidate in self.styles or candidate in SPECIAL_NAMES:
                return candidate
        return None

    def get(self, name: str) -> Style | None:
        resolved = self.resolve(name)
        return self.styles.get(resolved) if resolved else None

    def preview_path(self, name: str) -> str | None:
        resolved = self.resolve(name)
        if resolved in SPECIAL_NAMES:
            return self.special_previews.get(resolved)
        style = self.styles.get(resolved) if resolved else None
        return style.preview_path if style else None

    def find_preview(self, key: str) -> str | None:
        """Preview file for a preview key (lower-case, '_' for spaces), or None."""
        for name in self.selectable_names:
            if preview_key(name) == key:
                return self.preview_path(name)
        return None

    def search(self, query: str) -> list[Style]:
        """Styles whose name or text holds every word of `query` (case-insensitive); name matches first."""
        words = query.lower().split()
        if not words:
            return list(self.styles.values())
        in_name, in_text = [], []
        for style in self.styles.values():
            name = style.name.lower()
            text = f"{name} {style.prompt.lower()} {style.negative_prompt.lower()}"
            if all(word in name for word in words):
                in_name.append(style)
            elif all(word in text for word in words):
                in_text.append(style)
        return in_name + in_text

    def default_selection(self) -> list[str]:
        """Fooocus's default when its styles are present, else ours (whichever of them exist)."""
        if all(name in self.styles for name in FOOOCUS_DEFAULT_SELECTION[1:]):
            return list(FOOOCUS_DEFAULT_SELECTION)
        return [name for name in OWN_DEFAULT_SELECTION if name in self.styles]

    def check_names(self, selected: Iterable[str]) -> list[str]:
        """Resolved names in order; raises one UnknownStyleError listing every unknown name."""
        resolved, unknown = [], []
        for name in selected:
            found = self.resolve(name) if isinstance(name, str) else None
            if found is None:
                unknown.append(str(name))
            else:
                resolved.append(found)
        if unknown:
            raise UnknownStyleError(unknown)
        return resolved

    # -- assembly -------------------------------------------------------------------------------

    def assemble_lines(
        self,
        main: str,
        extra: Sequence[str],
        main_negative: str,
        extra_negative: Sequence[str],
        selected: Sequence[str],
        seed: int | None = None,
    ) -> StyledPrompt:
        """Fooocus's positive and negative parts (Fooocus `modules/async_worker.py`, the per-task prompt
        processing, with `sdxl_styles.apply_style`), from prompts already split into the main line and
        the extra lines: styles in selection order, their template lines, the prompt, the extra lines.
        "Fooocus V2" is only the expansion flag; "Random Style" draws from `random.Random(seed)`."""
        resolved = self.check_names(selected)
        expansion_requested = FOOOCUS_V2 in resolved
        chosen = [name for name in resolved if name != FOOOCUS_V2]
        if RANDOM_STYLE in chosen:
            chosen = self._resolve_random(chosen, seed)

        positive: list[str] = []
        negative: list[str] = []
        if chosen:
            any_placeholder = False
            for name in chosen:
                style = self.styles[name]
                any_placeholder = any_placeholder or style.has_placeholder
                positive += style.prompt.replace(PLACEHOLDER, main).splitlines()
                negative += style.negative_prompt.splitlines()
            if not any_placeholder:
                positive = [main, *positive]
        else:
            positive = [main]
        negative.append(main_negative)
        positive = _non_empty([*positive, *extra], default=main)
        negative = _non_empty([*negative, *extra_negative], default=main_negative)
        return StyledPrompt(positive, negative, chosen, expansion_requested, main, main_negative)

    def random_style(self, seed: int) -> str:
        """The style "Random Style" becomes for an image with this seed when it is the only Random
        Style selected: Fooocus's first draw from `random.Random(seed)` over every style."""
        return self._resolve_random([RANDOM_STYLE], seed)[0]

    def _resolve_random(self, chosen: list[str], seed: int | None) -> list[str]:
        if seed is None:
            msg = f"{RANDOM_STYLE!r} needs a seed (the image seed) so the choice can be repeated"
            raise ValueError(msg)
        if not self.styles:
            msg = f"{RANDOM_STYLE!r} was selected but the style library is empty"
            raise ValueError(msg)
        rng = random.Random(seed)
        names = self.names
        return [rng.choice(names) if name == RANDOM_STYLE else name for name in chosen]


# -- files ----------------------------------------------------------------------------------------


def style_files_in_order(folder: Path) -> list[Path]:
    """Fooocus's file order for one folder: a bottom-up walk (sub-folders before the folder's own
    files), each folder's files sorted case-insensitively, Fooocus's six files moved to the end.
    Sub-folders are visited in case-insensitive order (Fooocus uses the file system's order)."""
    found: list[Path] = []
    _walk_bottom_up(folder, found)
    builtins = [folder / name for name in FOOOCUS_BUILTIN_FILES if (folder / name) in found]
    return [path for path in found if path not in builtins] + builtins


def _walk_bottom_up(folder: Path, found: list[Path]) -> None:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name.casefold())
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and entry.name != PREVIEW_FOLDER:
            _walk_bottom_up(entry, found)
    found.extend(entry for entry in entries if entry.is_file() and entry.suffix.lower() in (".json", ".csv"))


def _read_fooocus_json(path: Path) -> list[Any]:
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if not isinstance(data, list):
        msg = f"expected a JSON list of style objects, found {type(data).__name__}"
        raise ValueError(msg)
    return data


def _read_a1111_csv(path: Path) -> Iterable[dict[str, Any]]:
    """A1111 `styles.csv`: columns name, prompt (or the old 'text'), negative_prompt. Rows whose name
    starts with '#' are comments. A1111's rule for a style without `{prompt}` (append after ', ')
    becomes the template '{prompt}, <style>'; a `{prompt}` in the negative is dropped, because here the
    user's negative is always its own part."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file, skipinitialspace=True)
        if not reader.fieldnames or "name" not in reader.fieldnames:
            msg = "an A1111 styles CSV needs a header row with a 'name' column"
            raise ValueError(msg)
        rows = list(reader)
    for row in rows:
        name = row.get("name")
        if not name or name.startswith("#"):
            continue
        positive = row.get("prompt")
        if positive is None:
            positive = row.get("text")
        yield {
            "name": name,
            "prompt": _a1111_template(positive or ""),
            "negative_prompt": _a1111_negative(row.get("negative_prompt") or ""),
        }


def _a1111_template(text: str) -> str:
    text = text.strip()
    if not text or PLACEHOLDER in text:
        return text
    return f"{PLACEHOLDER}, {text}"


def _a1111_negative(text: str) -> str:
    if PLACEHOLDER not in text:
        return text.strip()
    return text.replace(PLACEHOLDER, "").strip().strip(",").strip()


def _entry_label(entry: Any) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return f" ({entry['name']!r})"
    return ""


def _style_from_entry(entry: Any, path: Path) -> tuple[Style, str | None]:
    empty = Style("")
    if not isinstance(entry, dict):
        return empty, f"expected an object with 'name', 'prompt', 'negative_prompt', found {type(entry).__name__}"
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        return empty, "missing or empty 'name'"
    texts = {}
    for key in ("prompt", "negative_prompt"):
        value = entry.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            return empty, f"'{key}' must be a string, found {type(value).__name__}"
        texts[key] = value
    return Style(normalize_name(name), texts["prompt"], texts["negative_prompt"], str(path)), None
