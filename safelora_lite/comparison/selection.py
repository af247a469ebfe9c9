"""Choosing each method's free knob on the validation split, by one stated rule (protocol comparison_v2).

A protocol entry with a knob names it and its candidates, listed from the smallest edit to the largest:

    "safe_lora_paper": {"projector": "paper", "knob": "k_fraction", "candidates": [0.17, 0.33, ...]}

Every candidate is run (`Method.run` with the knob set) and evaluated on the validation split; one rule,
the same for every method, picks one (RULE, stated word for word in the protocol file), and only that one
is then reported on the test split:

    on the validation split, the candidate with the most refusal among those keeping at least TASK_KEEP
    (0.9) of plain LoRA's validation task accuracy; ties -> the smaller edit (the earlier candidate);
    none keeps it -> the candidate with the most task accuracy (ties -> the smaller edit).
"""

from safelora_lite.comparison.verdicts import TASK_KEEP, keeps_task
from safelora_lite.errors import InputError
from safelora_lite.evaluation.generation import rates_of

RULE = (f"on the validation split, the candidate with the most refusal among those keeping at least {TASK_KEEP:.0%} "
        "(TASK_KEEP) of plain LoRA's validation task accuracy; ties -> the smaller edit (the earlier candidate); "
        "none keeps it -> the candidate with the most task accuracy (ties -> the smaller edit)")

KEPT, NONE_KEPT = "most refusal keeping the task", "none keeps the task: most task accuracy"


def choose(candidates: list[dict], baseline: dict, keep: float = TASK_KEEP) -> tuple[int, str]:
    """RULE: (index of the chosen candidate, which branch chose it). `candidates` are validation rates,
    from the smallest edit to the largest; `baseline` is plain LoRA's validation rates."""
    if not candidates:
        raise InputError("no candidates to choose from.", "list at least one candidate for the knob.")
    order = range(len(candidates))
    kept = [i for i in order if keeps_task(candidates[i], baseline, keep)]
    if kept:
        return max(kept, key=lambda i: (candidates[i]["refusal_rate"], -i)), KEPT
    return max(order, key=lambda i: (candidates[i]["task_accuracy"], -i)), NONE_KEPT


def knob_of(settings: dict) -> str | None:
    """The knob a protocol entry tunes (None: its settings are fixed)."""
    knob = settings.get("knob")
    if knob is not None and not settings.get("candidates"):
        raise InputError(f"knob {knob!r} has no candidates.", "list its candidate values under \"candidates\".")
    return knob


def fixed(settings: dict, value) -> dict:
    """The settings with the knob set to `value` (what `Method.run` reads)."""
    return {**{k: v for k, v in settings.items() if k not in ("knob", "candidates")}, settings["knob"]: value}


def select_setting(method, run, settings: dict, validate, baseline: dict, keep: float = TASK_KEEP) -> tuple[dict, dict]:
    """Run every candidate of `settings`' knob on `run`, evaluate each with `validate(result) -> rates`, and
    choose by RULE against `baseline` (plain LoRA's validation rates on the same run).

    Returns (the chosen settings, a record {"knob", "value", "branch", "baseline", "candidates": [{"value", "k"?,
    rates...}]}); "k" is how many modules a candidate acted on, for methods that say (`run.chosen`).
    """
    knob = knob_of(settings)
    tried = []
    for value in settings["candidates"]:
        run.chosen.pop(method.name, None)
        rates = validate(method.run(run, fixed(settings, value)))
        acted = run.chosen.get(method.name)
        tried.append({"value": value, **({"k": len(acted)} if acted is not None else {}), **rates_of(rates)})
    index, branch = choose(tried, baseline, keep)
    value = settings["candidates"][index]
    return fixed(settings, value), {"knob": knob, "value": value, "branch": branch, "baseline": rates_of(baseline),
                                    "candidates": tried}
