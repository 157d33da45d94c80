"""`python -m lib_fooocus styles ...`: list, search and apply styles; import Fooocus's styles and A1111 CSVs.

    python -m lib_fooocus styles list [--search WORD]
    python -m lib_fooocus styles apply "a cat" --style "Crisp Cinematic Still" --style "Clean Quality Negative"
    python -m lib_fooocus styles import-fooocus [--previews] [--dest DIR] [--base-url URL]
    python -m lib_fooocus styles import-csv path/to/styles.csv [--dest DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lib_fooocus.styles.library import (
    StyleLibrary,
    UnknownStyleError,
    default_style_folders,
    default_user_styles_dir,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    listing = actions.add_parser("list", help="list the styles (optionally only those matching --search)")
    listing.add_argument("--search", default="", metavar="WORD", help="only styles whose name or text holds these words")
    listing.add_argument("--details", action="store_true", help="also print each style's templates and source file")
    _add_library_arguments(listing)

    apply = actions.add_parser("apply", help="apply styles to a prompt and print Fooocus's parts")
    apply.add_argument("prompt", help="the prompt (several lines: the first is the main prompt)")
    apply.add_argument("--style", action="append", default=[], metavar="NAME",
                       help="a style name; repeat for several, in order (\"Random Style\" needs --seed)")
    apply.add_argument("--negative", default="", help="the negative prompt")
    apply.add_argument("--seed", type=int, default=0, help="image seed, used by \"Random Style\" (default 0)")
    apply.add_argument("--expansion", default="", metavar="TEXT",
                       help="text to place as the last positive part, as the Fooocus V2 expansion would be")
    _add_library_arguments(apply)

    fooocus = actions.add_parser("import-fooocus", help="download Fooocus's 277 styles (sha256-checked)")
    fooocus.add_argument("--previews", action="store_true", help="also download the 279 preview images (about 8 MB)")
    fooocus.add_argument("--dest", default=None, metavar="DIR",
                         help=f"destination folder (default: {default_user_styles_dir()})")
    fooocus.add_argument("--base-url", default=None, metavar="URL",
                         help="where the files are (default: Fooocus's GitHub repository at the pinned commit)")

    csv_import = actions.add_parser("import-csv", help="convert an A1111 styles.csv into a style file")
    csv_import.add_argument("csv", help="path of the A1111 styles.csv")
    csv_import.add_argument("--dest", default=None, metavar="DIR",
                            help=f"destination folder (default: {default_user_styles_dir()})")

    for sub in (listing, apply):
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")


def _add_library_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", action="append", default=None, metavar="DIR",
                        help="style folder or file to load (repeatable; default: bundled + user folder)")
    parser.add_argument("--fooocus-dir", default=None, metavar="DIR",
                        help="also load an existing Fooocus install's sdxl_styles folder")


def run(args: argparse.Namespace) -> int:
    handlers = {
        "list": _run_list,
        "apply": _run_apply,
        "import-fooocus": _run_import_fooocus,
        "import-csv": _run_import_csv,
    }
    handler = handlers.get(getattr(args, "action", None) or "")
    if handler is None:
        print("choose an action: list, apply, import-fooocus or import-csv (add --help for details)", file=sys.stderr)
        return 2
    try:
        return handler(args)
    except (UnknownStyleError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _library(args: argparse.Namespace) -> StyleLibrary:
    fooocus_dir = None
    if args.fooocus_dir:
        from lib_fooocus.styles.library import find_fooocus_styles_dir

        fooocus_dir = find_fooocus_styles_dir(args.fooocus_dir)
    folders = [Path(f) for f in args.folder] if args.folder else default_style_folders()
    if fooocus_dir:
        folders.append(fooocus_dir)
    library = StyleLibrary.load(folders)
    for warning in library.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return library


def _run_list(args: argparse.Namespace) -> int:
    library = _library(args)
    styles = library.search(args.search)
    if args.json:
        print(json.dumps([s.to_dict() for s in styles], indent=2, ensure_ascii=False))
        return 0
    for style in styles:
        print(style.name)
        if args.details:
            print(f"    prompt:   {style.prompt}")
            print(f"    negative: {style.negative_prompt}")
            print(f"    source:   {style.source}")
    print(f"({len(styles)} of {len(library)} styles)", file=sys.stderr)
    return 0


def _run_apply(args: argparse.Namespace) -> int:
    from lib_fooocus.styles.assembly import plan_prompt

    library = _library(args)
    plan = plan_prompt(library, args.prompt, args.negative, args.style, args.seed)
    positive = plan.positive_text(args.expansion)
    negative = plan.negative_text()
    if args.json:
        print(json.dumps({
            "positive_parts": plan.positive_parts,
            "negative_parts": plan.negative_parts,
            "styles": plan.styles,
            "expansion_requested": plan.expansion_requested,
            "prompt": positive,
            "negative_prompt": negative,
        }, indent=2, ensure_ascii=False))
        return 0
    print("positive parts:")
    for part in plan.positive_parts:
        print(f"  {part}")
    print("negative parts:")
    for part in plan.negative_parts:
        print(f"  {part}")
    print(f"prompt: {positive}")
    print(f"negative prompt: {negative}")
    return 0


def _run_import_fooocus(args: argparse.Namespace) -> int:
    from lib_fooocus.styles.importer import import_fooocus_styles

    result = import_fooocus_styles(args.dest, base_url=args.base_url, previews=args.previews)
    for name, why in result.failures.items():
        print(f"failed: {name}: {why}", file=sys.stderr)
    print(result.summary())
    return 0 if result.ok else 1


def _run_import_csv(args: argparse.Namespace) -> int:
    from lib_fooocus.styles.importer import import_a1111_csv

    target, count, warnings = import_a1111_csv(args.csv, args.dest)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{count} styles written to {target}")
    return 0
