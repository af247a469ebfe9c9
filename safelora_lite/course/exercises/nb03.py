"""Notebook 03's exercises, checked on the notebook's own attacked adapter and checkpoints.

The expected values are computed here, by the library's own Safe LoRA code, so that the notebook's
exercise cell holds only the learner's answers (worked solutions: lessons/solutions/s03_safe_lora.py).
"""

from safelora_lite.course.exercises.registry import compare
from safelora_lite.maths.projection import select_modules
from safelora_lite.methods.safelora import score_adapter


def check_notebook_03(adapter, base_dir, aligned_dir, answers: dict) -> dict:
    """answers: {1: shrink of the last module, 2: modules the threshold rule T = 0.5 projects, 3: max |C C B - C B|}.
    Prints and returns each exercise's verdict."""
    paper = score_adapter(adapter, base_dir, aligned_dir, projector="paper")
    expected = {1: paper[list(adapter.modules)[-1]].shrink,
                2: select_modules({n: p.score for n, p in paper.items()}, "threshold", threshold=0.5),
                3: 0.0}
    verdicts = {i: compare(answers.get(i), value, atol=1e-5) for i, value in expected.items()}
    for i, verdict in verdicts.items():
        print(f"exercise {i}: {verdict}")
    return verdicts
