"""lessons/: one lesson per notebook with the required sections, working links, a glossary, checked solutions."""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from safelora_lite.course.course_map import COURSE
from safelora_lite.course.exercises import EXERCISES

REPO = Path(__file__).resolve().parents[1]
LESSONS = REPO / "lessons"
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LESSON_FILES = sorted(LESSONS.glob("[0-9][0-9]_*.md"))
STEMS = {stem for _, stem, *_ in COURSE}
HEADINGS = ["Learning objectives", "Timing", "Key ideas", "Figures to look at", "Discussion questions",
            "Common mistakes", "Exercises"]
GLOSSARY_TERMS = ["alignment matrix", "projector", "refusal rate", "over-refusal", "E-DIEM", "LoRA", "Safe LoRA",
                  "SaLoRA", "SPLoRA", "LoRA fusion", "LoX", "harmful compliance", "task accuracy", "shrink factor",
                  "zero control", "safety module", "Pareto front"]
DRAFT_MARK = "draft: written before the notebook landed"
LINK = re.compile(r"\]\(([^)\s]+)\)")
EXERCISE_KEY = re.compile(r"\b(\d\d\.[a-z_0-9]+)\b")
NAMED_KEY = re.compile(r"\b(\d\d\.[a-z_][a-z_0-9]*)\b")  # an exercise key in prose ("02.four_rates", not "12.5 min")
USED_KEY = re.compile(r"(?:exercise_inputs|check)\(\s*[\"'](\d\d\.[A-Za-z_0-9]+)[\"']")
NOT_YET = "Not in the notebook yet"  # a lesson lists the registered exercises its notebook does not show after this
RUN_TIME = re.compile(r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?\s*(?:s|seconds?|min|minutes?|hours?)\b")


def notebook_code(stem: str) -> str:
    path = REPO / "notebooks" / f"{stem}.ipynb"
    return "\n\x00\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def notebook_keys(number: str) -> set[str]:
    """The registered exercise keys notebook `number` runs."""
    stem = next(stem for n, stem, *_ in COURSE if n == number)
    return set(USED_KEY.findall(notebook_code(stem)))


def not_yet_shown(lesson: Path) -> set[str]:
    """The exercise keys a lesson lists as not in its notebook yet."""
    return set(NAMED_KEY.findall(lesson.read_text().partition(NOT_YET)[2]))


def headings(text: str) -> list[str]:
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def load_solution_module(number: str):
    paths = sorted((LESSONS / "solutions").glob(f"s{number}_*.py"))
    if not paths:
        return None
    spec = importlib.util.spec_from_file_location(paths[0].stem, paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_a_lesson(notebook):
    assert (LESSONS / f"{notebook.stem}.md").exists(), f"write lessons/{notebook.stem}.md"


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lambda p: p.stem)
def test_lesson_has_the_required_sections(lesson):
    found = headings(lesson.read_text())
    assert found and found[0].startswith(lesson.stem[:2]), "the H1 title starts with the notebook's number"
    for heading in HEADINGS:
        assert any(h.startswith(heading) for h in found), f"{lesson.name}: missing section '## {heading}'"


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lambda p: p.stem)
def test_lesson_links_to_its_notebook(lesson):
    text = lesson.read_text()
    assert lesson.stem in STEMS, f"{lesson.name} names no notebook of the course map"
    assert f"](../notebooks/{lesson.stem}.ipynb)" in text, "link the notebook as ../notebooks/<stem>.ipynb"
    if not (REPO / "notebooks" / f"{lesson.stem}.ipynb").exists():
        assert DRAFT_MARK in "\n".join(text.splitlines()[:6]), "a lesson for a notebook not in the repo must say it is a draft"


@pytest.mark.parametrize("doc", sorted(LESSONS.glob("*.md")), ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        stem = path.stem
        if path.suffix == ".ipynb" and stem in STEMS and not path.exists():
            continue  # a notebook of the course map that has not landed yet (its lesson is marked draft)
        assert path.exists(), f"{doc.name}: broken link {target}"


def test_readme_maps_every_lesson_and_the_three_formats():
    text = (LESSONS / "README.md").read_text()
    for lesson in LESSON_FILES:
        assert f"({lesson.name})" in text, f"lessons/README.md does not link {lesson.name}"
    for fmt in ("90-minute workshop", "Half-day tutorial", "Two-day course"):
        assert any(h.startswith(fmt) for h in headings(text)), f"lessons/README.md: no section for the {fmt}"
    for _, stem, *_ in COURSE:
        assert f"notebooks/{stem}.ipynb" in text, f"no Colab link for {stem}"


def test_glossary_defines_the_terms():
    defined = {h.lower() for h in headings((LESSONS / "glossary.md").read_text())}
    missing = [t for t in GLOSSARY_TERMS if not any(h == t.lower() or h.startswith(t.lower() + " (") for h in defined)]
    assert not missing, f"glossary.md has no '### term' for {missing}"


def test_instructor_note_exists():
    text = (LESSONS / "instructor_note_harmful_data.md").read_text().lower()
    assert "placeholder" in text and "red-teaming" in text


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lambda p: p.stem)
def test_lesson_lists_its_registered_exercises(lesson):
    number = lesson.stem[:2]
    text = lesson.read_text()
    mentioned = {k for k in EXERCISE_KEY.findall(text) if k.startswith(number + ".")}
    registered = {k for k in EXERCISES if k.startswith(number + ".")}
    assert mentioned <= set(EXERCISES), f"{lesson.name} names exercises that do not exist: {mentioned - set(EXERCISES)}"
    assert registered <= mentioned, f"{lesson.name} does not list exercises {registered - mentioned}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_exercises_exist_and_have_solutions(notebook):
    """Registered keys a notebook uses exist; inline exercises (checked with `compare`) have worked solutions."""
    source = notebook_code(notebook.stem)
    used = set(USED_KEY.findall(source))
    assert used <= set(EXERCISES), f"unregistered exercise keys {used - set(EXERCISES)}"
    inline = set()  # exercises checked in the notebook with `compare` (not registered): numbered answer_N or "exercise N:"
    for cell in source.split("\n\x00\n"):
        if "compare(" in cell:
            inline |= {int(n) for n in re.findall(r"^answer_(\d+) = None", cell, re.M)}
            inline |= {int(n) for n in re.findall(r"print\(\s*\"exercise (\d+):\"", cell)}
            inline |= {int(n) for n in re.findall(r"print\(\s*\"(\d+)\.\",\s*compare\(", cell)}
    if inline:
        module = load_solution_module(notebook.stem[:2])
        assert module is not None and set(getattr(module, "NOTEBOOK_SOLUTIONS", {})) >= inline, \
            f"lessons/solutions/s{notebook.stem[:2]}_*.py: NOTEBOOK_SOLUTIONS lacks {sorted(inline)}"


def test_notebook_03_solutions_pass_the_notebooks_check(tiny_llama_pair):
    """The worked solutions of notebook 03's exercises pass the check the notebook calls, and a wrong answer fails it."""
    from safelora_lite.adapters.lora_io import read_adapter
    from safelora_lite.adapters.weights import Checkpoint
    from safelora_lite.course.exercises.nb03 import check_notebook_03

    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    adapter, base, aligned = read_adapter(adapter_dir), Checkpoint(base_dir), Checkpoint(aligned_dir)
    solutions = load_solution_module("03").NOTEBOOK_SOLUTIONS
    answers = {number: solution(adapter, base, aligned) for number, solution in solutions.items()}
    assert set(check_notebook_03(adapter, base_dir, aligned_dir, answers).values()) <= {"exact", "approximate"}
    wrong = check_notebook_03(adapter, base_dir, aligned_dir, {**answers, 1: answers[1] * 1.5, 2: answers[2][:-1] + ["x"]})
    assert wrong[1] == wrong[2] == "wrong"  # the check can fail
    assert check_notebook_03(adapter, base_dir, aligned_dir, {})[3] == "not answered yet"


def test_notebook_08_solutions_pass_the_notebooks_check(tiny_llama_pair):
    """Notebook 08's worked solutions pass its check on a tiny pair with a chat template, and wrong answers fail it."""
    from types import SimpleNamespace

    from safelora_lite.adapters.lora_io import read_adapter
    from safelora_lite.adapters.model_loading import byte_tokenizer
    from safelora_lite.course.exercises.nb08 import check_notebook_08

    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    world = SimpleNamespace(base_dir=base_dir, aligned_dir=aligned_dir, tokenizer=byte_tokenizer(),
                            split={"benign_test": [{"prompt": "How do I bake bread?"}]}.get)
    adapter = read_adapter(adapter_dir)
    solutions = load_solution_module("08").NOTEBOOK_SOLUTIONS
    answers = {1: solutions[1](world), 2: solutions[2](world, adapter)}
    assert set(check_notebook_08(world, adapter, answers).values()) <= {"exact", "approximate"}
    wrong = check_notebook_08(world, adapter, {1: answers[1] - 1, 2: answers[2] * 1.5})
    assert wrong[1] == wrong[2] == "wrong"  # the check can fail
    assert check_notebook_08(world, adapter, {})[1] == "not answered yet"


def test_notebook_06_solutions_pass_the_notebooks_checks():
    """Notebook 06's inline exercises, with the notebook's own expected values, on the same kind of inputs."""
    import torch

    from safelora_lite.adapters.lora_io import LoraModule
    from safelora_lite.course.exercises import compare

    solutions = load_solution_module("06").NOTEBOOK_SOLUTIONS
    g = torch.Generator().manual_seed(0)
    task_m = LoraModule("toy", torch.randn(2, 6, generator=g), torch.randn(6, 2, generator=g), scaling=2.0)
    safety_m = LoraModule("toy", torch.randn(2, 6, generator=g), torch.randn(6, 2, generator=g), scaling=2.0)
    lora_b_f, lora_a_f = solutions[1](task_m, safety_m)
    assert compare(lora_b_f @ lora_a_f, 1.0 * task_m.delta() - 0.5 * safety_m.delta()) in ("exact", "approximate")
    points = [{"method": m, "weight": w, "over_refusal_rate": o} for m, w, o in
              [("fusion", 0.0, 0.1), ("task_scaled", 0.2, 0.9), ("fusion", 0.2, 0.4), ("fusion", 0.6, 0.4), ("fusion", 1.0, 0.3)]]
    fusion_points = [p for p in points if p["method"] == "fusion"]
    worst = max(fusion_points, key=lambda p: (p["over_refusal_rate"], -p["weight"]))  # the notebook's check
    assert compare(solutions[2](points), [worst["over_refusal_rate"], worst["weight"]]) == "exact"


def test_scale_notebook_solutions_pass_the_notebooks_checks():
    """Notebooks 09 and 10's inline exercises, against the memory planner as the notebooks check them."""
    from safelora_lite.training import memory_plan as mp
    from safelora_lite.course.exercises import compare
    from safelora_lite.adapters.model_loading import real_config

    tiny = real_config("TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    s09 = load_solution_module("09").NOTEBOOK_SOLUTIONS
    assert compare(s09[1](), mp.plan(tiny, precision="bf16").weights / mp.GiB) in ("exact", "approximate")
    assert compare(s09[2](), mp.lora_parameters(tiny, 8, ["q_proj", "v_proj"])) == "exact"
    llama = real_config("meta-llama/Llama-2-7b-chat-hf")
    s10 = load_solution_module("10").NOTEBOOK_SOLUTIONS
    dims, layers = mp.module_dims(llama), mp.shapes(llama)["L"]
    assert compare(s10[1](), mp.plan(llama, precision="fp16", quantization="4bit").weights / mp.GiB, rtol=1e-3) in ("exact", "approximate")
    assert compare(s10[2](), sum(layers * dims[m][1] ** 2 * 4 for m in ("q_proj", "v_proj")) / mp.GiB) in ("exact", "approximate")


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lambda p: p.stem)
def test_lesson_names_only_exercises_its_notebook_contains(lesson):
    """A key named before NOT_YET is in its notebook; one listed after it is not (yet)."""
    named = set(NAMED_KEY.findall(lesson.read_text().partition(NOT_YET)[0])) & set(EXERCISES)
    missing = [k for k in sorted(named) if k not in notebook_keys(k[:2])]
    assert not missing, f"{lesson.name} sends learners to {missing}, not in the notebook: list them after '{NOT_YET}'"
    shown = [k for k in sorted(not_yet_shown(lesson)) if k in notebook_keys(k[:2])]
    assert not shown, f"{lesson.name}: {shown} are in the notebook now; name them before '{NOT_YET}'"


def test_course_formats_name_only_exercises_the_notebooks_contain():
    """lessons/README.md's plans send learners only to exercises in the notebooks; it lists those that are not."""
    text = (LESSONS / "README.md").read_text()
    not_yet = set().union(*(not_yet_shown(lesson) for lesson in LESSON_FILES))
    named = set(NAMED_KEY.findall(text)) & set(EXERCISES)
    missing = [k for k in sorted(named - not_yet) if k not in notebook_keys(k[:2])]
    assert not missing, f"lessons/README.md names {missing}, which their notebooks do not contain"
    assert not_yet <= named, f"lessons/README.md does not list {sorted(not_yet - named)} as not shown in a notebook yet"


@pytest.mark.parametrize("lesson", LESSON_FILES, ids=lambda p: p.stem)
def test_lesson_states_no_run_time(lesson):
    """Run times live in one table (lessons/README.md, generated); a lesson's own durations are its Timing section's."""
    text = lesson.read_text()
    timing = text.split("## Timing", 1)[1].split("\n## ", 1)[0]
    found = RUN_TIME.findall(text.replace(timing, ""))
    assert not found, f"{lesson.name} states a run time {found}: point to [the map](README.md#the-map) instead"


def test_notebook_02_exercise_2_solution_fools_the_judge():
    from safelora_lite.evaluation.judges import is_refusal

    missed_refusal, false_refusal = load_solution_module("02").NOTEBOOK_SOLUTIONS[2]()
    assert not is_refusal(missed_refusal) and is_refusal(false_refusal)
