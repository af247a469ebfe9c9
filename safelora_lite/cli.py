"""The `safelora-lite` command line: one subcommand per method, plus the course runner.

Each module in COMMAND_MODULES defines `add_command(subparsers)`, which registers its
subcommand with `func=` set. Bad input raises InputError: printed on one line, exit status 2.
"""

import argparse
import importlib
import sys

from safelora_lite.errors import InputError

COMMAND_MODULES = [
    "safelora_lite.course.runner",
    "safelora_lite.methods.safelora",
    "safelora_lite.methods.fusion",
    "safelora_lite.methods.salora.export",
    "safelora_lite.methods.splora",
    "safelora_lite.scale.finetune",
    "safelora_lite.methods.lox",
]


def add_adapter_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """--adapter, --base, --aligned, --out: the inputs and output of every post-hoc method."""
    parser.add_argument("--adapter", required=True, help="PEFT LoRA adapter directory")
    parser.add_argument("--base", required=True, help="unaligned base checkpoint directory (safetensors)")
    parser.add_argument("--aligned", required=True, help="aligned checkpoint directory (safetensors)")
    parser.add_argument("--out", required=True, help="new output directory (must not exist)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safelora-lite", description="Keep an LLM's safety while fine-tuning it with LoRA.")
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
