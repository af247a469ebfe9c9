"""Evaluate post-hoc edits of an adapter on the toy world, beside their controls, on one protocol.

A post-hoc method (Safe LoRA, SPLoRA) edits some modules of an attacked adapter. To tell its
effect from "less fine-tuning" (docs/architecture.md section 4), every point of a sweep over K is evaluated
with the controls on the same adapter and the same K: `zero` (B <- 0 on the modules the method
picked) and `random` (the method's own edit on K randomly chosen modules).

`VariantEvaluator` merges an in-memory LoraAdapter into one copy of the aligned model
(W = W_aligned + s B A) and evaluates it, so a sweep never touches the disk; identical variants
are evaluated once.
"""

import hashlib

import torch

from safelora_lite.adapters.lora_io import LoraAdapter
from safelora_lite.adapters.controls import random_modules, zero_modules
from safelora_lite.maths.projection import select_modules
from safelora_lite.methods.safelora import apply_projection

RATES = ("refusal_rate", "harmful_compliance_rate", "over_refusal_rate", "task_accuracy")


class VariantEvaluator:
    """rates = evaluator(adapter): the aligned toy model plus the adapter's update, greedy evaluation."""

    def __init__(self, world, max_per_split: int | None = None, device=None):
        from safelora_lite.worlds.toy import evaluate

        self._evaluate = evaluate
        self.world = world
        self.max_per_split = max_per_split
        self.model = world.load_model("aligned", device=device)
        self.aligned = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.cache: dict[tuple, dict] = {}
        self.evaluations = 0

    def merge(self, adapter: LoraAdapter) -> None:
        """Set the model's weights to W_aligned + s B A for every module of `adapter` (others: W_aligned)."""
        with torch.no_grad():
            self.model.load_state_dict(self.aligned)
            params = dict(self.model.named_parameters())
            for m in adapter.modules.values():
                params[m.target].add_(m.delta().to(params[m.target]))  # (d_out, d_in)

    def __call__(self, adapter: LoraAdapter) -> dict:
        key = tuple((n, _digest(m.lora_a), _digest(m.lora_b), m.scaling) for n, m in adapter.modules.items())
        if key not in self.cache:
            self.merge(adapter)
            self.cache[key] = self._evaluate(self.world, self.model, progress=False, max_per_split=self.max_per_split)
            self.evaluations += 1
        return dict(self.cache[key])


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def _point(method: str, k: int, rank, seed: int, rates: dict, chosen: list[str], **extra) -> dict:
    return {"method": method, "k": k, "rank": rank, "seed": seed, **{r: rates[r] for r in RATES}, **extra,
            "modules": chosen}


def edit_point(evaluate, adapter: LoraAdapter, projections: dict, chosen: list[str], method: str, k: int, rank, seed: int, **extra) -> dict:
    """One Safe LoRA point (B <- C B on `chosen`), carrying its own zero control (B <- 0 on the same modules)."""
    rates = evaluate(apply_projection(adapter, projections, chosen))
    zero = evaluate(zero_modules(adapter, chosen))
    return _point(method, k, rank, seed, rates, chosen, zero_control={r: zero[r] for r in RATES}, **extra)


def k_sweep(evaluate, adapter: LoraAdapter, projections: dict, ks, seed: int, exact_rank: int | None = None, **extra) -> list[dict]:
    """Points for every K: Safe LoRA (paper, and exact if given) and the zero / random controls.

    projections: {"paper": score_adapter(..., "paper"), "exact": score_adapter(..., "exact", rank)}.
    Each Safe LoRA point carries `zero_control`, the same modules zeroed. The `zero` and `random`
    points are the controls of the paper projector: B <- 0 on the modules it selected, and its
    projection on K modules drawn with a seed made of `seed` and K.
    """
    points = []
    paper = projections["paper"]
    for k in ks:
        chosen = select_modules({n: p.score for n, p in paper.items()}, "number", k=k)
        point = edit_point(evaluate, adapter, paper, chosen, "safe_lora_paper", k, None, seed, **extra)
        points.append(point)
        points.append(_point("zero", k, None, seed, point["zero_control"], chosen, **extra))
        drawn = random_modules(adapter, k, seed=1000 * seed + k)
        points.append(_point("random", k, None, seed, evaluate(apply_projection(adapter, paper, drawn)), drawn, **extra))
        if "exact" in projections:
            exact = projections["exact"]
            chosen_e = select_modules({n: p.score for n, p in exact.items()}, "number", k=k)
            points.append(edit_point(evaluate, adapter, exact, chosen_e, "safe_lora_exact", k, exact_rank, seed, **extra))
    return points


def threshold_sweep(evaluate, adapter: LoraAdapter, projections, thresholds, seed: int, method: str = "safe_lora_paper",
                    rank: int | None = None, **extra) -> list[dict]:
    """Points for every threshold T (score <= T projected); `k` is how many modules that selected."""
    points = []
    for t in thresholds:
        chosen = select_modules({n: p.score for n, p in projections.items()}, "threshold", threshold=t)
        points.append(edit_point(evaluate, adapter, projections, chosen, method, len(chosen), rank, seed,
                                 **{"select": "threshold", **extra, "threshold": t}))
    return points
