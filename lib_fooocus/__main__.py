"""Stand-alone CLI: `python -m lib_fooocus <command> ...`.

Each command lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`; the
module is imported only when its command runs, so `--help` stays fast and light.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "expand": ("lib_fooocus.cli.expansion", "Fooocus V2 prompt expansion of a prompt"),
    "styles": ("lib_fooocus.cli.styles", "list, search and apply styles; import Fooocus's styles"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m lib_fooocus", description="sd-webui-fooocus command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    command_parser = argparse.ArgumentParser(prog=f"python -m lib_fooocus {argv[0]}", description=COMMANDS[argv[0]][1])
    module.add_arguments(command_parser)
    return int(module.run(command_parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
