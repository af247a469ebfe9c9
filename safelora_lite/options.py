"""Command-line options the commands share, and the rules every command keeps.

- `add_pair_arguments` / `add_adapter_pair_arguments`: --adapter, --base / --aligned (folders or hub
  ids), --revision, --out, with the same help everywhere.
- `refuse_inapplicable`: an option given where it does not apply to the chosen mode is an error,
  never silently ignored (options that can be refused default to None, so "given" is visible).
- `OneLineParser`: argparse whose usage errors are one line, like every other refusal.
"""

import argparse

from safelora_lite.errors import InputError


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
