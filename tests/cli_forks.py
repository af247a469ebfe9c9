"""Run many `python -m safelora_lite ...` command lines at the cost of one interpreter start.

Used by test_bad_inputs.py as `python tests/cli_forks.py < jobs.json`: this process imports the CLI and the
libraries its commands load (torch, transformers, peft: about 3 s of a fresh process's start here), runs no
tensor work, then forks one child per job, `workers` at a time. A child is what a fresh `python -m
safelora_lite ARGS` would be from there on: it enters the job's folder, writes stdout and stderr to the job's
files, runs the package's `__main__` and exits with its status; an uncaught exception prints its traceback
and exits 1, as the interpreter does. The environment (HF_HUB_CACHE, OMP_NUM_THREADS=1, ...) is this
process's, read before any import. jobs.json: {"workers": N, "jobs": [{"argv", "cwd", "stdout", "stderr"}]};
prints {"statuses": [exit status per job]}.
"""

import json
import os
import runpy
import sys
import traceback

import peft  # noqa: F401  (imported once here, not in every child)
import transformers  # noqa: F401

import safelora_lite.cli  # noqa: F401


def _child(job: dict) -> int:
    """Become `python -m safelora_lite *job["argv"]` in job["cwd"]; return its exit status."""
    os.chdir(job["cwd"])
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = ["safelora_lite", *job["argv"]]
    try:
        runpy.run_module("safelora_lite", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as stop:  # as the interpreter reads it: None is 0, a message is printed and is 1
        status = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
        if status == 1 and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001  (the interpreter's own behaviour for an uncaught exception)
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def run(jobs: list[dict], workers: int) -> list[int]:
    """Fork one child per job, at most `workers` alive at once; their exit statuses in job order."""
    statuses, running = [None] * len(jobs), {}  # running: pid -> job index

    def reap_one():
        pid, wait_status = os.wait()
        statuses[running.pop(pid)] = os.waitstatus_to_exitcode(wait_status)

    for index, job in enumerate(jobs):
        if len(running) >= workers:
            reap_one()
        pid = os.fork()
        if pid == 0:  # the child never returns into this loop
            status = 1
            try:
                status = _child(job)
            except BaseException:  # noqa: BLE001  (before the job's own files were open: this process's stderr)
                traceback.print_exc()
            finally:
                os._exit(status)
        running[pid] = index
    while running:
        reap_one()
    return statuses


if __name__ == "__main__":
    request = json.load(sys.stdin)
    print(json.dumps({"statuses": run(request["jobs"], request["workers"])}))
