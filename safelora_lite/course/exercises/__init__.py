"""Self-checking exercises: the registry and checker, and the exercises of each notebook.

Importing this package registers every exercise; `check` and `exercise_inputs` are the notebooks' calls.
"""

from safelora_lite.course.exercises import nb01, nb02_06, nb07_10, nb12  # noqa: F401  (each registers its exercises)
from safelora_lite.course.exercises.registry import EXERCISES, check, compare, exercise_inputs

__all__ = ["EXERCISES", "check", "compare", "exercise_inputs"]
