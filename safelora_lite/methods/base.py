"""The method interface: every method is run the same way, on a world and an attack, and returns the same result.

    result = method.run(AttackedRun(world, attack), settings)
    rates = result.world.evaluator()(result.adapter)

A method sees the world only through the world interface (`worlds/base.py`). The controls (zero the
same modules, random modules) are methods too, so a comparison loop never names a method.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from safelora_lite.adapters.hub import resolve_pair
from safelora_lite.adapters.lora_io import (
    LoraAdapter, adapter_from_peft_model, load_adapter_into_peft_model, read_adapter, write_adapter,
)


def k_for(fraction: float, num_modules: int) -> int:
    """The K a post-hoc method acts on: `fraction` of an adapter's `num_modules` LoRA modules, at least 1."""
    return max(1, round(fraction * num_modules))


@dataclass
class AttackedRun:
    """One attack at one seed on one world: what every method starts from, and what methods leave for others."""

    world: object  # a worlds.base.World
    attack: object  # the world's attack settings (toy world: AttackConfig)
    chosen: dict[str, list[str]] = field(default_factory=dict)  # modules each post-hoc method acted on
    _adapter: LoraAdapter | None = None

    def folder(self) -> Path:
        """The vanilla LoRA adapter folder of this attack (trained once per world and attack, cached)."""
        return self.world.train_attack(self.attack, progress=False)

    def adapter(self) -> LoraAdapter:
        """The vanilla LoRA adapter, read once."""
        if self._adapter is None:
            self._adapter = read_adapter(self.folder())
        return self._adapter

    def k_of(self, fraction: float) -> int:
        """K from a fraction of the adapter's modules (at least 1)."""
        return k_for(fraction, len(self.adapter().modules))


@dataclass
class MethodResult:
    """What a method produced: an adapter to evaluate on `world`'s aligned model, its report, its extra cost."""

    adapter: LoraAdapter | None  # None: the world's aligned model alone
    world: object  # the world whose aligned model the adapter sits on (LoX: the extrapolated world)
    report: dict = field(default_factory=dict)  # e.g. {"modules": [...]} for post-hoc methods
    seconds: float = 0.0  # extra seconds beyond training plain LoRA


@dataclass(frozen=True)
class Method:
    name: str
    when: str  # "baseline" | "after training" | "during training" | "before training" | "control"
    needs_base: bool  # needs the unaligned base model's weights
    extra_data: str  # data beyond the fine-tuning set itself
    run: Callable[[AttackedRun, dict], MethodResult]


def timed(fn):
    """(fn(), seconds it took)."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def edit_folder(edit, adapter_dir, base, aligned, out, report_name: str, revision: str | None = None, **options) -> dict:
    """A post-hoc edit, `edit(adapter, base_dir, aligned_dir, **options) -> (edited adapter, report)`, on an adapter
    folder and two checkpoints (folders or hub ids at `revision`): writes OUT (new) with the edited adapter and
    its report. OUT is checked before any weight is read."""
    base_dir, aligned_dir = resolve_pair(base, aligned, revision, out=out, inputs=[adapter_dir])
    start = time.perf_counter()
    edited, report = edit(adapter_dir, base_dir, aligned_dir, **options)
    report = {**report, "adapter": str(adapter_dir), "base": str(base), "aligned": str(aligned), "revision": revision,
              "seconds": round(time.perf_counter() - start, 3)}
    write_adapter(edited, out, files={report_name: report})
    return report


def edit_peft_model(edit, model, base, aligned, adapter_name: str = "default", **options) -> dict:
    """A post-hoc edit on an in-memory PeftModel: scores everything first, then writes the edited tensors in."""
    edited, report = edit(adapter_from_peft_model(model, adapter_name), base, aligned, **options)
    load_adapter_into_peft_model(edited, model, adapter_name)
    return report
