"""The `safelora-lite` command line: one subcommand per method, plus the course runner.

Each module in COMMAND_MODULES defines `add_command(subparsers)`, which registers its
subcommand with `func=` set. Bad input raises InputError: printed on one line, exit status 2; a
usage error (a malformed value, an unknown option) is one line too. An option that does not apply
to the chosen mode is refused (`refuse_inapplicable`), never silently ignored.
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


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other refusal (subcommands inherit it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}. Fix: see {self.prog} --help.\n")


def add_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """--base, --aligned (folders or hub ids), --revision, --out: shared by the commands that read a model pair."""
    parser.add_argument("--base", required=True,
                        help="unaligned base model: a folder (safetensors) or a hub id, e.g. meta-llama/Llama-2-7b-hf")
    parser.add_argument("--aligned", required=True,
                        help="aligned model: a folder or a hub id, e.g. meta-llama/Llama-2-7b-chat-hf")
    parser.add_argument("--revision", help="branch, tag or commit of the hub ids (default main); hub ids are read from "
                                           "the local Hugging Face cache, else downloaded (safetensors and config only)")
    parser.add_argument("--out", required=True, help="new output directory (must not exist, nor lie inside an input)")


def add_adapter_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """--adapter and the model pair: the inputs and output of every post-hoc method."""
    parser.add_argument("--adapter", required=True, help="PEFT LoRA adapter directory")
    add_pair_arguments(parser)


def refuse_inapplicable(args: argparse.Namespace, **options: tuple[bool, str]) -> None:
    """options: dest -> (whether it applies, what it needs). A given option (not None) that does not apply is an error."""
    for dest, (applies, needs) in options.items():
        if getattr(args, dest) is not None and not applies:
            flag = "--" + dest.replace("_", "-")
            raise InputError(f"{flag} applies only with {needs}, so it would be ignored here.", f"add {needs}, or drop {flag}.")


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
