"""Notebook 08's exercises, checked on the notebook's own real world and attacked adapter.

The expected values are computed here by the library, so that the notebook's exercise cell holds only the
learner's answers (worked solutions: lessons/solutions/s08_real_small_model.py).
"""


from safelora_lite.adapters.weights import alignment_changes, open_weights
from safelora_lite.course.exercises.registry import compare
from safelora_lite.maths.projection import largest_singular_value
from safelora_lite.methods.safelora import check_inputs, open_adapter
from safelora_lite.training.sft import prompt_ids


def check_notebook_08(world, adapter, answers: dict) -> dict:
    """answers: {1: tokens of the first benign test request under the chat template, 2: sigma_1(V)^2 / ||V||_F of the
    adapter's first module}. Prints and returns each exercise's verdict."""
    adapter = open_adapter(adapter)
    base, aligned = open_weights(world.base_dir), open_weights(world.aligned_dir)
    first = next(iter(adapter.modules))
    _, v, v_norm = next(alignment_changes(base, aligned, [check_inputs(adapter, base, aligned)[first]]))
    expected = {1: len(prompt_ids(world.tokenizer, world.split("benign_test")[0]["prompt"])),
                2: largest_singular_value(v) ** 2 / v_norm}
    verdicts = {i: compare(answers.get(i), value, rtol=1e-3) for i, value in expected.items()}
    for i, verdict in verdicts.items():
        print(f"exercise {i}: {verdict}")
    return verdicts
