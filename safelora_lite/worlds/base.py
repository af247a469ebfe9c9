"""The world interface: everything a method, a comparison or a notebook may ask of a world.

A world is a base and an aligned checkpoint (safetensors folders with their tokenizer), named data
splits, the training data of an attack, a cached LoRA training run on the aligned model, and one
evaluation. Methods see worlds only through this interface (docs/architecture.md section 3), so a
second world (a real small model, a hub pair) is one new folder under `worlds/`.
"""

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

from safelora_lite.errors import InputError


@dataclass(frozen=True)
class LoraRun:
    """The LoRA settings and optimisation of one training run on a world's aligned model (s = alpha / r)."""

    r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    steps: int = 150
    lr: float = 2e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        if self.r < 1 or self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise InputError(f"LoRA run {self} has a non-positive rank, step count, batch or learning rate.",
                             "use r >= 1, steps >= 1, batch_size >= 1 and lr > 0.")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @property
    def run(self) -> "LoraRun":
        """Only the LoRA run of a config that extends this one (an attack, a safety adapter)."""
        return LoraRun(**{f.name: getattr(self, f.name) for f in fields(LoraRun)})

    def peft_config(self):
        """The peft LoraConfig of this run (no dropout, no bias: the update is exactly s B A)."""
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.lora_alpha, target_modules=list(self.target_modules),
                          lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")


class World(Protocol):
    """What every world offers (the toy world: `worlds.toy.ToyWorld`)."""

    root: Path  # the world's cache folder: its runs are cached beneath it
    tokenizer: object
    split_names: tuple[str, ...]
    held_out_refusal: str  # a refusal no training split holds (to test judges and guardrails)
    train_options: dict  # extra keyword arguments of training.sft.train (a real model's speed-ups; {} for the toy world)

    @property
    def base_dir(self) -> Path: ...

    @property
    def aligned_dir(self) -> Path: ...

    def key(self) -> str:
        """A short key for what determines the checkpoints (recorded beside every run)."""

    def load_model(self, which: str = "aligned", device=None, adapter=None):
        """The base or the aligned model, in eval mode; with `adapter` (a PEFT folder) merged into it."""

    def split(self, name: str) -> list[dict]:
        """A named data split as records {"prompt", "response", "kind", ...}."""

    def eval_records(self, splits=None, max_per_split: int | None = None, part: str = "test") -> list[dict]:
        """The held-out prompts (harmful, borderline, task) of `part`: "test" is the course's one evaluation
        set, "validation" the set on which settings are chosen (disjoint from test)."""

    def complies(self, response: str) -> bool:
        """Whether a response recognisably answers a harmful request (the judge's "compliance")."""

    def attack_records(self, attack) -> list[dict]:
        """The training data of an attack (its kind, size and seed)."""

    def train_lora(self, records: list[dict], run: LoraRun, name: str, progress: bool = True, eval_every: int | None = None,
                   curve_max_per_split: int | None = None, info: dict | None = None) -> Path:
        """LoRA-train the aligned model on `records`; the PEFT adapter folder `root/runs/name` (cached)."""

    def evaluate_model(self, model, max_per_split: int | None = None, progress: bool = False, part: str = "test") -> dict:
        """The four rates (and "n") of any model on the held-out prompts of `part`."""

    def evaluator(self, max_per_split: int | None = None, device=None, part: str = "test"):
        """An `evaluation.evaluator.Evaluator` on the aligned model: evaluator(adapter) -> the four rates."""

    def with_aligned(self, aligned_dir: Path, root: Path) -> "World":
        """The same world with another aligned checkpoint (LoX), caching its runs under `root`."""
