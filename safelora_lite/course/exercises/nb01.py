"""Exercises of notebook 01 (projection maths), on toy matrices."""

import torch

from safelora_lite.course.exercises.registry import register
from safelora_lite.maths.projection import alignment_matrix, projection_similarity, safe_lora_projector, select_modules
from safelora_lite.maths.toy_matrices import toy_layers


# --- notebook 01: projection maths ---------------------------------------------------------------

def _toy_pair() -> dict:
    g = torch.Generator().manual_seed(1)
    w_base = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w_aligned = torch.tensor([[1.5, 0.5], [0.5, 1.5]])
    return {"w_base": w_base, "w_aligned": w_aligned, "lora_b": torch.randn(2, 1, generator=g), "lora_a": torch.randn(1, 2, generator=g)}


register(
    "01.paper_projector",
    "Given w_base and w_aligned (2 x 2), compute the paper's C = V V^T / ||V||_F as a dense 2 x 2 tensor.",
    lambda: {k: v for k, v in _toy_pair().items() if k.startswith("w_")},
    lambda w_base, w_aligned: safe_lora_projector(alignment_matrix(w_base, w_aligned)).dense(),
)

def _rescale_factor(w_base, w_aligned, lora_b, lora_a) -> float:
    c = safe_lora_projector(alignment_matrix(w_base, w_aligned))
    return float(torch.linalg.norm(c @ (c @ lora_b)) / torch.linalg.norm(c @ lora_b))


register(
    "01.rescale_factor",
    "With the same V, the paper C is not idempotent: compute ||C C b|| / ||C b|| for b = lora_b (a float).",
    _toy_pair,
    _rescale_factor,
)


def _layers() -> dict:
    layers = toy_layers(n_layers=4, d=16, r=2, seed=2)
    return {"modules": {n: (m["v"], m["lora_b"], m["lora_a"]) for n, m in layers.items()}}


def _scores(modules: dict) -> dict:
    return {n: projection_similarity(safe_lora_projector(v), b, a) for n, (v, b, a) in modules.items()}


register(
    "01.low_rank_score",
    "modules maps a layer name to (v, lora_b, lora_a). With each layer's paper projector, compute the Safe LoRA "
    "cosine of vec(C B A) and vec(B A) without forming C or any other d x d matrix; return a dict name -> float.",
    _layers,
    _scores,
)


register(
    "01.select_two",
    "Using those scores, which 2 modules does Safe LoRA's `number` selection project? Return a list of names in layer order.",
    _layers,
    lambda modules: select_modules(_scores(modules), "number", k=2),
)
