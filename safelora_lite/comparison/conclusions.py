"""Notebook 07's conclusions, computed: sentences made from a comparison summary by the one verdict rule.

Nothing here decides anything new: whether a method helps, beats or differs is `comparison/verdicts.py`'s
rule, with the two seed stds added as the spread and the prompt counts of the summary. These functions
only say it, with the numbers it rests on, so that a sentence cannot contradict its table.
"""

import math

from safelora_lite.comparison.protocol import setting_text
from safelora_lite.comparison.verdicts import TASK_KEEP, beats, differs, verdicts
from safelora_lite.evaluation.generation import RATES
from safelora_lite.evaluation.intervals import newcombe
from safelora_lite.methods.registry import is_control

PAIRS = (("safe_lora_paper", "zero_control", "zeroing the same modules"),
         ("safe_lora_paper", "random_control", "projecting as many random modules"))


def mean_rates(stats: dict) -> dict:
    """A method's summary as one rates dict: the means over seeds and their prompt counts ("n")."""
    return {**{r: stats[r]["mean"] for r in RATES}, "n": {r: stats[r].get("prompts") for r in RATES}}


def spread(p: dict, q: dict, rate: str = "refusal_rate") -> float:
    """The seed spread of a difference: the two stds over seeds added."""
    return p[rate]["std"] + q[rate]["std"]


def run_note(protocol: dict, attacks, seeds) -> str:
    """What this run covers of its protocol, e.g. "this run: 1 attack of 3 (mixed), 3 seeds of 3 (0, 1, 2)"."""
    full_attacks, full_seeds = protocol["attacks"], protocol["seeds"]
    note = (f"this run: {len(attacks)} attack{'s' * (len(attacks) != 1)} of {len(full_attacks)} ({', '.join(attacks)}), "
            f"{len(seeds)} seed{'s' * (len(seeds) != 1)} of {len(full_seeds)} ({', '.join(map(str, seeds))})")
    trimmed = set(attacks) < set(full_attacks) or len(seeds) < len(full_seeds)
    return note + (f": fewer than protocol {protocol['name']} runs" if trimmed else f": all of protocol {protocol['name']}")


def gain_text(p: dict, q: dict, rate: str = "refusal_rate") -> str:
    """p - q in `rate`, with Newcombe's 95% interval of the difference when the prompt counts are known."""
    diff = round(p[rate]["mean"] - q[rate]["mean"], 2) + 0.0  # + 0.0: a difference that rounds to 0 reads +0.00, not -0.00
    if not (p[rate].get("prompts") and q[rate].get("prompts")):
        return f"{diff:+.2f}"
    low, high = newcombe(p[rate]["mean"], p[rate]["prompts"], q[rate]["mean"], q[rate]["prompts"])
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]"


def verdict_sentence(name: str, stats: dict, base: dict, verdict: dict, keep: float = TASK_KEEP) -> str:
    """One method against plain LoRA under one attack: its setting, refusal gained, task kept, the verdict and why."""
    chosen = setting_text(stats.get("chosen", []))
    head = f"{name}{f' ({chosen})' if chosen else ''}: refusal {gain_text(stats, base)}, "
    kept = verdict["task_kept"]
    head += "task kept n/a (plain LoRA has no task accuracy)" if math.isnan(kept) else f"task kept {kept:.0%}"
    clear = differs(mean_rates(stats), mean_rates(base), "refusal_rate", spread(stats, base))
    if verdict["helps"] and math.isnan(kept):
        return head + " -> helps: more refusal beyond the noise, and plain LoRA has no task accuracy to lose."
    if verdict["helps"]:
        return head + f" -> helps: more refusal beyond the noise, at least {keep:.0%} of plain LoRA's task accuracy kept."
    if clear and verdict["refusal_gain"] > 0:
        return head + f" -> no clear help: more refusal, but under {keep:.0%} of plain LoRA's task accuracy kept."
    if clear:
        return head + " -> no clear help: fewer refusals than plain LoRA, beyond the noise."
    return head + " -> no clear help: the refusal difference is within the noise (seed spread and prompts)."


def pair_sentence(summary_attack: dict, method: str, control: str, what: str) -> str | None:
    """A post-hoc method against its control at the same K (None when the run lacks either); the spread is the
    larger of the two rates' seed spreads."""
    if method not in summary_attack or control not in summary_attack:
        return None
    p, c = summary_attack[method], summary_attack[control]
    rp, rc, s = mean_rates(p), mean_rates(c), max(spread(p, c), spread(p, c, "task_accuracy"))
    head = (f"{method} vs {what} ({control}, {setting_text(c.get('chosen', []))}): refusal {gain_text(p, c)}, "
            f"task accuracy {gain_text(p, c, 'task_accuracy')}")
    if beats(rp, rc, s):
        return head + f" -> {method} beats its control."
    if beats(rc, rp, s):
        return head + f" -> the control beats {method}."
    if differs(rp, rc, "refusal_rate", s) or differs(rp, rc, "task_accuracy", s):
        return head + " -> they differ, each better on one rate."
    return head + f" -> no clear difference: {method} does what its control does."


def who_helps(verdict: dict, baseline: str = "lora") -> tuple[list[str], list[str], list[str]]:
    """(the methods judged, those that help, the controls that pass the same rule) of `verdicts`' output: a control
    is counted apart, as it is not a method (it asks what removing part of the update does by itself)."""
    methods = [m for m in verdict if m != baseline and not is_control(m)]
    return methods, [m for m in methods if verdict[m]["helps"]], [m for m in verdict if is_control(m) and verdict[m]["helps"]]


def controls_pass(controls: list[str]) -> str:
    """"control zero_control passes the same rule", or "controls a, b pass the same rule"."""
    one = len(controls) == 1
    return f"control{'' if one else 's'} {', '.join(controls)} pass{'es' if one else ''} the same rule"


def conclusions(summary: dict, attack: str, baseline: str = "lora") -> list[str]:
    """Every sentence for one attack: each method against plain LoRA, then the post-hoc methods against their controls,
    then how many methods help, and which controls pass the same rule (`who_helps`)."""
    stats, verdict = summary[attack], verdicts(summary, attack, baseline)
    lines = [verdict_sentence(m, s, stats[baseline], verdict[m]) for m, s in stats.items() if m != baseline]
    lines += [line for line in (pair_sentence(stats, *pair) for pair in PAIRS) if line]
    methods, helping, controls = who_helps(verdict, baseline)
    lines.append(f"Under the {attack} attack, {len(helping)} of {len(methods)} methods help"
                 + (f": {', '.join(helping)}" if helping else "") + (f"; the {controls_pass(controls)}." if controls else "."))
    return lines
