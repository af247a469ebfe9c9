"""Self-checking exercises: each notebook exercise gives inputs, the learner computes, `check` says how close.

The verdicts follow karpathy's makemore `cmp()`: "exact", "approximate" (allclose), "wrong", or
"not answered yet" when the answer is still None (so a notebook runs top to bottom unsolved).
Worked solutions live apart, in lessons/solutions/, and a test runs each one against its check.
"""

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .projection import alignment_matrix, projection_similarity, safe_lora_projector, select_modules
from .toy_matrices import toy_layers


@dataclass(frozen=True)
class Exercise:
    key: str
    question: str
    make_inputs: Callable[[], dict]
    reference: Callable[..., Any]  # reference(**inputs) -> the expected answer


EXERCISES: dict[str, Exercise] = {}


def register(key: str, question: str, make_inputs: Callable[[], dict], reference: Callable[..., Any]) -> None:
    EXERCISES[key] = Exercise(key, question, make_inputs, reference)


def exercise_inputs(key: str) -> dict:
    """The inputs of exercise `key` (fresh tensors each time); prints the question."""
    exercise = EXERCISES[key]
    print(f"Exercise {key}: {exercise.question}")
    return exercise.make_inputs()


def compare(answer, expected, rtol: float = 1e-4, atol: float = 1e-6) -> str:
    """'exact', 'approximate', 'wrong' or 'not answered yet'."""
    if answer is None:
        return "not answered yet"
    if isinstance(expected, dict):
        if not isinstance(answer, dict) or list(answer) != list(expected):
            return "wrong"
        answer, expected = list(answer.values()), list(expected.values())
    if isinstance(expected, (list, tuple, set)) and expected and isinstance(next(iter(expected)), str):
        return "exact" if list(answer) == list(expected) else "wrong"
    a = torch.as_tensor(answer, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    if a.shape != e.shape:
        return "wrong"
    if torch.equal(a, e):
        return "exact"
    return "approximate" if torch.allclose(a, e, rtol=rtol, atol=atol) else "wrong"


def check(key: str, answer) -> str:
    """Compare a learner's answer with the reference computed from the same inputs; print and return the verdict."""
    exercise = EXERCISES[key]
    verdict = compare(answer, exercise.reference(**exercise.make_inputs()))
    mark = {"exact": "correct", "approximate": "correct (to rounding)", "wrong": "not yet right, try again"}.get(verdict, verdict)
    print(f"{key}: {mark}")
    return verdict


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


from . import exercises_course  # noqa: E402,F401  (notebooks 02 and 04-10: registers their exercises)
