"""Every exercise has a worked solution in lessons/solutions/, and every solution passes its check."""

import importlib.util
from pathlib import Path

import pytest

from safelora_lite.course.exercises import EXERCISES, check, compare

SOLUTION_DIR = Path(__file__).resolve().parents[1] / "lessons" / "solutions"


def load_solutions() -> dict:
    solutions = {}
    for path in sorted(SOLUTION_DIR.glob("s*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        solutions.update(module.SOLUTIONS)
    return solutions


SOLUTIONS = load_solutions()


def test_every_exercise_has_a_solution():
    assert sorted(EXERCISES) == sorted(SOLUTIONS)


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_solution_passes_its_check(key):
    inputs = EXERCISES[key].make_inputs()
    assert check(key, SOLUTIONS[key](**inputs)) in ("exact", "approximate")


def test_compare_verdicts():
    assert compare(None, 1.0) == "not answered yet"
    assert compare(1.0, 1.0) == "exact"
    assert compare(1.0 + 1e-9, 1.0) == "approximate"
    assert compare(1.1, 1.0) == "wrong"
    assert compare([1.0, 2.0], [1.0]) == "wrong"
    assert compare(["a", "b"], ["a", "b"]) == "exact"
    assert compare({"a": 1.0}, {"b": 1.0}) == "wrong"
