"""`python -m lib_fooocus expand "a cat" --seed 42 [--model-dir DIR]`: print the Fooocus V2 expansion."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from lib_fooocus.expansion.files import (
    DEFAULT_FILES_URL,
    LICENSE_NOTICE,
    ExpansionSource,
    ExpansionUnavailableError,
)
from lib_fooocus.text import expansion_source

MODEL_DIR_ENV = "FOOOCUS_EXPANSION_DIR"


def default_model_dir() -> Path:
    """$FOOOCUS_EXPANSION_DIR, else models/fooocus_expansion in the extension's folder."""
    configured = os.environ.get(MODEL_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "models" / "fooocus_expansion"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompt", help="the prompt to expand (quote it); its first line without <lora:...> tags is expanded"
    )
    parser.add_argument("--seed", type=int, default=0, help="image seed (taken mod 2**32, as Fooocus does)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help=f"model folder (default: ${MODEL_DIR_ENV} or models/fooocus_expansion in the extension)",
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (fp16 on GPUs)")
    parser.add_argument(
        "--no-download", action="store_true", help="never download; fail if files are missing"
    )
    parser.add_argument("--hub-repo", default="lllyasviel/misc", help="Hugging Face repo holding the weights")
    parser.add_argument("--hub-revision", default="main", help="revision (branch or commit) of --hub-repo")
    parser.add_argument(
        "--files-url",
        default=DEFAULT_FILES_URL,
        help="base URL of the small files (default: Fooocus's GitHub)",
    )
    parser.add_argument(
        "--files-repo", default=None, help="take the small files from this Hugging Face repo instead"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the expansion")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from lib_fooocus.expansion.service import ExpansionService, ExpansionSettings

    source = ExpansionSource(
        weights_repo=args.hub_repo,
        weights_revision=args.hub_revision,
        files_url=args.files_url,
        files_repo=args.files_repo,
    )
    settings = ExpansionSettings(
        model_dir=str(args.model_dir or default_model_dir()),
        device=args.device,
        allow_download=not args.no_download,
        source=source,
    )
    try:
        expansion = ExpansionService(settings).expand(expansion_source(args.prompt), args.seed)
    except ExpansionUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(expansion)
    if not args.quiet:
        print(LICENSE_NOTICE, file=sys.stderr)
    return 0
