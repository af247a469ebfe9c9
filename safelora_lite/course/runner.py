"""The course runner: execute notebooks with papermill, render HTML, collect their records.

`safelora-lite course [NOTEBOOK ...] [--out DIR] [--profile NAME] [-p NAME VALUE ...]`
  OUT/notebooks/<stem>.ipynb and .html   executed notebooks
  OUT/results/<stem>.json                what each notebook recorded (its last cell)
  OUT/results/evaluations/<stem>.jsonl   every evaluation it ran (evaluation/log.py): the consistency check
  OUT/course.json                        time and status per notebook, the environment
  OUT/report.html                        all of it on one page

A profile (configs/course/<name>.json) holds per-notebook parameters that differ from the notebooks'
own defaults, each with its reason: `make run` uses `cpu`, the course on a 2-core CPU (its measured time:
run_times.json); with no profile every notebook runs its full defaults. `-p` overrides both.

With `--jobs N > 1` the setup notebook (02) runs first, alone; then what a later notebook would train first on
one thread (PREBUILDS: 08's real small world) is built alone on every core; then the rest run N at a time.
"""

import os
import time
from pathlib import Path

from safelora_lite.errors import InputError
from safelora_lite.evaluation.log import LOG_VARIABLE, disagreements, read_logs
from safelora_lite.paths import cache_dir, checkout_dir
from safelora_lite.course.parameters import default_parameters, parse_value
from safelora_lite.course.prebuild import PREBUILDS, prebuild
from safelora_lite.course.profiles import load_profile
from safelora_lite.course.report import write_report
from safelora_lite.records import write_json_atomic

DEFAULT_OUT = Path("build/course")
SETUP_NOTEBOOKS = {"02_toy_world"}  # build what later notebooks share: they run after it, alone, on every core
# With --jobs > 1 these go first once the setup notebook is done: 08 is the course's long pole. (Not beside 02: the
# toy world trained on one thread instead of two is another world, with other figures than the lessons'
# (README), and the cache key does not hold the thread count.)
LONG_POLES = ("08_real_small_model",)


def notebook_dir() -> Path:
    folder = checkout_dir() / "notebooks"
    if not folder.is_dir():
        raise InputError(f"no notebooks folder at {folder}.", "run from a checkout of safelora-lite.")
    return folder


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered course notebooks, in order."""
    folder = folder or notebook_dir()
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def resolve_notebooks(names: list[str], folder: Path | None = None) -> list[Path]:
    """Notebooks named by number ("3", "03") or stem ("03_safe_lora"); all of them when none is named."""
    available = list_notebooks(folder)
    if not names:
        return available
    chosen = []
    for name in names:
        stem = Path(name).stem
        matches = [p for p in available if p.stem == stem or (stem.isdigit() and p.stem.split("_")[0] == f"{int(stem):02d}")]
        if not matches:
            known = ", ".join(p.stem for p in available)
            raise InputError(f"no notebook named {name!r}.", f"use a number or one of: {known}.")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def cpu_times() -> list[int] | None:
    """The machine's cumulative CPU time counters from /proc/stat (Linux), or None elsewhere."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None


def steal_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """The share of CPU time the hypervisor took from this machine between two readings (Linux "steal"):
    a run's wall time is only comparable with another's when this is small."""
    if not before or not after or len(before) < 8:
        return None
    total = sum(after) - sum(before)
    return round((after[7] - before[7]) / total, 3) if total > 0 else None


def run_notebook(notebook: Path, out: Path, parameters: dict, log_output: bool = False) -> dict:
    """Execute one notebook into OUT/notebooks, render it to HTML; return its status and time."""
    import papermill

    from safelora_lite.course.kernels import kernel_options

    executed = out / "notebooks" / notebook.name
    results_path = (out / "results" / f"{notebook.stem}.json").resolve()
    evaluations = (out / "results" / "evaluations" / f"{notebook.stem}.jsonl").resolve()
    evaluations.parent.mkdir(parents=True, exist_ok=True)
    evaluations.unlink(missing_ok=True)
    os.environ[LOG_VARIABLE] = str(evaluations)  # the kernel inherits it: every evaluation is logged
    params = {**parameters, "results_path": str(results_path)}
    start, counters = time.perf_counter(), cpu_times()
    status, error = "ok", None
    try:
        papermill.execute_notebook(
            str(notebook), str(executed), parameters=params, cwd=str(notebook.parent),
            kernel_name="python3", progress_bar=False, log_output=log_output, **kernel_options(),
        )
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        status, error = "failed", " ".join(str(exc).split())[:500]
    seconds, steal = time.perf_counter() - start, steal_share(counters, cpu_times())
    if executed.exists():
        render_html(executed, executed.with_suffix(".html"))
    return {"notebook": notebook.stem, "status": status, "seconds": round(seconds, 1), "cpu_steal": steal, "error": error,
            "results": str(results_path) if results_path.exists() else None}


def render_html(notebook: Path, target: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target.write_text(body)


def run_course(names: list[str], out: Path, raw_params: dict[str, str], log_output: bool = False,
               profile: str | None = None, jobs: int = 1) -> list[dict]:
    """Run the notebooks; with jobs > 1, those after the setup notebook (02 builds the toy world and the
    attacks the others share) run `jobs` at a time, the long poles first (`pool_order`)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs={jobs} must be a positive integer.", "use --jobs 1 (one notebook at a time) or 2.")
    notebooks = resolve_notebooks(names)
    parameters = {k: parse_value(v) for k, v in raw_params.items()}
    declared = {nb: default_parameters(nb) for nb in notebooks}  # name -> default: read once per notebook
    for name in parameters:
        if not any(name in d for d in declared.values()):
            raise InputError(f"no selected notebook has a parameter {name!r}.", "see the notebook's `parameters` cell for its knobs.")
    profiled = load_profile(profile) if profile else {"name": None, "notebooks": {}}
    for nb in notebooks:
        for name in profiled["notebooks"].get(nb.stem, {}):
            if name not in declared[nb]:
                raise InputError(f"profile {profiled['name']!r} sets {name!r}, which {nb.stem} does not declare.",
                                 f"fix configs/course/{profiled['name']}.json.")
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(parents=True, exist_ok=True)
    jobs_params = []
    for nb in notebooks:
        own = {**profiled["notebooks"].get(nb.stem, {}), **{k: v for k, v in parameters.items() if k in declared[nb]}}
        if "interactive" in declared[nb]:  # headless: no frontend to draw sliders (static figures still appear)
            own.setdefault("interactive", False)
        jobs_params.append((nb, own))
    cache_was_empty = not any(cache_dir().iterdir())  # whether 02's time includes building the toy world
    start = time.perf_counter()
    setup = len(jobs_params)  # how many run first, one after another, on every core
    if jobs > 1:
        setup = 1 + max((i for i, (nb, _) in enumerate(jobs_params) if nb.stem in SETUP_NOTEBOOKS), default=-1)
    runs, grants = [_run_one(nb, out, own, log_output) for nb, own in jobs_params[:setup]], []
    prebuilds = [prebuild(nb, {**declared[nb], **own}) for nb, own in jobs_params[setup:] if jobs > 1 and nb.stem in PREBUILDS]
    if jobs_params[setup:]:
        runs += _run_parallel(jobs_params[setup:], out, log_output, jobs, start, grants)
    from safelora_lite.device import environment_report

    shared, differ = disagreements(read_logs(out / "results" / "evaluations"))
    summary = {"runs": runs, "parameters": parameters, "profile": profiled["name"], "jobs": jobs, "cache_was_empty": cache_was_empty,
               "wall_seconds": round(time.perf_counter() - start, 1), "prebuilds": prebuilds, "thread_grants": grants, "environment": environment_report(),
               "consistency": {"models_in_several_notebooks": shared, "disagreements": differ}}
    write_json_atomic(summary, out / "course.json")
    write_report(out, summary)
    return runs


def _run_one(nb: Path, out: Path, own: dict, log_output: bool) -> dict:
    print(f"running {nb.stem} ...", flush=True)
    run = run_notebook(nb, out, own, log_output=log_output)
    run["parameters"] = own
    steal = f" (the hypervisor took {run['cpu_steal']:.0%} of the CPU meanwhile)" if (run["cpu_steal"] or 0) >= 0.01 else ""
    print(f"  {nb.stem}: {run['status']} in {run['seconds']} s{steal}", flush=True)
    return run


def _one_thread_each(threads: int) -> None:
    """Worker initializer: kernels started from here inherit `threads` math threads."""
    import os

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def pool_order(stems: list[str]) -> list[str]:
    """The order in which the notebooks after the setup notebook are started: the long poles first, then
    the rest in course order."""
    return [s for s in LONG_POLES if s in stems] + [s for s in stems if s not in LONG_POLES]


def _run_parallel(jobs_params: list[tuple[Path, dict]], out: Path, log_output: bool, jobs: int, start: float,
                  grants: list[dict]) -> list[dict]:
    """Run notebooks `jobs` at a time in `pool_order`, each kernel with cores // jobs threads; the runs come
    back in course order. When fewer than `jobs` are left, the cores the others leave idle are granted to
    those still running (`device.GrantedThreads`: a real model's evaluation uses them); each
    grant is appended to `grants` (seconds since `start`, threads, notebooks).

    The toy models are tiny, so a training step is mostly per-operation overhead: two one-thread
    kernels side by side do about 1.4x the work of one kernel on two threads (measured on 2 cores).
    """
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from safelora_lite.device import GRANT_VARIABLE

    cores = os.cpu_count() or 1
    threads = max(1, cores // jobs)
    grant = (out / "thread_grant").resolve()
    write_json_atomic(threads, grant)
    os.environ[GRANT_VARIABLE] = str(grant)  # the workers, and the kernels they start, inherit it
    context = multiprocessing.get_context("spawn")
    by_stem = {nb.stem: (nb, own) for nb, own in jobs_params}
    try:
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread_each, initargs=(threads,)) as pool:
            futures = {stem: pool.submit(_run_one, by_stem[stem][0], out, by_stem[stem][1], log_output) for stem in pool_order(list(by_stem))}
            running = set(futures.values())
            while running:
                _, running = wait(running, return_when=FIRST_COMPLETED)
                if 0 < len(running) < jobs:  # every notebook left is running, and a core is idle
                    granted = max(threads, cores // len(running))
                    write_json_atomic(granted, grant)
                    grants.append({"after_seconds": round(time.perf_counter() - start, 1), "threads": granted,
                                   "notebooks": [stem for stem, f in futures.items() if f in running]})
            return [futures[stem].result() for stem in by_stem]
    finally:
        os.environ.pop(GRANT_VARIABLE, None)
        grant.unlink(missing_ok=True)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("course", help="run the course notebooks with papermill and write a report")
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="number or stem (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--profile", default=None, metavar="NAME",
                        help="per-notebook parameters from configs/course/NAME.json (make run: cpu)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="notebooks at once after 02 (which builds the shared toy world), 08 first; make run: 2")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="papermill parameter for every notebook that declares it")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    runs = run_course(args.notebooks, args.out, dict(args.parameter), log_output=args.log_output, profile=args.profile,
                      jobs=args.jobs)
    failed = [r["notebook"] for r in runs if r["status"] != "ok"]
    print(f"report: {args.out / 'report.html'}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0
