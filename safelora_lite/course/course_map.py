"""The course at a glance: one row per notebook (README's and lessons/README's tables and notebook 00 show it).

Run times are not written here: they come from one measured course run (`run_times.json`).
"""

from safelora_lite.course.run_times import how_measured, load_run_times, notebook_time

COURSE = [
    ("00", "00_start_here", "Start here", "setup check, the map, rerunning with papermill", "CPU"),
    ("01", "01_projection_maths", "Projection maths on toy matrices", "V, C (paper vs exact), the score, selection, the low-rank trick", "CPU"),
    ("02", "02_toy_world", "A toy safety world", "base vs aligned toy models; LoRA fine-tuning erodes refusals", "CPU"),
    ("03", "03_safe_lora", "Safe LoRA", "post-hoc projection of attacked adapters; K / threshold sweeps; controls", "CPU"),
    ("04", "04_salora", "SaLoRA", "a fixed safety module and a task-informed init", "CPU"),
    ("05", "05_splora", "SPLoRA", "E-DIEM (paper vs reference code) and pruning", "CPU"),
    ("06", "06_lora_fusion", "LoRA fusion", "a safety adapter fused into the task adapter; exaggerated safety", "CPU"),
    ("07", "07_comparison", "Comparison", "every method under one protocol; Pareto plot", "CPU"),
    ("08", "08_real_small_model", "A real model on a CPU", "SmolLM2-135M-Instruct and its own safety fine-tune through every method", "CPU"),
    ("09", "09_scale_tinyllama", "Scale: TinyLlama", "the same pipeline on TinyLlama base / chat", "GPU (stand-in on CPU)"),
    ("10", "10_scale_llama2_7b", "Scale: Llama-2-7B", "memory plan, streaming projection, QLoRA option", "GPU (stand-in on CPU)"),
    ("11", "11_beyond", "Beyond the four", "LoX and token-level safety shaping", "CPU"),
    ("12", "12_safety_landscape", "The safety landscape", "weights along directions: the safety basin; why post-hoc methods act like deletion", "CPU"),
]

COLAB = "https://colab.research.google.com/github/safelora-lite/safelora-lite/blob/main/notebooks/{stem}.ipynb"


def course_map(available: set[str] | None = None, times: dict | None = None) -> list[dict]:
    """The rows as dicts, each with its measured time; with `available` (notebook stems present), mark which exist."""
    times = times or load_run_times()
    rows = []
    for number, stem, title, teaches, runs_on in COURSE:
        time = notebook_time(stem, times) + (" (stand-in)" if "stand-in" in runs_on else "")
        row = {"#": number, "notebook": stem, "title": title, "teaches": teaches, "time": time, "runs on": runs_on}
        if available is not None:
            row["here"] = stem in available
        rows.append(row)
    return rows


def print_course_map(available: set[str] | None = None) -> None:
    times = load_run_times()
    for row in course_map(available, times):
        mark = "" if available is None else ("  " if row["here"] else "  (not in this checkout yet)")
        print(f"{row['#']}  {row['title']:<34} {row['time']:<17} {row['runs on']:<22} {row['teaches']}{mark}")
    print(f"\n{how_measured(times)}")
