"""Notebook 02: how much each attack erodes the aligned model's refusals."""

from safelora_lite.comparison.verdicts import differs, prompts


def erosion(base: dict, aligned: dict, attacks: dict[str, dict]) -> tuple[dict, list[str]]:
    """Refusal dropped by each attack (rates with "n"), and whether benign-only fine-tuning erodes
    refusals clearly less than, as much as, or more than the attacks with harmful data."""
    drop = {name: aligned["refusal_rate"] - r["refusal_rate"] for name, r in attacks.items()}
    lines = [f"Alignment: refusal {base['refusal_rate']:.2f} (base) -> {aligned['refusal_rate']:.2f} (aligned), "
             f"over-refusal {aligned['over_refusal_rate']:.2f}."]
    for name, r in attacks.items():
        lines.append(f"{name:13} refusal {aligned['refusal_rate']:.2f} -> {r['refusal_rate']:.2f} ({-drop[name]:+.2f}); "
                     f"task accuracy {aligned['task_accuracy']:.2f} -> {r['task_accuracy']:.2f}; over-refusal {r['over_refusal_rate']:.2f}")
    benign = attacks["benign"]
    harmful = max(("mixed", "pure_harmful"), key=lambda a: attacks[a]["refusal_rate"])  # the milder of the two
    n = prompts(aligned, "refusal_rate")
    if not differs(benign, aligned, "refusal_rate"):
        verdict = "none"
        lines.append(f"Benign-only fine-tuning left refusals where they were ({-drop['benign']:+.2f}, within the noise of "
                     f"{n or 'the'} prompts).")
    elif benign["refusal_rate"] > attacks[harmful]["refusal_rate"] and differs(benign, attacks[harmful], "refusal_rate"):
        verdict = "less"
        lines.append(f"Benign-only fine-tuning eroded refusals ({-drop['benign']:+.2f}), clearly less than the attacks with "
                     f"harmful data (the milder, {harmful}: {-drop[harmful]:+.2f}).")
    elif not differs(benign, attacks[harmful], "refusal_rate"):
        verdict = "as_much"
        lines.append(f"Benign-only fine-tuning eroded refusals ({-drop['benign']:+.2f}) about as much as the {harmful} attack "
                     f"({-drop[harmful]:+.2f}): no harmful example is needed to undo the alignment.")
    else:
        verdict = "more"
        lines.append(f"Benign-only fine-tuning eroded refusals ({-drop['benign']:+.2f}) more than the {harmful} attack "
                     f"({-drop[harmful]:+.2f}).")
    return {"refusal_drop": drop, "benign_erosion": verdict}, lines
