"""The controls every post-hoc method is compared with, on the same adapter and the same K.

docs/architecture.md section 4: without them a learner cannot tell a method's effect from "less fine-tuning".
- `zero_modules`: remove the LoRA update of the given modules (B <- 0), i.e. what a method would
  do if it simply deleted what it touches.
- `random_modules`: K modules picked uniformly at random with a seed, to act on instead of the
  ones a method's score picks.
"""

import random

import torch

from safelora_lite.adapters.lora_io import LoraAdapter, LoraModule
from safelora_lite.errors import InputError


def zero_modules(adapter: LoraAdapter, names) -> LoraAdapter:
    """A new adapter whose named modules have B <- 0 (their update s * B @ A is removed)."""
    names = list(names)
    unknown = [n for n in names if n not in adapter.modules]
    if unknown:
        raise InputError(f"unknown module name {unknown[0]}.", "use names from the adapter (its report's `name` fields).")
    changed = {}
    for name in names:
        m = adapter.modules[name]
        changed[name] = LoraModule(name, m.lora_a, torch.zeros_like(m.lora_b), m.scaling)  # (d_out, r) zeros
    return adapter.with_modules(changed)


def random_modules(adapter: LoraAdapter, k: int, seed: int) -> list[str]:
    """K module names chosen uniformly without replacement with `seed`, in adapter order."""
    names = list(adapter.modules)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(names):
        raise InputError(f"K={k} is out of range: the adapter has {len(names)} LoRA modules.", f"use 0 <= K <= {len(names)}.")
    chosen = set(random.Random(seed).sample(names, k))
    return [n for n in names if n in chosen]
