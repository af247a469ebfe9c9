"""Worked solutions to notebook 04's exercises (SaLoRA). Try them yourself first!

Each function takes the exercise's inputs (from `sl.exercise_inputs(key)`) and returns the answer.
tests/test_exercises.py runs every solution against its check.
"""

import torch


def safety_module(v_s, lora_b, lora_a):
    return lora_b - v_s @ (v_s.T @ lora_b)  # (d_out, r): C B = B - V_s (V_s^T B), no d_out x d_out matrix


def subspace_fraction(v_s, lora_b, lora_a):
    def share(b):
        update = b @ lora_a  # (d_out, d_in), B A
        inside = v_s @ (v_s.T @ update)  # the part of B A in span(V_s)
        return float(torch.linalg.norm(inside) / torch.linalg.norm(update))

    # C B has no component in span(V_s): V_s^T (B - V_s V_s^T B) = V_s^T B - V_s^T B = 0
    return [share(lora_b), share(safety_module(v_s, lora_b, lora_a))]


def init_product(weight, v_t, r):
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    b0 = v_t @ v_t.T @ u[:, :r] @ torch.diag(s[:r].sqrt())  # (d_out, r), B0 = V_t V_t^T U2 sqrt(S2)
    a0 = torch.diag(s[:r].sqrt()) @ vh[:r]  # (r, d_in), A0 = sqrt(S2) V2^T
    return b0 @ a0  # the sign ambiguity of the SVD cancels in this product


SOLUTIONS = {
    "04.safety_module": safety_module,
    "04.subspace_fraction": subspace_fraction,
    "04.init_product": init_product,
}
