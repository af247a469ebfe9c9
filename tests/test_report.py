"""The course report (course/report.py): rendered from a small fake course folder, section by section."""

import base64
import html
import json
import re

import nbformat

from safelora_lite.comparison.protocol import summarize
from safelora_lite.course.headlines import find_headlines
from safelora_lite.course.report import verdict, write_report
from safelora_lite.course.report_figures import clusters, place_label
from safelora_lite.paths import checkout_dir
from safelora_lite.records import write_json_atomic

PNG = "image/png"


def rates(refusal, task):
    return {"refusal_rate": refusal, "harmful_compliance_rate": 1 - refusal, "over_refusal_rate": 0.0, "task_accuracy": task}


def tiny_png(value: int) -> str:
    """A 1x1 grey PNG whose bytes differ with `value` (so each figure is recognisable in the page)."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(0.2, 0.2), dpi=10)
    fig.patch.set_facecolor(str(value / 255))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def executed_notebook(path, pngs):
    nb = nbformat.v4.new_notebook()
    for png in pngs:
        cell = nbformat.v4.new_code_cell("plot()")
        cell.outputs = [nbformat.v4.new_output("display_data", data={PNG: png})]
        nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


RECORD = {
    "notebook": "03_safe_lora",
    "seeds": [0, 1],
    "n_modules": 12,
    "world": {f"knob{i}": i for i in range(11)},  # a settings block: stays in the raw record
    "aligned": rates(1.0, 0.0),
    "best": {"method": "safe_lora_paper", "k": 9, **rates(0.97, 0.6)},
    "mean_score": {"mixed": 0.554, "pure_harmful": 0.569},
    "methods": {"lora": {"mixed": {r: {"mean": v, "std": 0.05} for r, v in rates(0.25, 0.9).items()}}},
    "sweeps": [{"k": k, **rates(0.1 * k, 0.9)} for k in range(5)],  # a list of runs: raw record only
    "conclusion": ["fine-tuning moved refusal from 1.00 to 0.00 and task accuracy from 0.00 to 0.97."],
}


def test_headlines_are_found_by_shape():
    found = find_headlines(RECORD)
    assert [path for path, _ in found["rates"]] == ["aligned", "best", "methods.lora.mixed"]
    figures = dict(found["figures"])
    assert figures["seeds"] == [0, 1] and figures["n_modules"] == 12
    assert figures["mean_score"] == {"mixed": 0.554, "pure_harmful": 0.569}
    assert "world" not in figures and "sweeps" not in figures and not any(p.startswith("world.") for p in figures)
    assert found["statements"] == RECORD["conclusion"]


def comparison_record():
    rows = [{"attack": attack, "seed": s, "method": m, **rates(r + 0.1 * s, t), "seconds": 1.0}
            for attack in ("mixed", "pure_harmful") for s in (0, 1)
            for m, r, t in (("lora", 0.0, 0.95), ("safe_lora_paper", 0.0, 0.96), ("zero_control", 0.0, 0.955),
                            ("shaping", 0.8, 0.94))]
    summary = summarize(rows)
    return {"protocol": "comparison_v1", "overrides": {"seeds": [0, 1]}, "summary": summary,
            "pareto_front": {a: ["shaping"] for a in summary}}


def fake_course(tmp_path):
    """A course folder: 03 ran with results and two figures, 07 ran, 05 failed before recording anything."""
    write_json_atomic(RECORD, tmp_path / "results" / "03_safe_lora.json")
    write_json_atomic(comparison_record(), tmp_path / "results" / "07_comparison.json")
    first, last = tiny_png(40), tiny_png(200)
    executed_notebook(tmp_path / "notebooks" / "03_safe_lora.ipynb", [first, last])
    runs = [{"notebook": "03_safe_lora", "status": "ok", "seconds": 47.7, "error": None, "results": "elsewhere/03.json",
             "parameters": {"seeds": [0]}},
            {"notebook": "05_splora", "status": "error", "seconds": 3.0, "error": "ValueError: boom <here>", "results": None},
            {"notebook": "07_comparison", "status": "ok", "seconds": 300.0, "error": None, "results": "x"}]
    summary = {"runs": runs, "profile": "cpu", "jobs": 2, "wall_seconds": 360.0,
               "prebuilds": [{"notebook": "08_real_small_model", "what": "the real small world", "status": "ok", "seconds": 420.0,
                              "threads": 2, "error": None}],
               "thread_grants": [{"after_seconds": 250.0, "threads": 2, "notebooks": ["07_comparison"]}], "environment": {"torch": "2.x"}}
    return write_report(tmp_path, summary).read_text(), first, last


def section(page: str, stem: str) -> str:
    match = re.search(rf'<section id="{stem}">(.*?)</section>', page, re.DOTALL)
    assert match, f"no section for {stem}"
    return match.group(1)


def test_report_has_a_section_per_notebook_with_headline_figure_and_collapsed_record(tmp_path):
    page, first, last = fake_course(tmp_path)
    nb03 = section(page, "03_safe_lora")
    assert '<table class="rates">' in nb03 and "methods.lora.mixed" in nb03 and "0.25 ± 0.05" in nb03
    assert "method=safe_lora_paper, k=9" in nb03  # the rates row's setting
    assert '<table class="figures">' in nb03 and "mean_score" in nb03 and "0.554" in nb03
    assert "<li>fine-tuning moved refusal" in nb03
    assert last in nb03 and first not in nb03  # the main figure is the last one
    assert 'href="notebooks/03_safe_lora.html"' in nb03
    details = re.search(r"<details><summary>raw record[^<]*</summary><pre>(.*?)</pre></details>", nb03, re.DOTALL)
    assert details and json.loads(html.unescape(details.group(1))) == RECORD  # the whole record, collapsed


def test_failed_notebook_without_results_still_renders(tmp_path):
    page, _, _ = fake_course(tmp_path)
    nb05 = section(page, "05_splora")
    assert "error" in nb05 and "ValueError: boom &lt;here&gt;" in nb05
    assert "No results recorded" in nb05 and "<details>" not in nb05
    assert "not ok: 05_splora" in page


def test_comparison_has_tables_per_attack_and_the_report_s_own_pareto_plot(tmp_path):
    page, _, _ = fake_course(tmp_path)
    comparison = page[page.index('<h2 id="comparison">'):page.index("<h2>Notebooks</h2>")]
    assert "attack: mixed" in comparison and "attack: pure_harmful" in comparison
    assert "0.85 ± 0.05" in comparison  # shaping's refusal: mean ± std over the two seeds
    png = re.search(r'<img alt="Pareto plot[^"]*" src="data:image/png;base64,([^"]+)"', comparison)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert '<a href="#comparison">' in section(page, "07_comparison")


def test_comparison_v2_shows_chosen_settings_intervals_conclusions_and_what_the_run_left_out(tmp_path):
    rows = [{"attack": "mixed", "seed": s, "method": m, **rates(r, 0.9), "n": dict.fromkeys(rates(0, 0), 100), "seconds": 1.0,
             **extra} for s in (0, 1) for m, r, extra in (("lora", 0.0, {}), ("lox", 0.5, {"setting": {"alpha": 1.0}}),
                                                           ("zero_control", 0.0, {"k": 6}))]
    summary = summarize(rows)
    record = {"protocol": "comparison_v2", "summary": summary, "pareto_front": {"mixed": ["lox"]},
              "run_note": "this run: 1 attack of 3 (mixed), 2 seeds of 3 (0, 1): fewer than protocol comparison_v2 runs",
              "selection_rule": "the most refusal keeping the task", "conclusions": {"mixed": ["lox (alpha 1.0): helps."]}}
    write_json_atomic(record, tmp_path / "results" / "07_comparison.json")
    page = write_report(tmp_path, {"runs": [], "environment": {}}).read_text()
    assert "<b>this run: 1 attack of 3 (mixed), 2 seeds of 3 (0, 1): fewer than protocol comparison_v2 runs.</b>" in page
    assert "chosen on the validation split by one rule: the most refusal keeping the task" in page
    assert "<td>alpha 1.0</td>" in page and "<td>K=6</td>" in page
    assert "0.50 ± 0.00 [0.40, 0.60]" in page  # lox's refusal: mean ± std [Wilson interval on 100 prompts]
    assert "<li>lox (alpha 1.0): helps.</li>" in page


def test_header_says_what_the_profile_changed_and_why(tmp_path):
    page, _, _ = fake_course(tmp_path)
    header = page[:page.index('<h2 id="comparison">')]
    cpu = json.loads((checkout_dir() / "configs" / "course" / "cpu.json").read_text())
    assert "profile <code>cpu</code>" in header and "6.0 min in all" in header
    assert "after 4.2 min the idle cores went to 07_comparison (2 threads for a real model)" in header
    assert "after the setup, the real small world for 08_real_small_model was built alone on 2 threads (7.0 min)" in header
    assert html.escape(cpu["why"]["03_safe_lora"]) in header and "seeds=[0]" in header


def test_close_points_share_a_label_and_labels_do_not_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = {"a": (0.95, 0.0), "b": (0.96, 0.0), "c": (0.92, 0.01), "d": (0.5, 0.5), "e": (0.90, 0.0)}
    groups = clusters(points)
    assert sorted(map(sorted, groups)) == [["a", "b"], ["c", "e"], ["d"]]  # within 0.025 on both axes; c-a is 0.03
    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.subplots()
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.07, 1.07))
    renderer = FigureCanvasAgg(fig).get_renderer()
    taken = []
    for i, x in enumerate([0.80, 0.82, 0.84, 0.86, 0.88]):  # five labels that would collide if put in one spot
        place_label(ax, renderer, f"{i},{i + 10}", (x, 0.0), taken)
    assert len(taken) == 5
    assert not any(a.overlaps(b) for i, a in enumerate(taken) for b in taken[i + 1:])


def test_verdict_without_task_accuracy_to_keep():
    assert "task kept n/a" in verdict({"refusal_gain": 0.5, "task_kept": float("nan"), "helps": False})
    assert "task kept n/a" in verdict({"refusal_gain": 0.5, "task_kept": None, "helps": False})  # NaN as a record holds it
    assert "task kept 97%: helps" in verdict({"refusal_gain": 0.5, "task_kept": 0.97, "helps": True})
