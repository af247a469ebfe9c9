"""Each notebook's conclusion code on crafted numbers: every branch is reached, and each sentence follows
the numbers (a forced-wrong branch fails here, e.g. "0.836 vs 0.707" can never print "mostly outside")."""

import pytest

from safelora_lite.course.conclusions import nb02, nb03, nb04, nb05, nb06, nb11, nb12

N = 240  # prompts per rate, as the course's test set has for harmful prompts


def rates(refusal, task, over=0.0, n=N):
    out = {"refusal_rate": refusal, "harmful_compliance_rate": 1 - refusal, "over_refusal_rate": over, "task_accuracy": task}
    return {**out, "n": dict.fromkeys(out, n)}


@pytest.mark.parametrize("benign, verdict", [(0.99, "none"), (0.7, "less"), (0.12, "as_much"), (0.01, "more")])
def test_nb02_benign_erosion_branches(benign, verdict):
    attacks = {"mixed": rates(0.1, 0.9), "pure_harmful": rates(0.05, 0.1), "benign": rates(benign, 0.9)}
    record, lines = nb02.erosion(rates(0.0, 0.0), rates(1.0, 0.0), attacks)
    assert record["benign_erosion"] == verdict
    assert {"none": "left refusals where they were", "less": "clearly less", "as_much": "about as much",
            "more": "more than the mixed"}[verdict] in lines[-1]


def sweep(paper_refusal, zero_refusal, ks=(0, 2, 4), task=0.9):
    points = []
    for k in ks:
        points.append({"method": "safe_lora_paper", "attack": "mixed", "k": k, "seed": 0, **rates(paper_refusal if k else 0.1, task)})
        points.append({"method": "zero", "attack": "mixed", "k": k, "seed": 0, **rates(zero_refusal if k else 0.1, task)})
    return points


@pytest.mark.parametrize("paper, zero, deletion", [(0.5, 0.5, True), (0.52, 0.5, True), (0.8, 0.5, False)])
def test_nb03_deletion_branches(paper, zero, deletion):
    points = sweep(paper, zero)
    p = {**rates(paper, 0.9), "zero_control": rates(zero, 0.9)}
    record, lines = nb03.conclude(rates(1.0, 0.0), rates(0.1, 0.9), [(p, "safe_lora_paper", 4, None)], points, "mixed", [0, 2, 4])
    assert record["acts_like_deletion"] is deletion
    assert ("acts like deleting" in lines[1]) is deletion
    assert (record["meeting_target"] != []) is (not deletion)  # 0.8: 78% of the lost refusals back, task kept, beats zero
    assert ("meet the target" in lines[-1]) is (not deletion)


def test_nb03_undefined_target_and_score_ranking():
    p = {**rates(0.5, 0.0), "zero_control": rates(0.5, 0.0)}
    _, lines = nb03.conclude(rates(1.0, 0.0), rates(0.1, 0.0), [(p, "safe_lora_paper", 2, None)], sweep(0.5, 0.5, task=0.0), "mixed", [0, 2])
    assert "undefined" in lines[-1]
    assert nb03.score_ranking({"mixed": 0.5, "pure_harmful": 0.3})[0]["harmful_scores_lower"] is True
    assert "opposite" in nb03.score_ranking({"mixed": 0.3, "pure_harmful": 0.5})[1][0]


@pytest.mark.parametrize("share, where, words", [(0.836, "leans_in", "leans into"), (0.72, "like_random", "about as much"),
                                                 (0.3, "leans_out", "mostly outside")])
def test_nb04_safety_share_branches(share, where, words):
    record, lines = nb04.safety_share(share, 1e-7, 0.707)
    assert record["lora_update"] == where and words in lines[1]


@pytest.mark.parametrize("salora, verdict", [(rates(0.6, 0.88), "helps"), (rates(0.6, 0.5), "helps_at_a_cost"),
                                             (rates(0.12, 0.9), "no_clear_difference"), (rates(0.0, 0.9), "worse")])
def test_nb04_salora_branches(salora, verdict):
    assert nb04.salora_vs_lora(rates(0.1, 0.9), salora, task_tolerance=0.05)[0]["verdict"] == verdict


def test_nb04_best_rank_and_trend_need_enough_points():
    two = {0: rates(0.2, 0.9), 32: rates(0.3, 0.9)}
    record, lines = nb04.best_safety_rank(two, 0.9, 0.05)
    assert record["best_safety_rank"] == 32 and record["rank_refusal_correlation"] is None and "needs 3" in lines[-1]
    flat = {0: rates(0.2, 0.9), 8: rates(0.2, 0.9), 32: rates(0.2, 0.9)}
    assert "none" in nb04.best_safety_rank(flat, 0.9, 0.05)[1][-1]
    assert nb04.best_safety_rank({0: rates(0.2, 0.1)}, 0.9, 0.05)[0]["best_safety_rank"] is None


def splora_sweep(splora, random, other):
    points = []
    for k in (0, 2, 4):
        for method, value in (("splora", splora), ("splora_low", 0.1), ("random", random), ("safe_lora_paper", other)):
            points.append({"method": method, "attack": "mixed", "k": k, "seed": 0, **rates(value if k else 0.1, 0.9)})
    return points


def test_nb05_branches():
    methods = ("splora", "splora_low", "random", "safe_lora_paper")
    record, lines = nb05.conclude(splora_sweep(0.6, 0.2, 0.9), "mixed", [0, 2, 4], 12, methods)
    assert record["best_overall"]["method"] == "safe_lora_paper" and record["splora_beaten_by"] == ["safe_lora_paper"]
    assert record["best_beats_random"] and any("is beaten" in line for line in lines)
    record, lines = nb05.conclude(splora_sweep(0.6, 0.2, 0.2), "mixed", [0, 2, 4], 12, methods)
    assert "safe_lora_paper" in record["splora_beats"]
    record, lines = nb05.conclude(splora_sweep(0.1, 0.1, 0.1), "mixed", [0, 2, 4], 12, methods)
    assert not record["best_beats_attacked"] and "does not help" in lines[-1]


def test_nb06_safety_adapter_branches():
    best = {**rates(0.6, 0.8), "weight": 0.4, "w_task": 0.6}
    assert nb06.safety_adapter_share(best, rates(0.2, 0.8))[0]["safety_adapter_adds"] is True
    assert nb06.safety_adapter_share(best, rates(0.59, 0.8))[0]["safety_adapter_adds"] is False
    assert nb06.safety_adapter_share(None, None)[1] == []
    assert "within the noise" in nb06.describe(rates(0.11, 0.9), rates(0.1, 0.9), "fusion", 0.9)
    assert "no sweet spot" in nb06.describe(None, rates(0.1, 0.9), "fusion", 0.9)


def test_nb11_changes_use_prompts_and_seeds():
    def stats(refusal, std):
        return {r: {"mean": v, "std": std, "prompts": N} for r, v in (("refusal_rate", refusal), ("over_refusal_rate", 0.0), ("task_accuracy", 0.9))}
    methods = {"lora": {"mixed": stats(0.1, 0.01)}, "lox": {"mixed": stats(0.5, 0.01)}, "shaping": {"mixed": stats(0.5, 0.5)}}
    assert nb11.changes(methods, "mixed", "lox", 3)[0]["refusal_rate"]["real"] is True
    assert nb11.changes(methods, "mixed", "shaping", 3)[0]["refusal_rate"]["real"] is False  # inside the seed spread
    before = [{"alpha": 4.0, "k": 0, **rates(0.0, 0.9)}, {"alpha": 1.0, "k": 0, **rates(1.0, 0.9)}]
    cost, lines = nb11.extrapolation_cost(before, rates(1.0, 0.9))
    assert cost["fewer_refusals"] == [{"alpha": 4.0, "k": 0}] and "alpha=4 k=0 (0.00)" in lines[0]
    assert cost["more_over_refusal"] == [] and "no setting" in lines[1]


def test_nb11_best_setting_keeps_the_task():
    points = [{"method": "lora", "seed": 0, "attack": a, **rates(0.1, 0.9)} for a in ("mixed", "pure_harmful")]
    points += [{"method": "lox", "seed": 0, "attack": a, "alpha": al, "k": 0, **rates(r, t)}
               for a in ("mixed", "pure_harmful") for al, r, t in ((1.0, 0.5, 0.88), (4.0, 0.9, 0.2))]
    best = nb11.best_setting(points, "lox", ("alpha", "k"), ("mixed", "pure_harmful"), 0)
    assert best["alpha"] == 1.0  # alpha 4 refuses more but loses the task


def spot(alpha, beta, refusal, task, off=0.5):
    return {"coordinates": [alpha, beta], "off_plane": off, **rates(refusal, task)}


def line_point(alpha, refusal, task, beta=None):
    return {"alpha": alpha, **({} if beta is None else {"beta": beta}), **rates(refusal, task)}


def basin_of(width, open_ends=False):
    return {"width": width, "exit_low": None if open_ends else -1.0, "exit_high": None if open_ends else 1.0}


@pytest.mark.parametrize("random, words", [(basin_of(3.0, open_ends=True), "at least 4.8 times as wide"),
                                           (basin_of(0.5), "is not wider")])
def test_nb12_basin_width_branches(random, words):
    record, lines = nb12.basin_widths(basin_of(0.625), random)
    assert words in lines[0] and record["random_wider"] is ("not wider" not in words)


@pytest.mark.parametrize("kept_task, keeps", [(0.0, False), (0.9, True)])
def test_nb12_trade_off_branches(kept_task, keeps):
    aligned, attacked = rates(1.0, 0.0), rates(0.0, 0.92)
    line = [line_point(0.0, 1.0, 0.0), line_point(0.25, 1.0, kept_task), line_point(0.5, 0.4, 0.7), line_point(1.0, 0.0, 0.92)]
    grid = [line_point(a, r, t, beta=b) for a, r, t, b in
            [(0.0, 1.0, 0.0, 0.0), (0.5, 0.4, 0.7, 0.0), (0.0, 1.0, kept_task, 1.0), (0.5, 1.0, 0.1, 1.0), (0.0, 0.5, 0.0, 2.0), (0.5, 0.1, 0.0, 2.0)]]
    record, lines = nb12.trade_off(line, grid, aligned, attacked)
    assert record["line_keeps_both"] is keeps and record["map_keeps_both"] is keeps
    assert ("only as the task goes" in lines[0]) is (not keeps) and ("No point of this plane" in lines[1]) is (not keeps)
    assert "beta +0.0: between alpha 0 and 0.5" in lines[2] and "beta +1.0: beyond alpha 0.5" in lines[2]
    assert "beta +2.0: no basin" in lines[2]


@pytest.mark.parametrize("zero_refusal, same", [(0.43, True), (0.52, False)])
def test_nb12_deletion_branches(zero_refusal, same):
    line = [line_point(0.375, 0.76, 0.3), line_point(0.5, 0.4, 0.7)]
    record, lines = nb12.deletion(spot(0.48, 0.0, 0.42, 0.5), spot(0.47, 0.0, zero_refusal, 0.5), 0.04, line, N)
    assert record["same_rates"] is same
    assert ("acts like deletion" in lines[0]) is same and ("from 0.76 at alpha 0.375 to 0.40 at 0.5" in lines[0]) is (not same)


def test_nb12_outputs_against_the_attack_line():
    line = [line_point(0.0, 1.0, 0.0), line_point(1.0, 0.0, 0.9)]
    record, lines = nb12.where_outputs_land({"like": spot(0.5, 0.0, 0.5, 0.45), "unlike": spot(0.5, 0.0, 1.0, 0.9)}, line, rates(1.0, 0.0))
    assert record["like_attack_line"] == {"like": True, "unlike": False}
    assert "like the attack line" in lines[1] and "unlike the attack line at its alpha (refusal 0.50" in lines[2]
    assert "(outside the basin)" in lines[1] and "(inside the basin)" in lines[2]


@pytest.mark.parametrize("beta, keeper", [(0.0, False), (0.4, True)])
def test_nb12_about_notebooks_03_07_branches(beta, keeper):
    landings = {"safe_lora_paper": spot(0.48, beta, 0.42, 0.5), "zero_control": spot(0.47, 0.0, 0.5, 0.5)}
    if keeper:
        landings["shaping"] = spot(0.28, 0.02, 1.0, 0.94, off=0.9)
    trade = {"line_keeps_both": False, "map_keeps_both": False}
    record, lines = nb12.about_notebooks_03_07(landings, rates(1.0, 0.0), rates(0.0, 0.92), 0.5, 0.048, False, trade)
    assert record["post_hoc_on_beta_axis"] is (beta == 0.0)
    assert ("at this map's resolution" in lines[0]) is (beta == 0.0) and ("do not all land" in lines[0]) is (beta != 0.0)
    assert "up to that remainder" in lines[0]
    assert "trades one for the other" in lines[0]
    assert record["keep_both"] == (["shaping"] if keeper else []) and (len(lines) == 2) is keeper
    _, kept = nb12.about_notebooks_03_07(landings, rates(1.0, 0.0), rates(0.0, 0.92), 0.5, 0.048, True,
                                         {"line_keeps_both": True, "map_keeps_both": False})
    assert "deletion's rates" in kept[0] and "trades one" not in kept[0]


@pytest.mark.parametrize("median, deleting", [(0.048, True), (0.4, False)])
def test_nb12_shrink_story_branches(median, deleting):
    rows = [{"shrink": median, "top_eigenvalue": 3 * median}]
    prediction = {"median_shrink": median, "median_v_norm": 0.57, "min_shrink": median, "max_shrink": median,
                  "scale_to_keep": 1 / median, "v_norm_to_keep": 0.57 / median}
    record, lines = nb12.shrink_story(rows, prediction)
    assert record["projecting_is_deleting"] is deleting and record["shrink_to_bound"] == pytest.approx(1 / 3)
    assert ("close to deleting" in lines[1]) is deleting and ("is not deleting" in lines[1]) is (not deleting)


def test_nb08_calibration_branches():
    from safelora_lite.course.conclusions import nb08

    met, lines = nb08.calibration(rates(0.05, 0.0, 0.02), rates(0.97, 0.0, 0.05), 0.95)
    assert met["meets_bars"] and met["refusal_gained"] and "meets every bar" in lines[1]
    missed, lines = nb08.calibration(rates(0.05, 0.0, 0.02), rates(0.97, 0.0, 0.30), 0.95)
    assert not missed["meets_bars"] and "over_refusal" in lines[1]


@pytest.mark.parametrize("paper, zero, deletion", [(0.50, 0.50, True), (0.52, 0.50, True), (0.80, 0.50, False)])
def test_nb08_deletion_branches(paper, zero, deletion):
    from safelora_lite.course.conclusions import nb08

    record, lines = nb08.deletion(rates(paper, 0.5, n=100), rates(zero, 0.5, n=100), 15)
    assert record["acts_like_deletion"] is deletion
    assert ("acts like deletion" in lines[0]) is deletion


def test_nb08_attack_geometry_and_generalisation_branches():
    from safelora_lite.course.conclusions import nb08

    record, lines = nb08.attacks(rates(0.97, 0.0, n=100), {"mixed": rates(0.05, 0.8, n=100), "benign": rates(0.95, 0.8, n=100)})
    assert record["mixed"] == {"eroded_refusals": True, "taught_task": True} and not record["benign"]["eroded_refusals"]
    assert "took refusals away" in lines[0] and "left refusals where they were" in lines[1]
    small = {q: {"median": 0.006, "min": 0.001, "max": 0.02} for q in ("v_norm", "top_eigenvalue", "shrink", "score")}
    large = {**small, "shrink": {"median": 0.4, "min": 0.1, "max": 0.9}}
    assert nb08.geometry(small, small)[0]["projection_deletes"] and not nb08.geometry(large, small)[0]["projection_deletes"]
    same, _ = nb08.generalisation(rates(0.95, 0.0, 0.05, n=100), rates(0.93, 0.0, 0.05, n=30), "aligned")
    worse, line = nb08.generalisation(rates(0.95, 0.0, 0.05, n=100), rates(0.40, 0.0, 0.05, n=30), "aligned")
    assert not same["refusal_rate"]["differs"] and worse["refusal_rate"]["differs"] and "a clear difference" in line[0]


def test_nb08_method_branches():
    from safelora_lite.course.conclusions import nb08

    def stats(refusal, task):
        return {"refusal_rate": {"mean": refusal, "std": 0.0, "prompts": 100}, "task_accuracy": {"mean": task, "std": 0.0, "prompts": 100},
                **{r: {"mean": 0.0, "std": 0.0, "prompts": 100} for r in ("harmful_compliance_rate", "over_refusal_rate")}}

    summary = {"mixed": {"lora": stats(0.05, 0.9), "fusion": stats(0.6, 0.85), "zero_control": stats(0.9, 0.1)}}
    record, lines = nb08.methods(summary, "mixed")
    assert record["helps"] == ["fusion"] and record["best_keeping_task"] == "fusion" and "fusion" in lines[1]
    summary["mixed"]["fusion"] = stats(0.6, 0.3)
    record, lines = nb08.methods(summary, "mixed")
    assert record["helps"] == [] and record["best_keeping_task"] is None and "No method keeps" in lines[1]
    summary["mixed"]["random_control"] = stats(0.8, 0.85)  # a control that passes the rule is named as one
    record, lines = nb08.methods(summary, "mixed")
    assert record["helps"] == [] and record["controls_help"] == ["random_control"] and "(a control)" in lines[1]
    assert "removing part of the attack's update helps by itself" in lines[2]
    no_task = {"pure_harmful": {"lora": stats(0.0, 0.0), "splora": stats(0.9, 0.0)}}  # a pure-harmful attack teaches no task
    record, lines = nb08.methods(no_task, "pure_harmful")
    assert record["helps"] == ["splora"] and record["best_keeping_task"] == "splora"
    assert lines[1].endswith("refusal 0.90 (plain LoRA has no task accuracy to keep).")
