"""How long each notebook runs, in one place: run_times.json, written from one measured course run.

README's and lessons/README's tables and notebook 00's map read it (`course_tables.py` writes the
tables); no other file states a notebook's run time. After a `make run`, record its times with
`python -m safelora_lite.course.course_tables --from build/course`.
"""

import json
import time
from pathlib import Path

from safelora_lite.errors import InputError

RUN_TIMES = Path(__file__).with_name("run_times.json")


def minutes(seconds: float) -> str:
    """A duration as people read it: "45 s" under two minutes, "12.5 min" above."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def load_run_times(path: Path = RUN_TIMES) -> dict:
    """{"run", "date", "profile", "jobs", "cpu_threads", "cache_was_empty", "wall_seconds", "note", "seconds": {stem: s}}."""
    return json.loads(Path(path).read_text())


def run_times_from_run(run_dir: Path, stems: list[str], note: str = "") -> dict:
    """The times of a whole-course run (OUT/course.json of `safelora-lite course`), for every notebook in `stems`."""
    summary_path = Path(run_dir) / "course.json"
    if not summary_path.is_file():
        raise InputError(f"no course.json in {run_dir}.", "give the --out folder of a `safelora-lite course` run.")
    summary = json.loads(summary_path.read_text())
    runs = {r["notebook"]: r for r in summary["runs"]}
    missing = [s for s in stems if s not in runs]
    failed = [s for s in stems if s in runs and runs[s]["status"] != "ok"]
    if missing or failed:
        problem = f"missing {', '.join(missing)}" if missing else f"failed {', '.join(failed)}"
        raise InputError(f"the run in {run_dir} {problem}.", "record the times of a whole course run where every notebook passed (make run).")
    return {
        "run": str(run_dir),
        "date": time.strftime("%Y-%m-%d", time.gmtime(summary_path.stat().st_mtime)),
        "profile": summary.get("profile"),
        "jobs": summary.get("jobs", 1),
        "cpu_threads": summary.get("environment", {}).get("cpu_threads"),
        "cache_was_empty": summary.get("cache_was_empty"),
        "wall_seconds": summary.get("wall_seconds"),
        "note": note,
        "seconds": {s: runs[s]["seconds"] for s in stems},
    }


def notebook_time(stem: str, times: dict) -> str:
    seconds = times["seconds"].get(stem)
    return minutes(seconds) if seconds is not None else "not measured"


def how_measured(times: dict) -> str:
    """One sentence: which run the times come from, on what, and how long the whole course took."""
    parts = [f"profile `{times['profile']}`" if times.get("profile") else "the notebooks' own defaults"]
    jobs = times.get("jobs", 1)
    parts.append(f"{jobs} notebooks at a time after 02 (which builds what the others share), 08 first" if jobs > 1 else "one notebook at a time")
    if times.get("cpu_threads"):
        parts.append(f"{times['cpu_threads']} CPU threads")
    parts.append({True: "from an empty cache", False: "with the toy world already cached"}.get(times.get("cache_was_empty"), ""))
    total = f"; the whole course took {minutes(times['wall_seconds'])}" if times.get("wall_seconds") else ""
    note = f" {times['note']}" if times.get("note") else ""
    return (f"Times measured in one course run on {times['date']}: {', '.join(p for p in parts if p)}{total}.{note}"
            " Source: `safelora_lite/course/run_times.json`.")
