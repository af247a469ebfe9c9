"""Cached training runs: a run folder is written once, atomically, with its curve beside it.

A run's weights do not depend on whether it was evaluated along the way (greedy evaluation draws no
random numbers), so every notebook shares one run per setting; a curve asked for later is added
beside the finished run. The marker of a finished run is RUN_INFO.
"""

import contextlib
import json
from pathlib import Path

from safelora_lite.errors import InputError
from safelora_lite.outputs import cache_entry
from safelora_lite.records import write_json_atomic

RUN_INFO = "run.json"  # what the run was (settings, seconds, losses): written last, so it marks a finished run
CURVE = "curve.json"


def _curve_settings(eval_every: int | None, max_per_split: int | None) -> dict:
    return {"eval_every": eval_every, "max_per_split": max_per_split}


def run_is_cached(out: Path, eval_every: int | None = None, curve_max_per_split: int | None = None) -> bool:
    """True when `out` holds a finished run and, if a curve is asked for, that curve."""
    if not (out / RUN_INFO).is_file():
        return False
    if not eval_every:
        return True
    path = out / CURVE
    return path.is_file() and json.loads(path.read_text())["settings"] == _curve_settings(eval_every, curve_max_per_split)


def save_run(out: Path, save, info: dict, curve: list[dict], eval_every: int | None, curve_max_per_split: int | None) -> None:
    """Write a run's folder atomically: `save(tmp)` for its files, `info` as RUN_INFO, and its curve.
    If the run is already there (trained without this curve, or by another process), write only the curve."""
    record = {"settings": _curve_settings(eval_every, curve_max_per_split), "points": curve}
    if not (out / RUN_INFO).is_file():
        with cache_entry(out) as tmp:  # another process that finishes the same run first: its run is kept
            save(tmp)
            if eval_every:
                write_json_atomic(record, tmp / CURVE)
            write_json_atomic(info, tmp / RUN_INFO)
        return
    if eval_every:
        write_json_atomic(record, out / CURVE)


def run_info(out) -> dict:
    """What a finished run recorded (settings, seconds, losses, ...)."""
    path = Path(out) / RUN_INFO
    if not path.is_file():
        raise InputError(f"{path} not found: {out} is not a finished run.", "train it first (runs are cached).")
    return json.loads(path.read_text())


def curve_recorder(evaluate, steps: int, eval_every: int | None, context=contextlib.nullcontext):
    """(curve, callback for training.sft.train): `evaluate()` at step 0, every `eval_every` steps and at the end.

    `context` wraps each evaluation (SaLoRA passes `parametrize.cached`). No eval_every: ([], None).
    """
    curve: list[dict] = []
    if not eval_every:
        return curve, None

    def record(step, loss):
        with context():
            rates = evaluate()
        curve.append({"step": step, "loss": loss, **rates})

    record(0, None)
    return curve, lambda step, loss: record(step, loss) if step % eval_every == 0 or step == steps else None


def load_curve(run_dir) -> list[dict]:
    """The training curve saved with a run (eval_every=...): [{"step", "loss", rates...}, ...]."""
    path = Path(run_dir) / CURVE
    if not path.is_file():
        raise InputError(f"{path} not found.", "train the run with eval_every set.")
    return json.loads(path.read_text())["points"]
