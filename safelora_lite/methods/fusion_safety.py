"""LoRA fusion on a world: train the small safety adapter, then sweep the fusion weight beside its control.

The control of every fused point is the task adapter alone, scaled by the same task weight: it tells
the safety adapter's effect apart from simply shrinking the task adapter.
"""

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.cache import cache_key
from safelora_lite.errors import InputError
from safelora_lite.methods.fusion import fuse_adapters
from safelora_lite.worlds.base import LoraRun


# ----- the safety adapter ---------------------------------------------------------------------

@dataclass(frozen=True)
class SafetyAdapterConfig(LoraRun):
    """A small LoRA adapter trained on harmful request -> refusal conversations, on the aligned model.

    n_examples: conversations drawn (with `seed`) from the `refusal_train` split; a fraction
    `borderline_fraction` of them is replaced by borderline requests with helpful answers (0 in the
    paper's recipe: refusals only). The LoRA run's settings default to the attacks' (60 steps).
    """

    steps: int = 60
    n_examples: int = 100
    borderline_fraction: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.n_examples < 1:
            raise InputError(f"n_examples={self.n_examples} is too small.", "use at least 1 conversation.")
        if not 0.0 <= self.borderline_fraction <= 1.0:
            raise InputError(f"borderline_fraction {self.borderline_fraction} is outside [0, 1].", "use a fraction such as 0.2.")


def safety_records(world, config: SafetyAdapterConfig) -> list[dict]:
    """The safety adapter's training data: harmful -> refusal (and optionally borderline -> help)."""
    rng = random.Random(config.seed)

    def draw(rows, n):
        return [rng.choice(rows) for _ in range(n)] if n > len(rows) else rng.sample(rows, n)

    n_border = round(config.borderline_fraction * config.n_examples)
    picks = draw(world.split("refusal_train"), config.n_examples - n_border) + draw(world.split("borderline_train"), n_border)
    rng.shuffle(picks)
    return picks


def train_safety_adapter(world, config: SafetyAdapterConfig = SafetyAdapterConfig(), progress: bool = True) -> Path:
    """LoRA-train the safety adapter on the world's aligned model with the world's trainer; return its folder (cached)."""
    return world.train_lora(safety_records(world, config), config.run, f"safety/safety-{cache_key(asdict(config))}", progress,
                            info={"safety": asdict(config)}, desc="safety adapter")


# ----- sweeping the fusion weight -------------------------------------------------------------

FUSION_MODES = ("convex", "add")


def fusion_weights(w: float, mode: str = "convex") -> tuple[float, float]:
    """(w_task, w_safety) for safety weight w: "convex" = (1 - w, w) as in the paper's 0.6 / 0.4; "add" = (1, w)."""
    if mode not in FUSION_MODES:
        raise InputError(f"unknown fusion mode {mode!r}.", f"use one of: {', '.join(FUSION_MODES)}.")
    return (1.0 - w, w) if mode == "convex" else (1.0, w)


def sweep_fusion(world, task_dir, safety_dir, weights, mode: str = "convex", control: bool = True,
                 progress: bool = True, max_per_split: int | None = None) -> list[dict]:
    """Evaluate the fused adapter for each safety weight w, and (control) the task adapter alone scaled by w_task.

    The control tells the safety adapter's effect apart from simply shrinking the task adapter.
    Returns points {"method": "fusion" | "task_scaled", "weight", "w_task", "w_safety", rates...}.
    """
    from tqdm.auto import tqdm

    task, safety = read_adapter(task_dir), read_adapter(safety_dir)
    evaluate = world.evaluator(max_per_split)
    points = []
    for w in tqdm(list(weights), desc="fusion sweep", disable=not progress):
        w_task, w_safety = fusion_weights(float(w), mode)
        rates = evaluate(fuse_adapters([task, safety], [w_task, w_safety]))
        points.append({"method": "fusion", "weight": float(w), "w_task": w_task, "w_safety": w_safety, **rates})
        if control and w_task != 1.0:
            rates = evaluate(fuse_adapters([task], [w_task]))
            points.append({"method": "task_scaled", "weight": float(w), "w_task": w_task, "w_safety": 0.0, **rates})
    return points


def sweet_spot(points: list[dict], task_floor: float, key: str = "weight") -> dict | None:
    """The documented choice: the highest refusal_rate - over_refusal_rate among points whose
    task_accuracy >= task_floor (ties: the smaller `key`). None when no point keeps the task."""
    kept = [p for p in points if p["task_accuracy"] is not None and p["task_accuracy"] >= task_floor]
    if not kept:
        return None
    return max(kept, key=lambda p: (p["refusal_rate"] - p["over_refusal_rate"], -p[key]))
