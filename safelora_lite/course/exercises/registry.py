"""The exercise registry: each notebook exercise gives inputs, the learner computes, `check` says how close.

The verdicts follow karpathy's makemore `cmp()`: "exact", "approximate" (allclose), "wrong", or
"not answered yet" when the answer is still None (so a notebook runs top to bottom unsolved).
Worked solutions live apart, in lessons/solutions/, and a test runs each one against its check.
"""

from dataclasses import dataclass
from typing import Any, Callable

import torch


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
    if any(isinstance(x, str) for x in (*_items(expected), *_items(answer))) or expected == []:  # names: exact or wrong
        return "exact" if isinstance(answer, (list, tuple, set)) and list(answer) == list(expected) else "wrong"
    a = torch.as_tensor(answer, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    if a.shape != e.shape:
        return "wrong"
    if torch.equal(a, e):
        return "exact"
    return "approximate" if torch.allclose(a, e, rtol=rtol, atol=atol) else "wrong"


def _items(x) -> list:
    return list(x) if isinstance(x, (list, tuple, set)) else []


def check(key: str, answer) -> str:
    """Compare a learner's answer with the reference computed from the same inputs; print and return the verdict."""
    exercise = EXERCISES[key]
    verdict = compare(answer, exercise.reference(**exercise.make_inputs()))
    mark = {"exact": "correct", "approximate": "correct (to rounding)", "wrong": "not yet right, try again"}.get(verdict, verdict)
    print(f"{key}: {mark}")
    return verdict


def generator(seed: int) -> torch.Generator:
    """A seeded generator: every exercise's inputs are the same on every run."""
    return torch.Generator().manual_seed(seed)


def orthonormal(d: int, k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=generator(seed)))
    return q  # (d, k), orthonormal columns
