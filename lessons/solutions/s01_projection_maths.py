"""Worked solutions to notebook 01's exercises. Try them yourself first!

Each function takes the exercise's inputs (from `sl.exercise_inputs(key)`) and returns the answer.
tests/test_exercises.py runs every solution against its check.
"""

import torch


def paper_projector(w_base, w_aligned):
    v = w_aligned - w_base  # V, (2, 2)
    return v @ v.T / torch.linalg.norm(v)  # C = V V^T / ||V||_F (Frobenius norm, not squared)


def rescale_factor(w_base, w_aligned, lora_b, lora_a):
    c = paper_projector(w_base, w_aligned)
    cb = c @ lora_b
    return float(torch.linalg.norm(c @ cb) / torch.linalg.norm(cb))  # 1.0 only if C were idempotent on C b


def low_rank_score(modules):
    scores = {}
    for name, (v, b, a) in modules.items():
        cb = v @ (v.T @ b) / torch.linalg.norm(v)  # (d, r): C B without forming C
        gram = a @ a.T  # (r, r)
        inner = ((cb.T @ b) * gram).sum()  # <C B A, B A>_F
        norm_cba = ((cb.T @ cb) * gram).sum().sqrt()
        norm_ba = ((b.T @ b) * gram).sum().sqrt()
        scores[name] = float(inner / (norm_cba * norm_ba))
    return scores


def select_two(modules):
    scores = low_rank_score(modules)
    lowest = sorted(scores, key=scores.get)[:2]  # number mode: the K lowest scores
    return [name for name in scores if name in lowest]


SOLUTIONS = {
    "01.paper_projector": paper_projector,
    "01.rescale_factor": rescale_factor,
    "01.low_rank_score": low_rank_score,
    "01.select_two": select_two,
}
