"""The `safelora-lite` command line: one subcommand per method, plus the course runner.

Each module in COMMAND_MODULES defines `add_command(subparsers)`, which registers its
subcommand with `func=` set (shared options and their rules: `options.py`). Bad input raises
InputError: printed on one line, exit status 2; a usage error is one line too (`OneLineParser`).
"""

import argparse
import importlib
import sys

from safelora_lite.errors import InputError
from safelora_lite.options import OneLineParser

COMMAND_MODULES = [
    "safelora_lite.course.runner",
    "safelora_lite.methods.safelora",
    "safelora_lite.methods.fusion",
    "safelora_lite.methods.salora.export",
    "safelora_lite.methods.splora",
    "safelora_lite.scale.finetune",
    "safelora_lite.methods.lox",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="safelora-lite", description="Keep an LLM's safety while fine-tuning it with LoRA.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as error:
        print(f"safelora-lite {args.command}: error: {error}", file=sys.stderr)
        return 2
