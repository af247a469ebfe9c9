"""Worked solutions to notebook 11's exercises (LoX and token-level safety shaping). Try them yourself first!

tests/test_exercises.py runs every solution against its check.
"""

import torch


def lox_weight(w_base, w_aligned, alpha, k):
    u, s, vh = torch.linalg.svd(w_aligned - w_base)  # V = W_aligned - W_base
    k = k or len(s)  # k = 0 means the full difference
    rank_k = (u[:, :k] * s[:k]) @ vh[:k]  # the top-k part of the alignment
    return w_aligned + alpha * rank_k  # push further along the alignment direction


def shaped_loss(ce, kl, w, beta):
    safe = w * ce  # safe tokens: learn them by cross-entropy
    unsafe = (1 - w) * beta * kl  # flagged tokens: stay close to the reference (aligned) model
    return float((safe + unsafe).sum() / len(ce))  # mean over the response tokens


SOLUTIONS = {
    "11.lox_weight": lox_weight,
    "11.shaped_loss": shaped_loss,
}
