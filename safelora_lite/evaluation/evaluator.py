"""The one evaluation path: a model plus an adapter's update, greedy generation on fixed prompts, four rates.

    evaluate = Evaluator(aligned_model, tokenizer, records, complies=world.complies)
    evaluate()                  # the model alone
    evaluate(adapter)           # W + s B A on the adapter's modules (a LoraAdapter or a PEFT folder)

The update is merged into the weights it adapts (W <- W + s B A, the same sum peft's
`merge_and_unload` computes, so the answers are those of the merged PeftModel), the prompts are
answered, and the touched weights are put back from copies: one model serves every variant of a
sweep, nothing is written to disk, and identical variants are evaluated once (modules whose update is
exactly zero left out: an adapter with every module zeroed is the model alone). A PeftModel works
too: the update goes into its base layers while its own adapter is switched off.
"""

import contextlib
import hashlib
import os
from typing import Callable

import torch

from safelora_lite.adapters.lora_io import LoraAdapter, read_adapter
from safelora_lite.errors import InputError
from safelora_lite.evaluation.generation import evaluate_records, rates_of
from safelora_lite.evaluation.judges import substantive


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def acting_modules(adapter: LoraAdapter) -> dict:
    """The adapter's modules whose update s B A is not exactly zero (a pruned or zeroed module changes nothing)."""
    return {n: m for n, m in adapter.modules.items() if m.scaling != 0 and m.lora_a.any() and m.lora_b.any()}


def adapter_digest(adapter: LoraAdapter) -> tuple:
    """A key equal for adapters with equal acting modules (tensors and scalings): an adapter whose every module is
    zeroed has the key of the model alone, ()."""
    return tuple((n, _digest(m.lora_a), _digest(m.lora_b), m.scaling) for n, m in acting_modules(adapter).items())


class Evaluator:
    """rates = evaluator(adapter): greedy answers to `records` from `model` plus the adapter's update; the
    four rates and "n" (prompts per rate). `complies` is the world's recogniser of an answer (the judge)."""

    def __init__(self, model, tokenizer, records: list[dict], max_new_tokens: int = 24, complies: Callable[[str], bool] = substantive):
        self.model, self.tokenizer, self.records, self.max_new_tokens = model.eval(), tokenizer, records, max_new_tokens
        self.complies = complies
        self.cache: dict[tuple, tuple[dict, list[str]]] = {}
        self.evaluations = 0
        self.responses: list[str] = []  # the answers of the last call (for a second judge)

    def _weight(self, target: str) -> torch.nn.Parameter:
        """The parameter an adapter module adapts (a PeftModel's base layer when the model has LoRA layers)."""
        root = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        try:
            module = root.get_submodule(target.removesuffix(".weight"))
        except AttributeError:
            raise InputError(f"the model has no weight {target}.", "evaluate an adapter trained on this model.") from None
        return module.base_layer.weight if hasattr(module, "base_layer") else module.weight

    @torch.no_grad()
    def _rates(self, adapter: LoraAdapter | None) -> tuple[dict, list[str]]:
        adapted = {m.target: (self._weight(m.target), m) for m in acting_modules(adapter).values()} if adapter else {}
        saved = {t: w.detach().to("cpu", copy=True) for t, (w, _) in adapted.items()}
        off = self.model.disable_adapter() if hasattr(self.model, "disable_adapter") else contextlib.nullcontext()
        try:
            for w, m in adapted.values():
                w.add_(m.delta().to(w))  # (d_out, d_in): W + s B A
            with off:
                return evaluate_records(self.tokenizer, self.model, self.records, self.max_new_tokens, complies=self.complies)
        finally:
            for t, (w, _) in adapted.items():
                w.copy_(saved[t])

    def __call__(self, adapter: LoraAdapter | str | os.PathLike | None = None) -> dict:
        if adapter is not None and not isinstance(adapter, LoraAdapter):
            adapter = read_adapter(adapter)
        key = adapter_digest(adapter) if adapter is not None else ()
        if key not in self.cache:
            self.cache[key] = self._rates(adapter)
            self.evaluations += 1
        rates, self.responses = self.cache[key]
        return rates_of(rates)
