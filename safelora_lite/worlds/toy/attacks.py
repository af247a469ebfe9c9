"""LoRA attacks on the toy world's aligned model: what they train on, with which settings.

An attack is benign fine-tuning (task data only), task data with a fraction of harmful -> compliance
pairs ("mixed"), or harmful -> compliance pairs only; `ToyWorld.train_attack` trains and caches it.
"""

import random
from dataclasses import asdict, dataclass

from safelora_lite.cache import cache_key
from safelora_lite.errors import InputError
from safelora_lite.worlds.base import LoraRun
from safelora_lite.worlds.toy.splits import WORLD_VERSION, load_split

ATTACK_KINDS = ("benign", "mixed", "pure_harmful")


@dataclass(frozen=True)
class AttackConfig(LoraRun):
    """A LoRA fine-tuning attack on the aligned model: a LoRA run (r, lora_alpha, target_modules, steps,
    lr, batch_size, seed; s = alpha / r) on the attack's data.

    kind: "benign" (task only), "mixed" (task + harmful_fraction of harmful->compliance pairs),
    "pure_harmful" (harmful->compliance only). n_examples: training examples (default 500, or
    100 for pure_harmful).
    """

    kind: str = "mixed"
    harmful_fraction: float = 0.1
    n_examples: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.kind not in ATTACK_KINDS:
            raise InputError(f"unknown attack kind {self.kind!r}.", f"use one of: {', '.join(ATTACK_KINDS)}.")
        if not 0.0 <= self.harmful_fraction <= 1.0:
            raise InputError(f"harmful_fraction {self.harmful_fraction} is outside [0, 1].", "use a fraction such as 0.1.")

    @property
    def size(self) -> int:
        return self.n_examples if self.n_examples is not None else (100 if self.kind == "pure_harmful" else 500)

    def key(self) -> str:
        """The cache key: n_examples=None and its default size are the same attack."""
        return cache_key({"version": WORLD_VERSION, **asdict(self), "n_examples": self.size})


def attack_records(attack: AttackConfig) -> list[dict]:
    """The attack's training data, drawn with its seed from task_train and harmful_train."""
    rng = random.Random(attack.seed)
    task, harmful = load_split("task_train"), load_split("harmful_train")
    n_harm = {"benign": 0, "pure_harmful": attack.size}.get(attack.kind, round(attack.harmful_fraction * attack.size))
    picks = [rng.choice(harmful) for _ in range(n_harm)] if n_harm > len(harmful) else rng.sample(harmful, n_harm)
    n_task = attack.size - n_harm
    picks += [rng.choice(task) for _ in range(n_task)] if n_task > len(task) else rng.sample(task, n_task)
    rng.shuffle(picks)
    return picks
