"""Sweeps of post-hoc edits of an adapter (Safe LoRA, SPLoRA), each point beside its controls on the same K.

A post-hoc method (Safe LoRA, SPLoRA) edits some modules of an attacked adapter. To tell its
effect from "less fine-tuning" (docs/architecture.md section 4), every point of a sweep over K is evaluated
with the controls on the same adapter and the same K: `zero` (B <- 0 on the modules the method
picked) and `random` (the method's own edit on K randomly chosen modules).

`evaluate` is any callable adapter -> rates: a world's `evaluator()` (one model serves the whole
sweep, nothing touches the disk, identical variants are evaluated once).
"""

from safelora_lite.adapters.lora_io import LoraAdapter
from safelora_lite.adapters.controls import random_modules, zero_modules
from safelora_lite.evaluation.generation import rates_of
from safelora_lite.maths.projection import select_modules
from safelora_lite.methods.safelora import apply_projection


def _point(method: str, k: int, rank, seed: int, rates: dict, chosen: list[str], **extra) -> dict:
    return {"method": method, "k": k, "rank": rank, "seed": seed, **rates_of(rates), **extra, "modules": chosen}


def edit_point(evaluate, adapter: LoraAdapter, projections: dict, chosen: list[str], method: str, k: int, rank, seed: int, **extra) -> dict:
    """One Safe LoRA point (B <- C B on `chosen`), carrying its own zero control (B <- 0 on the same modules)."""
    rates = evaluate(apply_projection(adapter, projections, chosen))
    zero = evaluate(zero_modules(adapter, chosen))
    return _point(method, k, rank, seed, rates, chosen, zero_control=rates_of(zero), **extra)


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
