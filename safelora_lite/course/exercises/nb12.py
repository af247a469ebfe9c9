"""Self-checking exercises for notebook 12 (the safety landscape), on toy numbers and tensors (no model).

The references call the library (comparison/landscape.py, maths/projection.py), so the exercises check the
learner against the code the notebook uses. Worked solutions: lessons/solutions/s12_safety_landscape.py.
"""

import torch

from safelora_lite.course.exercises.registry import generator, register


def _basin_inputs() -> dict:
    return {"alphas": [-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
            "refusal": [0.62, 0.97, 0.99, 1.0, 0.99, 0.90, 0.20, 0.0], "aligned_refusal": 1.0, "n": 240}


def _basin_width(alphas, refusal, aligned_refusal, n):
    from safelora_lite.comparison.landscape import basin

    line = [{"alpha": a, "refusal_rate": r} for a, r in zip(alphas, refusal)]
    return basin(line, {"refusal_rate": aligned_refusal, "n": {"refusal_rate": n}})["width"]


register(
    "12.basin_width",
    "Along a line W_aligned + alpha d, refusal[i] is the refusal rate at alphas[i], each on n prompts. Walking out "
    "from alpha = 0 in both directions, the basin is the range of alphas whose refusal stays inside the aligned "
    "model's 95% Wilson interval (`wilson(aligned_refusal, n)` from safelora_lite.evaluation.intervals). Its width: "
    "the last alpha inside on the right minus the last alpha inside on the left?",
    _basin_inputs,
    _basin_width,
)


def _shrink_inputs() -> dict:
    g = generator(12)
    return {"v": 0.1 * torch.randn(6, 5, generator=g), "lora_b": torch.randn(6, 2, generator=g), "t": 7.0}


def _shrink_ratio(v, lora_b, t):
    from safelora_lite.maths.projection import safe_lora_projector

    kept = lambda m: float(torch.linalg.matrix_norm(safe_lora_projector(m, "paper") @ lora_b))  # noqa: E731
    return kept(t * v) / kept(v)


register(
    "12.shrink_scale",
    "With the paper projector C(V) = V V^T / ||V||_F, compute ||C(t V) B||_F / ||C(V) B||_F for the given v (V), "
    "lora_b (B) and t: how much more of B does an alignment change t times larger keep?",
    _shrink_inputs,
    _shrink_ratio,
)
