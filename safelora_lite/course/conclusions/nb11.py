"""Notebook 11: LoX and token-level shaping against plain LoRA, and their best documented settings."""

import numpy as np

from safelora_lite.comparison.verdicts import TASK_KEEP, clear_difference, differs


def changes(methods: dict, attack: str, method: str, n_seeds: int) -> tuple[dict, str]:
    """`method` against plain LoRA on one attack: each rate's change and whether it is real (the library's
    rule: beyond the prompts' interval, the two seed stds and the floor). methods[m][attack][rate] holds
    "mean", "std" and "prompts"."""
    entry, words = {}, []
    for rate in ("refusal_rate", "over_refusal_rate", "task_accuracy"):
        a, b = methods["lora"][attack][rate], methods[method][attack][rate]
        diff = b["mean"] - a["mean"]
        real = clear_difference(b["mean"], a["mean"], b.get("prompts"), a.get("prompts"), a["std"] + b["std"])
        entry[rate] = {"change_vs_lora": diff, "real": real}
        noise = "one seed: the prompts' noise only" if n_seeds < 2 else "the seed spread and the prompts' noise"
        direction = "up" if diff > 0 else "down" if diff < 0 else "unchanged"
        words.append(f"{rate.replace('_', ' ')} {direction} by {abs(diff):.2f} ({'beyond' if real else 'within'} {noise})")
    return entry, f"{attack:>12} / {method:<8}: " + "; ".join(words) + " vs plain LoRA"


def best_setting(points: list[dict], method: str, keys: tuple[str, ...], attacks, seed: int) -> dict | None:
    """On one seed: the setting with the highest mean refusal over the attacks among those keeping at least
    TASK_KEEP of plain LoRA's mean task accuracy (ties: the higher task accuracy); None when none does."""
    first = [p for p in points if p["method"] == method and p["seed"] == seed]
    lora_task = float(np.mean([p["task_accuracy"] for p in points if p["method"] == "lora" and p["seed"] == seed]))
    settings: dict = {}
    for p in first:
        settings.setdefault(tuple(p[k] for k in keys), []).append(p)
    scored = []
    for s, pts in settings.items():
        if {p["attack"] for p in pts} != set(attacks):
            continue
        refusal, task = float(np.mean([p["refusal_rate"] for p in pts])), float(np.mean([p["task_accuracy"] for p in pts]))
        if task >= TASK_KEEP * lora_task:
            scored.append((refusal, task, s))
    if not scored:
        return None
    refusal, task, s = max(scored)
    return {**dict(zip(keys, s)), "mean_refusal_rate": refusal, "mean_task_accuracy": task,
            "rule": f"seed {seed}; max mean refusal over the attacks with mean task accuracy >= {TASK_KEEP:g} x plain LoRA's"}


def extrapolation_cost(before: list[dict], aligned: dict) -> tuple[dict, list[str]]:
    """Which LoX models (no attack) differ clearly from the aligned model, and how: fewer refusals, more
    over-refusal, less task accuracy (the library's rule against the aligned model's rates)."""

    effects = {"fewer_refusals": ("refusal_rate", -1), "more_over_refusal": ("over_refusal_rate", 1), "less_task": ("task_accuracy", -1)}
    found = {name: [p for p in before if (p[rate] - aligned[rate]) * sign > 0 and differs(p, aligned, rate)]
             for name, (rate, sign) in effects.items()}
    words = {"fewer_refusals": "refuses clearly less than the aligned model", "more_over_refusal": "refuses borderline requests clearly more",
             "less_task": "loses task accuracy clearly"}
    lines = []
    for name, pts in found.items():
        rate = effects[name][0]
        where = ", ".join(f"alpha={p['alpha']:g} k={p['k']} ({p[rate]:.2f})" for p in pts) or "no setting of the grid"
        lines.append(f"LoX before any attack {words[name]} (aligned: {aligned[rate]:.2f}) at: {where}.")
    return {name: [{"alpha": p["alpha"], "k": p["k"]} for p in pts] for name, pts in found.items()}, lines
