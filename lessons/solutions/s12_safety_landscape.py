"""Worked solutions to notebook 12's exercises (the safety landscape). Try them yourself first!

tests/test_exercises.py runs every solution against its check.
"""

import torch

from safelora_lite.evaluation.intervals import wilson


def basin_width(alphas, refusal, aligned_refusal, n):
    low, high = wilson(aligned_refusal, n)  # the aligned model's 95% interval
    inside = [low <= r <= high for r in refusal]
    left = right = alphas.index(0.0)  # start at the aligned model
    while left > 0 and inside[left - 1]:
        left -= 1  # walk left while refusal stays in the interval
    while right < len(alphas) - 1 and inside[right + 1]:
        right += 1  # and right
    return alphas[right] - alphas[left]


def shrink_ratio(v, lora_b, t):
    def kept(m):
        c = m @ m.T / torch.linalg.matrix_norm(m)  # C = V V^T / ||V||_F, (d_out, d_out)
        return torch.linalg.matrix_norm(c @ lora_b)  # ||C B||_F

    return float(kept(t * v) / kept(v))  # C(t V) = t C(V): the ratio is t


SOLUTIONS = {
    "12.basin_width": basin_width,
    "12.shrink_scale": shrink_ratio,
}
