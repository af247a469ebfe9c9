"""Run times live in one place (safelora_lite/course/run_times.json); README's and lessons/README's tables are generated from it."""

import json
import shutil
from pathlib import Path

import pytest

from safelora_lite import InputError
from safelora_lite.course.course_map import COURSE, course_map
from safelora_lite.course.course_tables import END, START, main, stale_tables, write_tables
from safelora_lite.course.run_times import how_measured, load_run_times, run_times_from_run

REPO = Path(__file__).resolve().parents[1]
STEMS = [stem for _, stem, *_ in COURSE]


def fake_run(folder: Path, seconds: dict, status: dict | None = None) -> Path:
    runs = [{"notebook": s, "status": (status or {}).get(s, "ok"), "seconds": t} for s, t in seconds.items()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "course.json").write_text(json.dumps({"runs": runs, "profile": "cpu", "jobs": 2, "cache_was_empty": True,
                                                    "wall_seconds": 600.0, "environment": {"cpu_threads": 2}}))
    return folder


def test_the_committed_tables_are_what_the_generator_writes():
    assert stale_tables(REPO) == [], "run: python -m safelora_lite.course.course_tables"


def test_run_times_cover_every_notebook_of_the_map():
    times = load_run_times()
    unmeasured = times.get("not_measured", {})
    assert sorted([*times["seconds"], *unmeasured]) == sorted(STEMS) and all(unmeasured.values()), "each gap says why"
    assert all(s > 0 for s in times["seconds"].values())
    assert times["date"] and times["note"], "say which run the times come from"


def test_times_are_read_from_a_course_run(tmp_path):
    run = fake_run(tmp_path / "run", {s: 10.0 + i for i, s in enumerate(STEMS)})
    times = run_times_from_run(run, STEMS, note="a test run")
    assert times["seconds"]["02_toy_world"] == 12.0 and times["profile"] == "cpu" and times["cache_was_empty"] is True
    rows = {r["notebook"]: r["time"] for r in course_map(times=times)}
    assert rows["02_toy_world"] == "12 s" and rows["09_scale_tinyllama"].endswith("(stand-in)")
    assert "from an empty cache" in how_measured(times) and "10.0 min" in how_measured(times)


def test_a_partial_or_failed_run_is_refused(tmp_path):
    with pytest.raises(InputError, match=f"missing {STEMS[-1]}"):
        run_times_from_run(fake_run(tmp_path / "partial", {s: 1.0 for s in STEMS[:-1]}), STEMS)
    with pytest.raises(InputError, match="failed 03_safe_lora"):
        run_times_from_run(fake_run(tmp_path / "failed", {s: 1.0 for s in STEMS}, {"03_safe_lora": "failed"}), STEMS)
    with pytest.raises(InputError, match="no course.json"):
        run_times_from_run(tmp_path / "nothing", STEMS)


def test_a_stale_table_is_found_and_rewritten(tmp_path):
    """The check can fail: a hand-edited time in a copy of the repository's files is caught, then regenerated."""
    (tmp_path / "lessons").mkdir()
    for lesson in (REPO / "lessons").glob("[0-9][0-9]_*.md"):
        shutil.copy(lesson, tmp_path / "lessons")
    for name in ("README.md", "lessons/README.md"):
        (tmp_path / name).write_text((REPO / name).read_text())
    assert stale_tables(tmp_path) == []
    readme = (tmp_path / "README.md").read_text()
    (tmp_path / "README.md").write_text(readme.replace(" | CPU | ", " | 4 min | CPU | ", 1))
    assert stale_tables(tmp_path) == ["README.md"]
    assert write_tables(tmp_path) == ["README.md"] and stale_tables(tmp_path) == []
    assert (tmp_path / "README.md").read_text() == readme


def test_a_file_without_markers_is_refused(tmp_path):
    (tmp_path / "lessons").mkdir()
    (tmp_path / "README.md").write_text("no table here\n")
    (tmp_path / "lessons" / "README.md").write_text(f"{START}\n{END}\n")
    with pytest.raises(InputError, match="README.md needs one course-table START marker"):
        stale_tables(tmp_path)


def test_the_command_checks_the_committed_tables(capsys):
    assert main(["--check"]) == 0
    assert "tables are current" in capsys.readouterr().out
