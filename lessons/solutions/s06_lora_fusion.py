"""Worked solutions to notebook 06's exercises (LoRA fusion). Try them yourself first!

Each function takes the exercise's inputs (from `sl.exercise_inputs(key)`) and returns the answer.
tests/test_exercises.py runs every solution against its check.
"""

import torch


def cat_fusion(task, safety, weights):
    (b_t, a_t, s_t), (b_s, a_s, s_s) = task, safety
    w_t, w_s = weights
    b_f = torch.cat([w_t * s_t * b_t, w_s * s_s * b_s], dim=1)  # (d_out, r_t + r_s)
    a_f = torch.cat([a_t, a_s], dim=0)  # (r_t + r_s, d_in)
    return b_f @ a_f  # = w_t s_t B_t A_t + w_s s_s B_s A_s exactly: what `cat` stores


def linear_error(task, safety, weights):
    (b_t, a_t, s_t), (b_s, a_s, s_s) = task, safety
    c_t, c_s = (weights[0] * s_t) ** 0.5, (weights[1] * s_s) ** 0.5
    b, a = c_t * b_t + c_s * b_s, c_t * a_t + c_s * a_s  # peft's `linear`: mix the factors
    # B A = c_t^2 B_t A_t + c_s^2 B_s A_s + c_t c_s (B_t A_s + B_s A_t): the last two are the cross terms
    return float(torch.linalg.norm(b @ a - cat_fusion(task, safety, weights)))


SOLUTIONS = {
    "06.cat_fusion": cat_fusion,
    "06.linear_error": linear_error,
}


# --- the inline exercises of notebook 06 (checked in the notebook with `compare`) -----------------

def notebook_exercise_1(task_m, safety_m, weights=(1.0, -0.5)):
    """The concatenated factors (lora_b_f, lora_a_f) of notebook 06's toy LoraModules: B_f A_f = sum_i w_i s_i B_i A_i."""
    lora_b_f = torch.cat([weights[0] * task_m.scaling * task_m.lora_b, weights[1] * safety_m.scaling * safety_m.lora_b], dim=1)  # (6, 4)
    lora_a_f = torch.cat([task_m.lora_a, safety_m.lora_a], dim=0)  # (4, 6)
    return lora_b_f, lora_a_f  # in the notebook: lora_b_f, lora_a_f = notebook_exercise_1(task_m, safety_m)


def notebook_exercise_2(points):
    """[the largest over-refusal rate of the `fusion` points, its safety weight] (ties: the smallest weight)."""
    fusion_points = [p for p in points if p["method"] == "fusion"]
    top = max(p["over_refusal_rate"] for p in fusion_points)
    return [top, min(p["weight"] for p in fusion_points if p["over_refusal_rate"] == top)]


NOTEBOOK_SOLUTIONS = {1: notebook_exercise_1, 2: notebook_exercise_2}  # notebook 06's exercise number -> solution
