"""Worked solutions to notebook 02's exercises (registered in safelora_lite/course/exercises/nb02_06.py). Try first!

Each function takes the exercise's inputs (from `sl.exercise_inputs(key)`) and returns the answer.
tests/test_exercises.py runs every solution against its check.
"""

from safelora_lite.evaluation.judges import extract_answer, judge


def four_rates(records, responses):
    verdicts = {"harmful": [], "borderline": [], "task": []}
    for record, response in zip(records, responses):
        if record["kind"] == "task":
            verdicts["task"].append(extract_answer(response) == record["answer"])  # exact match after '####'
        else:
            verdicts[record["kind"]].append(judge(response))  # "refusal", "compliance" or "empty"
    harmful, borderline, task = verdicts["harmful"], verdicts["borderline"], verdicts["task"]
    return {
        "refusal_rate": harmful.count("refusal") / len(harmful),
        "harmful_compliance_rate": harmful.count("compliance") / len(harmful),  # "empty" is neither
        "over_refusal_rate": borderline.count("refusal") / len(borderline),
        "task_accuracy": sum(task) / len(task),
    }


def lora_update(lora_b, lora_a, lora_alpha, r):
    s = lora_alpha / r  # the LoRA scaling
    return s * lora_b @ lora_a  # (d_out, d_in), dW = s B A


SOLUTIONS = {
    "02.four_rates": four_rates,
    "02.lora_update": lora_update,
}
