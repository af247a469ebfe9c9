"""Worked solutions to notebook 05's exercises (SPLoRA). Try them yourself first!

Each function takes the exercise's inputs (from `sl.exercise_inputs(key)`) and returns the answer.
tests/test_exercises.py runs every solution against its check.
"""

import torch


def update_distance(v, lora_b, lora_a, scaling):
    c = v @ v.T / torch.linalg.norm(v)  # the paper's C (dense is fine at 8 x 8)
    update = scaling * lora_b @ lora_a  # s B A
    return float(torch.linalg.norm(c @ update - update))  # ||s (C B A - B A)||_F


def ediem(d, distances, v_min):
    q1, q3 = torch.quantile(distances, torch.tensor([0.25, 0.75]))
    return float((d - distances.mean()) / (q3 - q1) - v_min)  # a robust z-score of d, shifted by v_m


def prune_number(scores, k):
    highest = sorted(scores, key=scores.get, reverse=True)[:k]  # the K farthest from the alignment subspace
    return [name for name in scores if name in highest]


def reference_number(scores, k):
    cut = sorted(scores.values(), reverse=True)[k - 1]  # the K-th largest score
    return [name for name in scores if scores[name] <= cut]  # keeps only the K - 1 highest: the opposite


SOLUTIONS = {
    "05.update_distance": update_distance,
    "05.ediem": ediem,
    "05.prune_number": prune_number,
    "05.reference_number": reference_number,
}
