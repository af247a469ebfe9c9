"""Reading the safety landscape (notebook 12): how wide the basin is, what a region of it keeps, where a
method's output lands, and how much the paper projector keeps of an update as the alignment change grows.

Every judgement uses the course's rules: a rate's 95% Wilson interval (evaluation/intervals.py) for "inside
the basin", and the one verdict rule (comparison/verdicts.py) for "differs". The points come from
`evaluation.landscape.Landscape` (lines: {"alpha", rates...}; grids: {"alpha", "beta", rates...}).
"""

import statistics

import numpy as np

from safelora_lite.comparison.verdicts import differs, prompts
from safelora_lite.errors import InputError
from safelora_lite.evaluation.intervals import wilson
from safelora_lite.evaluation.landscape import Direction, coordinates


def inside(point: dict, reference: dict, rate: str = "refusal_rate") -> bool:
    """`rate` of the point lies in the reference's 95% Wilson interval (over the reference's prompts)."""
    low, high = wilson(reference[rate], prompts(reference, rate) or 0)
    return low <= point[rate] <= high


def basin(line: list[dict], reference: dict, rate: str = "refusal_rate", x: str = "alpha") -> dict:
    """The range of `x` around 0 along a line where `rate` stays in the reference's 95% Wilson interval.

    Walking out from x = 0 on the grid, `low` and `high` are the last points still inside; `exit_low` /
    `exit_high` the first points outside (None where the basin reaches the end of the grid: its wall is
    further out, and the width is a lower bound). The wall lies between the last point in and the first out.
    """
    points = sorted(line, key=lambda p: p[x])
    xs = [p[x] for p in points]
    if 0.0 not in xs:
        raise InputError(f"the line has no point at {x} = 0 (the reference model).", f"include 0 in the {x} values.")
    start = xs.index(0.0)
    low, high = (start, start) if inside(points[start], reference, rate) else (None, None)
    if low is not None:
        while low > 0 and inside(points[low - 1], reference, rate):
            low -= 1
        while high < len(points) - 1 and inside(points[high + 1], reference, rate):
            high += 1
    lo_i, hi_i = wilson(reference[rate], prompts(reference, rate) or 0)
    if low is None:
        return {"low": None, "high": None, "width": 0.0, "exit_low": 0.0, "exit_high": 0.0, "interval": [lo_i, hi_i]}
    return {"low": xs[low], "high": xs[high], "width": xs[high] - xs[low],
            "exit_low": xs[low - 1] if low > 0 else None, "exit_high": xs[high + 1] if high < len(xs) - 1 else None,
            "interval": [lo_i, hi_i]}


def basin_text(name: str, b: dict, unit: float | None = None) -> str:
    """One sentence on a basin: where its walls are, and its width (in alpha, and in ||alpha d||_F with `unit` = ||d||_F)."""
    if b["low"] is None:
        return f"{name}: refusal is outside the aligned model's interval already at alpha = 0."
    walls = []
    for side, edge, exit_ in (("left", b["low"], b["exit_low"]), ("right", b["high"], b["exit_high"])):
        walls.append(f"the {side} wall between alpha {edge:+.2f} and {exit_:+.2f}" if exit_ is not None
                     else f"no {side} wall up to alpha {edge:+.2f} (the end of the grid)")
    lower = " at least" if b["exit_low"] is None or b["exit_high"] is None else ""
    size = f" (||alpha d||_F{lower} {b['width'] * unit:.2f})" if unit is not None else ""
    return f"{name}: basin width{lower} {b['width']:.2f} in alpha{size}; {', '.join(walls)}."


def basin_along_second(grid: list[dict], reference: dict, rate: str = "refusal_rate") -> list[dict]:
    """For each beta of a grid, the basin along alpha (`basin` of the row W_aligned + alpha d_1 + beta d_2)."""
    betas = sorted({p["beta"] for p in grid})
    return [{"beta": b, **basin([p for p in grid if p["beta"] == b], reference, rate)} for b in betas]


def best_inside(points: list[dict], reference: dict, rate: str = "refusal_rate", keep: str = "task_accuracy") -> dict | None:
    """The point with the highest `keep` (task accuracy) among those whose `rate` is in the reference's interval
    (ties: the largest alpha, the point closest to the attacked model)."""
    candidates = [p for p in points if inside(p, reference, rate)]
    return max(candidates, key=lambda p: (p[keep], p.get("alpha", 0.0))) if candidates else None


def rate_along(line: list[dict], alpha: float, rate: str) -> float:
    """`rate` along a line at `alpha`, interpolated linearly between its grid points (clamped at the ends)."""
    points = sorted(line, key=lambda p: p["alpha"])
    return float(np.interp(alpha, [p["alpha"] for p in points], [p[rate] for p in points]))


def landing(name: str, update: Direction, axes: list[Direction], rates: dict) -> dict:
    """Where a method's output lands: its coordinates on `axes` (least squares), the share of its update off
    their span, and its rates."""
    coefs, off = coordinates(update, axes)
    return {"name": name, "coordinates": coefs, "off_plane": off, "norm": update.norm(), **rates}


def same_rates(p: dict, q: dict, spread: float = 0.0) -> bool:
    """Neither refusal nor task accuracy differs between p and q by the library's one rule (e.g. a method's
    output and deleting the same modules' updates: "it acts like deletion")."""
    return not (differs(p, q, "refusal_rate", spread) or differs(p, q, "task_accuracy", spread))


def shrink_prediction(rows: list[dict]) -> dict:
    """What the shrink factors predict for a larger or smaller alignment change.

    C = V V^T / ||V||_F is homogeneous of degree 1: C(t V) = t C(V), so with the same directions a t times
    larger alignment change keeps t times more of every update. `scale_to_keep` is the t at which the
    median module's shrink factor reaches 1 (projection stops deleting), and `v_norm_to_keep` the
    median ||V||_F that t means.
    """
    shrink = statistics.median(r["shrink"] for r in rows)
    v_norm = statistics.median(r["v_norm"] for r in rows)
    return {"median_shrink": shrink, "median_v_norm": v_norm, "min_shrink": min(r["shrink"] for r in rows),
            "max_shrink": max(r["shrink"] for r in rows), "scale_to_keep": 1.0 / shrink if shrink > 0 else float("inf"),
            "v_norm_to_keep": v_norm / shrink if shrink > 0 else float("inf")}
