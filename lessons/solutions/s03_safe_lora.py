"""Worked solutions to notebook 03's exercises (section 8, "they check themselves"). Try them yourself first!

These exercises work on the notebook's own objects: `adapter` (a LoraAdapter, from
`safelora_lite.adapters.lora_io.read_adapter`) and `base_ckpt`, `aligned_ckpt` (`safelora_lite.adapters.weights.Checkpoint`).
Paste a function into the notebook and call it, e.g. `answer_1 = shrink_last(adapter, base_ckpt, aligned_ckpt)`.
tests/test_lessons.py runs each one on a tiny Llama pair against the library's own computation.
"""

import torch

import safelora_lite as sl


def _last(adapter):
    return list(adapter.modules.values())[-1]


def shrink_last(adapter, base_ckpt, aligned_ckpt):
    module = _last(adapter)
    v = aligned_ckpt.get(module.target).float() - base_ckpt.get(module.target).float()  # (d_out, d_in), V
    b = module.lora_b.float()  # (d_out, r), B
    cb = v @ (v.T @ b) / torch.linalg.norm(v)  # (d_out, r), paper C B without forming C
    return float(torch.linalg.norm(cb) / torch.linalg.norm(b))  # ||C B|| / ||B||


def threshold_half(adapter, base_ckpt, aligned_ckpt):
    chosen = []
    for name, module in adapter.modules.items():  # in adapter order
        v = sl.alignment_matrix(base_ckpt.get(module.target).float(), aligned_ckpt.get(module.target).float())
        score = sl.projection_similarity(sl.safe_lora_projector(v), module.lora_b.float(), module.lora_a.float())
        if score <= 0.5:  # threshold mode projects every module scoring at most T
            chosen.append(name)
    return chosen


def exact_idempotence(adapter, base_ckpt, aligned_ckpt):
    module = _last(adapter)
    v = sl.alignment_matrix(base_ckpt.get(module.target).float(), aligned_ckpt.get(module.target).float())
    c = sl.safe_lora_projector(v, kind="exact", rank=2)  # U_2 U_2^T
    cb = c @ module.lora_b.float()  # (d_out, r)
    return float((c @ cb - cb).abs().max())  # ~0: projecting twice changes nothing


NOTEBOOK_SOLUTIONS = {  # notebook 03's exercise number -> solution(adapter, base_ckpt, aligned_ckpt)
    1: shrink_last,
    2: threshold_half,
    3: exact_idempotence,
}

SOLUTIONS = {}  # no registered exercises for notebook 03: its checks are inline (see tests/test_lessons.py)
