"""`safelora-lite course` runs notebooks with papermill, renders HTML and collects the records."""

import json
import subprocess
import sys

import pytest

from safelora_lite import InputError
from safelora_lite.course import parse_value, resolve_notebooks


def test_resolve_by_number_and_stem():
    assert [p.stem for p in resolve_notebooks(["0", "01_projection_maths"])] == ["00_start_here", "01_projection_maths"]
    with pytest.raises(InputError, match="no notebook"):
        resolve_notebooks(["99"])


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("[1, 2]") == [1, 2] and parse_value("abc") == "abc"


def test_course_runs_notebook_00(tmp_path):
    out = tmp_path / "course"
    proc = subprocess.run([sys.executable, "-m", "safelora_lite", "course", "00", "--out", str(out), "-p", "seed", "3"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "notebooks" / "00_start_here.ipynb").exists()
    assert (out / "notebooks" / "00_start_here.html").stat().st_size > 1000
    assert json.loads((out / "results" / "00_start_here.json").read_text())["all_passed"] is True
    summary = json.loads((out / "course.json").read_text())
    assert summary["runs"][0]["status"] == "ok" and summary["parameters"] == {"seed": 3}
    assert "00_start_here" in (out / "report.html").read_text()


def test_course_rejects_unknown_parameter(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "safelora_lite", "course", "00", "--out", str(tmp_path / "x"), "-p", "bogus", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "no selected notebook has a parameter 'bogus'" in proc.stderr and proc.stderr.count("\n") == 1
