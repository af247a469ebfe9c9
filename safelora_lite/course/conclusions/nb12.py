"""Notebook 12: what the safety landscape says (the basin, the trade-off, where each output lands, the shrink factor).

"In the basin" is the aligned model's 95% Wilson interval (comparison/landscape.py); "differs" is the one rule
of comparison/verdicts.py. Every function returns (record, lines).
"""

import statistics

from safelora_lite.comparison.landscape import basin_along_second, best_inside, inside, rate_along, same_rates
from safelora_lite.comparison.verdicts import TASK_KEEP
from safelora_lite.evaluation.intervals import interval_text

POST_HOC = ("safe_lora_paper", "safe_lora_exact", "zero_control", "splora")  # the edits of an attacked adapter
DELETION_SHRINK = 0.1  # below this median shrink factor, projecting a module is "close to deleting" its update


def basin_widths(attack: dict, random: dict) -> tuple[dict, list[str]]:
    """Is the basin along a random direction (same per-module norms) wider than along the attack's update?"""
    open_random = random["exit_low"] is None or random["exit_high"] is None
    wider = random["width"] > attack["width"]
    if wider:
        line = (f"1. The random direction's basin is {'at least ' if open_random else ''}"
                f"{random['width'] / max(attack['width'], 1e-9):.1f} times as wide as the attack's ({random['width']:.2f} against "
                f"{attack['width']:.2f} in alpha): the attack's update points at the basin's wall, a random change of the same "
                "size per module does not.")
    else:
        line = f"1. The random direction's basin ({random['width']:.2f}) is not wider than the attack's ({attack['width']:.2f})."
    return {"attack_width": attack["width"], "random_width": random["width"], "random_open": open_random, "random_wider": wider}, [line]


def trade_off(attack_line: list[dict], grid: list[dict], aligned: dict, attacked: dict) -> tuple[dict, list[str]]:
    """Does any point inside the basin keep TASK_KEEP of the attacked model's task accuracy: on the attack's line,
    and anywhere on the map? And where is the basin's wall along the attack's update, row by row of the map?"""
    target = TASK_KEEP * attacked["task_accuracy"]
    on_line, on_map = best_inside(attack_line, aligned), best_inside(grid, aligned)
    kept_line = on_line is not None and on_line["task_accuracy"] >= target
    kept_map = on_map is not None and on_map["task_accuracy"] >= target
    lines = [("2. Inside the basin along the attack's update, task accuracy is at most "
              f"{on_line['task_accuracy']:.2f} (alpha {on_line['alpha']:+.3g})" if on_line else
              "2. No point of the attack's line is inside the basin")
             + f"; the attacked model has {attacked['task_accuracy']:.2f} at alpha 1, with refusal {attacked['refusal_rate']:.2f}. "
             + ("This line has points that keep both the refusals and the task." if kept_line else
                "Along this line refusals come back only as the task goes.")]
    lines.append("5. On the map, " + (f"the best task accuracy inside the basin is {on_map['task_accuracy']:.2f} at "
                                      f"({on_map['alpha']:.3g}, {on_map['beta']:+.2f})" if on_map else "no point is inside the basin")
                 + f"; the attacked model has {attacked['task_accuracy']:.2f}. "
                 + ("Some points of this plane keep both." if kept_map else
                    f"No point of this plane keeps the refusals and {TASK_KEEP:.0%} of the task."))
    walls = basin_along_second(grid, aligned) if any(p["alpha"] == 0.0 for p in grid) else []
    if walls:
        lines.append("   The basin's right wall along the attack's update, by beta: " + "; ".join(
            f"beta {w['beta']:+.1f}: " + ("no basin (refusal leaves the interval at alpha 0)" if w["high"] is None else
                                          f"between alpha {w['high']:.3g} and {w['exit_high']:.3g}" if w["exit_high"] is not None
                                          else f"beyond alpha {w['high']:.3g}") for w in walls))
    record = {"best_inside_line": on_line, "best_inside_map": on_map, "line_keeps_both": kept_line, "map_keeps_both": kept_map,
              "walls_by_beta": walls}
    return record, lines


def deletion(safe_lora: dict, zero: dict, apart: float, attack_line: list[dict], n_harmful: int) -> tuple[dict, list[str]]:
    """Safe LoRA's output against deleting the same modules: where both land, how far apart (`apart`: ||difference||_F
    as a share of the attack's update), whether their rates differ, and how steep the attack line is there."""
    same = same_rates(safe_lora, zero)
    a = safe_lora["coordinates"][0]
    below = max((p for p in attack_line if p["alpha"] <= a), key=lambda p: p["alpha"], default=attack_line[0])
    above = min((p for p in attack_line if p["alpha"] > a), key=lambda p: p["alpha"], default=attack_line[-1])
    line = (f"3. Safe LoRA (paper) lands at ({a:.2f}, {safe_lora['coordinates'][1]:+.2f}) and zeroing the same modules at "
            f"({zero['coordinates'][0]:.2f}, {zero['coordinates'][1]:+.2f}): the two outputs are {apart:.1%} of the attack's "
            "update apart (what the paper's C keeps of the projected modules). Their rates "
            + ("do not differ by the library's rule: Safe LoRA acts like deletion." if same else
               f"differ by the library's rule (refusal {interval_text(safe_lora['refusal_rate'], n_harmful)} against "
               f"{interval_text(zero['refusal_rate'], n_harmful)}): on the attack line refusal goes from {below['refusal_rate']:.2f} "
               f"at alpha {below['alpha']:.3g} to {above['refusal_rate']:.2f} at {above['alpha']:.3g} around there, so even that "
               "small remainder can show: Safe LoRA is deletion plus a few percent of the update."))
    return {"same_rates": same, "apart": apart}, [line]


def where_outputs_land(landings: dict, attack_line: list[dict], aligned: dict) -> tuple[dict, list[str]]:
    """Each output's coordinates, off-plane share, rates, and whether it has the attack line's rates at its alpha
    (the line's interpolated rates read over the aligned model's prompt counts)."""
    n = aligned["n"]
    lines = ["4. Where each output lands, and the attack line at its alpha (the line's rate read over the same prompts, "
             "the library's rule):"]
    like_line = {}
    for name, spot in landings.items():
        a, b = spot["coordinates"]
        on_line = {r: rate_along(attack_line, a, r) for r in ("refusal_rate", "task_accuracy")}
        like_line[name] = same_rates(spot, {**on_line, "n": n})
        lines.append(f"   {name}: ({a:.2f}, {b:+.2f}), {spot['off_plane']:.0%} of its update off the plane; refusal "
                     f"{interval_text(spot['refusal_rate'], n['refusal_rate'])} ({'inside' if inside(spot, aligned) else 'outside'} "
                     f"the basin), task {interval_text(spot['task_accuracy'], n['task_accuracy'])}; "
                     + ("like the attack line at its alpha" if like_line[name] else
                        f"unlike the attack line at its alpha (refusal {on_line['refusal_rate']:.2f}, task {on_line['task_accuracy']:.2f})"))
    return {"like_attack_line": like_line}, lines


def about_notebooks_03_07(landings: dict, aligned: dict, attacked: dict, beta_step: float, median_shrink: float,
                          same: bool, trade: dict) -> tuple[dict, list[str]]:
    """What the map explains: where the post-hoc outputs land (on the beta = 0 axis at the map's resolution?), and
    whether any output keeps both the refusals and the task, and how far off the plane it is."""
    post_hoc = [n for n in POST_HOC if n in landings]
    on_axis = bool(post_hoc) and all(abs(landings[n]["coordinates"][1]) < beta_step / 2 for n in post_hoc)
    alphas = [landings[n]["coordinates"][0] for n in post_hoc]
    no_way = not (trade["line_keeps_both"] or trade["map_keeps_both"])
    line = (f"6. About notebooks 03-07: the post-hoc outputs ({', '.join(post_hoc)}) "
            + (f"land on the beta = 0 axis at this map's resolution (|beta| < {beta_step / 2:.2f}): they keep part of the attack's "
               f"update (their shadow on its axis: alpha {min(alphas):.2f} to {max(alphas):.2f}) and add nothing along the alignment "
               "change." if on_axis else "do not all land on the beta = 0 axis.")
            + f" The paper's C keeps a median {median_shrink:.0%} of a projected B (section 6), so Safe LoRA moves the weights "
            "where deleting its modules does" + (" and gets deletion's rates." if same else ", up to that remainder.")
            + (" Neither the attack line nor the plane holds a point that keeps the refusals and the task (points 2 and 5): an "
               "edit that removes part of the attack's update trades one for the other, what notebooks 03-07 measured."
               if no_way else ""))
    lines = [line]
    keepers = [n for n, spot in landings.items() if inside(spot, aligned) and spot["task_accuracy"] >= TASK_KEEP * attacked["task_accuracy"]]
    if keepers:
        lines.append(f"   {', '.join(keepers)} keeps both, with {max(landings[n]['off_plane'] for n in keepers):.0%} of its update "
                     "off the plane: the way out of the trade-off is not on it.")
    return {"post_hoc_on_beta_axis": on_axis, "keep_both": keepers}, lines


def shrink_story(rows: list[dict], prediction: dict) -> tuple[dict, list[str]]:
    """Notebook 01's story on this pair: how much the paper's C keeps, and what a larger or smaller V predicts."""
    to_bound = statistics.median(r["shrink"] / r["top_eigenvalue"] for r in rows)
    deleting = prediction["median_shrink"] < DELETION_SHRINK
    lines = [f"This pair: median ||V||_F {prediction['median_v_norm']:.3f}; the paper's C keeps {prediction['min_shrink']:.1%} to "
             f"{prediction['max_shrink']:.1%} of a module's B (median {prediction['median_shrink']:.1%}); shrink factor / its bound "
             f"sigma_1^2 / ||V||_F: median {to_bound:.2f}.",
             f"Prediction: an alignment change about {prediction['scale_to_keep']:.0f} times larger (median ||V||_F about "
             f"{prediction['v_norm_to_keep']:.1f}) would keep B's full size, and a larger one would amplify it. A pair whose alignment "
             "change is large (a base model against its chat model) can have such a V: there the paper's C projects and rescales "
             "without deleting. A pair whose alignment change is small (a chat model against its own safety fine-tune, the Safe "
             "LoRA recipe's setting) has a V like this one's or smaller: "
             + (f"there the paper's C keeps about {prediction['median_shrink']:.0%} of a projected B, so projecting a module is close "
                "to deleting its update." if deleting else
                f"there the paper's C still keeps about {prediction['median_shrink']:.0%} of a projected B: projecting is not deleting.")]
    return {**prediction, "shrink_to_bound": to_bound, "projecting_is_deleting": deleting}, lines
