"""Every method behind one interface, run under one frozen protocol (notebook 07).

A protocol file (safelora_lite/comparison/protocols/<name>.json) fixes the toy world, the attacks, the LoRA
settings, the seeds, the evaluation subset and each method's few settings. Published protocols
are never edited: a new run gets a new file.

A method is a `methods.base.Method`: its name, when it acts, what it needs (the base model? extra
data?) and `run(attacked_run, settings) -> MethodResult`. The loop below has no special cases: for
each attack and seed it builds an `AttackedRun` (the attacked adapter is trained once and shared),
calls every method and evaluates what it produced on the world it produced it for.
"""

import json
import statistics
from pathlib import Path

from safelora_lite.errors import InputError
from safelora_lite.evaluation.generation import RATES, rates_of
from safelora_lite.comparison.verdicts import prompts
from safelora_lite.methods.base import AttackedRun
from safelora_lite.methods.registry import METHODS

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"


def load_protocol(name: str = "comparison_v1") -> dict:
    """A protocol by name (a file in safelora_lite/comparison/protocols/) or by path."""
    path = Path(name) if name.endswith(".json") else PROTOCOL_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(PROTOCOL_DIR.glob("*.json")))
        raise InputError(f"no protocol {name!r}.", f"use one of: {known}.")
    return json.loads(path.read_text())


def run_protocol(protocol: dict, attacks=None, seeds=None, methods=None, world=None, harmful_fraction=None, rank=None,
                 steps=None, max_per_split=None, progress: bool = True) -> list[dict]:
    """Rows {attack, seed, method, rates..., seconds} for every attack x seed x method of the protocol.

    The keyword arguments override the protocol (papermill parameters of notebook 07); None keeps it.
    """
    from tqdm.auto import tqdm

    from safelora_lite.worlds.registry import build_world
    from safelora_lite.worlds.toy import AttackConfig

    attacks = list(attacks or protocol["attacks"])
    seeds = list(seeds if seeds is not None else protocol["seeds"])
    names = list(methods or protocol["methods"])
    unknown = [n for n in names if n not in METHODS or n not in protocol["methods"]]
    if unknown:
        raise InputError(f"method {unknown[0]!r} is not in protocol {protocol['name']} or not registered.",
                         f"use some of: {', '.join(protocol['methods'])}.")
    world = world or build_world(protocol["world"], progress=progress)
    base_attack = dict(protocol["attack"])
    if harmful_fraction is not None:
        base_attack["harmful_fraction"] = harmful_fraction
    if rank is not None:
        base_attack.update(r=rank, lora_alpha=2 * rank)  # keep s = alpha / r = 2, as in the protocol
    if steps is not None:
        base_attack["steps"] = steps
    per_split = max_per_split if max_per_split is not None else protocol["eval_max_per_split"]
    evaluators = {}  # one per world (LoX's extrapolated worlds are worlds too)

    def evaluate(result) -> dict:
        key = str(result.world.aligned_dir)
        if key not in evaluators:
            evaluators[key] = result.world.evaluator(per_split)
        return evaluators[key](result.adapter)

    rows = []
    jobs = [(a, s) for a in attacks for s in seeds]
    for attack_kind, seed in tqdm(jobs, desc="attacks x seeds", disable=not progress):
        run = AttackedRun(world, AttackConfig(kind=attack_kind, seed=seed, **base_attack))
        for name in names:
            result = METHODS[name].run(run, protocol["methods"][name])
            rates = evaluate(result)
            rows.append({"attack": attack_kind, "seed": seed, "method": name, **rates_of(rates),
                         "seconds": round(result.seconds, 2)})
    return rows


def summarize(rows: list[dict]) -> dict:
    """{attack: {method: {rate: {"mean", "std", "min", "max", "n" (seeds), "prompts"}, "seconds": mean}}} over seeds."""
    out: dict = {}
    for row in rows:
        out.setdefault(row["attack"], {}).setdefault(row["method"], []).append(row)
    summary = {}
    for attack, by_method in out.items():
        summary[attack] = {}
        for method, group in by_method.items():
            stats = {}
            for rate in RATES:
                values = [r[rate] for r in group]
                stats[rate] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                               "min": min(values), "max": max(values), "n": len(values), "prompts": prompts(group[0], rate)}
            stats["seconds"] = statistics.fmean(r["seconds"] for r in group)
            summary[attack][method] = stats
    return summary


def cost_table(names) -> list[dict]:
    """What each method needs, beside its extra time (from the rows)."""
    return [{"method": n, "when": METHODS[n].when, "needs base model": METHODS[n].needs_base,
             "extra data": METHODS[n].extra_data} for n in names]


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Methods not dominated in (task_accuracy, refusal_rate), both higher-is-better."""
    front = []
    for name, (x, y) in points.items():
        dominated = any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for n2, (x2, y2) in points.items() if n2 != name)
        if not dominated:
            front.append(name)
    return front


def markdown_table(summary: dict, attack: str) -> str:
    """The summary of one attack as a Markdown table: mean ± std over seeds."""
    header = "| method | refusal | harmful compliance | over-refusal | task accuracy | extra s |\n|---|---|---|---|---|---|\n"
    lines = []
    for name, stats in summary[attack].items():
        cells = [f"{stats[r]['mean']:.2f} ± {stats[r]['std']:.2f}" for r in RATES]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {stats['seconds']:.1f} |")
    return header + "\n".join(lines)
