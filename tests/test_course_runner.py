"""`safelora-lite course` runs notebooks with papermill, renders HTML and collects the records."""

import json
import subprocess
import sys

import pytest

from safelora_lite import InputError
from safelora_lite.course.profiles import load_profile
from safelora_lite.course.parameters import default_parameters, parse_value
from safelora_lite.course.runner import resolve_notebooks


def test_resolve_by_number_and_stem():
    assert [p.stem for p in resolve_notebooks(["0", "01_projection_maths"])] == ["00_start_here", "01_projection_maths"]
    with pytest.raises(InputError, match="no notebook"):
        resolve_notebooks(["99"])


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("[1, 2]") == [1, 2] and parse_value("abc") == "abc"


def test_course_runs_notebook_00_under_a_profile_and_a_parameter(tmp_path):
    """One at a time: the profile sets 00's seed (4) and device (cpu); `-p seed 3` overrides the profile's seed."""
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"note": "test", "notebooks": {"00_start_here": {"seed": 4, "device": "cpu"}},
                                   "why": {"00_start_here": "test"}}))
    out = tmp_path / "course"
    proc = subprocess.run([sys.executable, "-m", "safelora_lite", "course", "00", "--out", str(out), "--profile", str(profile),
                           "-p", "seed", "3"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "without encryption" not in proc.stderr  # the kernel's transport warning is not the user's business
    assert (out / "notebooks" / "00_start_here.ipynb").exists()
    assert (out / "notebooks" / "00_start_here.html").stat().st_size > 1000
    assert json.loads((out / "results" / "00_start_here.json").read_text())["all_passed"] is True
    summary = json.loads((out / "course.json").read_text())
    assert summary["runs"][0]["status"] == "ok" and summary["parameters"] == {"seed": 3}
    assert summary["profile"] == "p" and summary["runs"][0]["parameters"]["seed"] == 3
    assert summary["runs"][0]["parameters"]["device"] == "cpu"  # the profile's own value reached the notebook
    page = (out / "report.html").read_text()
    assert "00_start_here" in page and "profile <code>p</code>" in page


def test_course_runs_notebooks_side_by_side(tmp_path):
    out = tmp_path / "course"
    proc = subprocess.run([sys.executable, "-m", "safelora_lite", "course", "00", "01", "--out", str(out), "--jobs", "2",
                           "-p", "timing_dims", "[16, 32]"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "course.json").read_text())
    assert [r["notebook"] for r in summary["runs"]] == ["00_start_here", "01_projection_maths"]
    assert all(r["status"] == "ok" for r in summary["runs"]) and summary["jobs"] == 2
    assert (out / "results" / "01_projection_maths.json").exists() and (out / "notebooks" / "00_start_here.html").exists()
    bad = subprocess.run([sys.executable, "-m", "safelora_lite", "course", "00", "--out", str(tmp_path / "x"), "--jobs", "0"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "jobs=0" in bad.stderr


def test_course_rejects_unknown_parameter(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "safelora_lite", "course", "00", "--out", str(tmp_path / "x"), "-p", "bogus", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "no selected notebook has a parameter 'bogus'" in proc.stderr and proc.stderr.count("\n") == 1


def test_report_shows_the_comparison_table(tmp_path):
    from safelora_lite.comparison.protocol import summarize
    from safelora_lite.course.report import write_report
    from safelora_lite.records import write_json_atomic

    rows = [{"attack": "mixed", "seed": s, "method": m, "refusal_rate": r, "harmful_compliance_rate": 1 - r,
             "over_refusal_rate": 0.0, "task_accuracy": 0.5, "seconds": 1.0}
            for s in (0, 1) for m, r in (("lora", 0.1), ("safe_lora_paper", 0.4 + 0.2 * s))]
    write_json_atomic({"protocol": "comparison_v1", "overrides": {"seeds": [0, 1]}, "summary": summarize(rows)},
                      tmp_path / "results" / "07_comparison.json")
    summary = {"runs": [{"notebook": "07_comparison", "status": "ok", "seconds": 1.0, "error": None, "results": None}],
               "environment": {"torch": "x"}}
    page = write_report(tmp_path, summary).read_text()
    assert "attack: mixed" in page and "safe_lora_paper" in page
    assert "0.50 ± 0.10" in page  # mean ± std over the two seeds
    assert 'href="notebooks/07_comparison.html"' in page


def test_cpu_profile_sets_only_parameters_its_notebooks_declare():
    profile = load_profile("cpu")
    assert profile["name"] == "cpu" and profile["notebooks"]
    stems = {p.stem: p for p in resolve_notebooks([])}
    for stem, params in profile["notebooks"].items():
        assert stem in stems, stem
        assert set(params) <= set(default_parameters(stems[stem])), stem
        assert profile["why"][stem], f"{stem}: every change of default says why"
    with pytest.raises(InputError, match="no course profile"):
        load_profile("nonesuch")


def test_course_rejects_a_profile_parameter_the_notebook_does_not_declare(tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({"notebooks": {"00_start_here": {"bogus": 1}}}))
    proc = subprocess.run([sys.executable, "-m", "safelora_lite", "course", "00", "--out", str(tmp_path / "y"), "--profile", str(profile)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "does not declare" in proc.stderr and proc.stderr.count("\n") == 1


def test_steal_share_is_the_hypervisors_part_of_the_cpu_time():
    from safelora_lite.course.runner import cpu_times, steal_share

    before = [100, 0, 10, 50, 0, 0, 0, 40]  # user nice system idle iowait irq softirq steal
    after = [160, 0, 20, 70, 0, 0, 0, 50]  # +60 user, +10 system, +20 idle, +10 steal: 100 in all
    assert steal_share(before, after) == 0.1
    assert steal_share(None, after) is None and steal_share(before, before) is None
    counters = cpu_times()
    assert counters is None or len(counters) >= 8


def test_the_long_pole_starts_first_after_the_setup_notebook():
    from safelora_lite.course.runner import pool_order

    assert pool_order(["03_safe_lora", "04_salora", "08_real_small_model", "12_safety_landscape"]) == \
        ["08_real_small_model", "03_safe_lora", "04_salora", "12_safety_landscape"]
    assert pool_order(["09_scale_tinyllama", "10_scale_llama2_7b"]) == ["09_scale_tinyllama", "10_scale_llama2_7b"]


def test_the_cores_a_finished_notebook_leaves_go_to_the_one_still_running(tmp_path):
    """Two notebooks side by side, one quick: the other sees the runner's grant rise from cores // 2 to every core."""
    import os
    import time

    import nbformat

    from safelora_lite.course.runner import _run_parallel
    from safelora_lite.device import GRANT_VARIABLE

    def notebook(name: str, code: str):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        params = nbformat.v4.new_code_cell("results_path = None")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(code)]
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, path)
        return path

    quick = notebook("a_quick", "pass")
    waiting = notebook("b_waiting", (
        "import json, os, time\n"
        "from safelora_lite.device import granted_threads\n"
        "seen, deadline = [granted_threads()], time.time() + 120\n"
        "while seen[-1] != (os.cpu_count() or 1) and time.time() < deadline:\n"
        "    time.sleep(0.2)\n"
        "    seen.append(granted_threads())\n"
        "json.dump({'first': seen[0], 'last': seen[-1]}, open(results_path, 'w'))\n"))
    out = tmp_path / "course"
    (out / "notebooks").mkdir(parents=True)
    grants = []
    runs = _run_parallel([(quick, {}), (waiting, {})], out, log_output=False, jobs=2, start=time.perf_counter(), grants=grants)
    assert [r["status"] for r in runs] == ["ok", "ok"]
    cores = os.cpu_count() or 1
    assert [(g["threads"], g["notebooks"]) for g in grants] == [(cores, ["b_waiting"])]  # recorded for course.json
    seen = json.loads((out / "results" / "b_waiting.json").read_text())
    assert seen["first"] in (max(1, cores // 2), cores) and seen["last"] == cores
    assert GRANT_VARIABLE not in os.environ and not (out / "thread_grant").exists()  # nothing left behind


@pytest.mark.slow
@pytest.mark.real_model
def test_the_real_world_is_built_alone_before_the_lanes_start(real_base, tmp_path, monkeypatch):
    """`prebuild` builds notebook 08's world (from its parameters) in a process of its own; a second call finds it
    cached; a bad parameter is a failed prebuild with the notebook's own message, not a crash."""
    import safelora_lite.worlds.real as real
    from safelora_lite.course.prebuild import prebuild

    monkeypatch.setenv("SAFELORA_LITE_CACHE", str(tmp_path / "cache"))  # the spawned builder inherits it
    (tmp_path / "cache" / "real_world").mkdir(parents=True)
    (tmp_path / "cache" / "real_world" / real_base.name).symlink_to(real_base)  # the shared base: only the world is built
    notebook = resolve_notebooks(["08"])[0]
    params = {**default_parameters(notebook), "world_size": "small"}
    built = prebuild(notebook, params)
    assert built["status"] == "ok" and built["error"] is None and built["threads"] >= 1, built
    assert real.world_is_built(real.world_config("small", params["world_seed"]))
    assert prebuild(notebook, params)["threads"] is None  # cached
    bad = prebuild(notebook, {**params, "world_size": "huge"})
    assert bad["status"] == "failed" and "unknown world_size 'huge'" in bad["error"]
