"""Notebook 06: what the fusion's sweet spot (and Safe LoRA's) gains against vanilla LoRA, and what is owed
to the safety adapter rather than to a smaller task update."""

from safelora_lite.comparison.verdicts import differs


def describe(best: dict | None, vanilla: dict, method: str, task_keep: float) -> str:
    """One method's sweet spot against vanilla LoRA: refusal and over-refusal changes, each with the rule's verdict."""
    if best is None:
        return f"No {method} setting kept {task_keep:.0%} of vanilla LoRA's task accuracy: no sweet spot here."

    def change(rate):
        d = best[rate] - vanilla[rate]
        return f"{d:+.2f}, " + ("beyond the noise" if differs(best, vanilla, rate) else "within the noise")

    return (f"{method}: refusal {best['refusal_rate']:.2f} ({change('refusal_rate')} vs vanilla LoRA), over-refusal "
            f"{best['over_refusal_rate']:.2f} ({change('over_refusal_rate')}), task accuracy {best['task_accuracy']:.2f}.")


def safety_adapter_share(best: dict | None, scaled: dict | None) -> tuple[dict, list[str]]:
    """At the sweet spot's weight, does fusing the safety adapter refuse clearly more than the task adapter
    alone, scaled the same way (the control for "a smaller task update")?"""
    if best is None or scaled is None:
        return {"safety_adapter_adds": None}, []
    extra = best["refusal_rate"] - scaled["refusal_rate"]
    adds = extra > 0 and differs(best, scaled, "refusal_rate")
    line = (f"At w = {best['weight']:.2f} the task adapter alone, scaled by {best['w_task']:.2f}, refuses {scaled['refusal_rate']:.2f}: "
            + (f"the safety adapter adds {extra:+.2f} refusal on top of shrinking the task adapter (beyond the noise)."
               if adds else f"the safety adapter adds no clear refusal ({extra:+.2f}) beyond what shrinking the task adapter does."))
    return {"safety_adapter_adds": adds, "refusal_over_scaled": extra}, [line]
