"""Notebook 05: does SPLoRA's pruning beat random pruning, the attacked adapter and the other post-hoc points?"""

import numpy as np

from safelora_lite.comparison.verdicts import beats, mean_point


def best_setting(sweeps: list[dict], attack: str, method: str, ks) -> dict:
    """A method's best documented K >= 1 on one attack: the highest refusal + task accuracy (ties: the smaller K)."""
    candidates = [(k, mean_point(sweeps, attack=attack, method=method, k=k)) for k in ks if k >= 1]
    k, rates = max(candidates, key=lambda c: (round(c[1]["refusal_rate"] + c[1]["task_accuracy"], 9), -c[0]))
    return {"method": method, "k": k, **rates}


def conclude(sweeps: list[dict], attack: str, ks, n_modules: int, methods) -> tuple[dict, list[str]]:
    """SPLoRA ("splora") against random pruning at the same K, the attacked adapter (K = 0), pruning the
    low scores ("splora_low"), and every other method's best point (`methods`, "random" excluded)."""
    attacked = mean_point(sweeps, attack=attack, method="splora", k=0)
    best = {m: best_setting(sweeps, attack, m, ks) for m in methods if m != "random"}
    sp = best["splora"]
    random_same_k = mean_point(sweeps, attack=attack, method="random", k=sp["k"])
    inner = [k for k in ks if 0 < k < n_modules]
    wins_random = [k for k in inner if beats(mean_point(sweeps, attack=attack, method="splora", k=k),
                                             mean_point(sweeps, attack=attack, method="random", k=k))]
    high_vs_low = float(np.mean([mean_point(sweeps, attack=attack, method="splora", k=k)["refusal_rate"]
                                 - mean_point(sweeps, attack=attack, method="splora_low", k=k)["refusal_rate"] for k in ks]))
    overall = max(best.values(), key=lambda b: (round(b["refusal_rate"] + b["task_accuracy"], 9), -b["k"]))
    beaten_by = [m for m, b in best.items() if m != "splora" and beats(b, sp)]
    beats_others = [m for m, b in best.items() if m != "splora" and beats(sp, b)]
    lines = [f"[{attack}] attacked: refusal {attacked['refusal_rate']:.2f}, task accuracy {attacked['task_accuracy']:.2f}"]
    for m, b in best.items():
        lines.append(f"  best {m:<17} K={b['k']:>2}: refusal {b['refusal_rate']:.2f}, task accuracy {b['task_accuracy']:.2f}, "
                     f"over-refusal {b['over_refusal_rate']:.2f}")
    lines.append(f"  at SPLoRA's best K={sp['k']}, pruning random modules gives refusal {random_same_k['refusal_rate']:.2f}, task "
                 f"accuracy {random_same_k['task_accuracy']:.2f}: SPLoRA " + ("beats" if beats(sp, random_same_k) else "does not beat")
                 + " random pruning there.")
    lines.append(f"  SPLoRA beats random pruning at K in {wins_random or 'none'} (of {inner}).")
    lines.append(f"  pruning the high scores instead of the low ones changes the refusal rate by {high_vs_low:+.2f} on average over K.")
    lines.append(f"  the best post-hoc point of this run: {overall['method']} K={overall['k']} (refusal {overall['refusal_rate']:.2f}, "
                 f"task accuracy {overall['task_accuracy']:.2f}).")
    if beaten_by:
        lines.append(f"  SPLoRA's best point is beaten (as safe and as accurate, clearly better on one) by: {', '.join(beaten_by)}.")
    elif beats_others:
        lines.append(f"  SPLoRA's best point beats: {', '.join(beats_others)}; nothing beats it.")
    else:
        lines.append("  No method's best point beats another's here: they trade refusal against task accuracy.")
    if not beats(sp, attacked):
        lines.append("  Pruning does not help here: no K >= 1 of SPLoRA is both safer and at least as accurate as the attacked adapter.")
    record = {"attacked": attacked, "best": best, "random_at_best_k": random_same_k, "splora_beats_random_at_k": wins_random,
              "mean_refusal_high_minus_low": high_vs_low, "best_beats_random": beats(sp, random_same_k),
              "best_beats_attacked": beats(sp, attacked), "best_overall": overall, "splora_beaten_by": beaten_by,
              "splora_beats": beats_others}
    return record, lines
