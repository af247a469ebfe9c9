"""Every method behind one interface, run under one frozen protocol (notebook 07).

A protocol file (safelora_lite/comparison/protocols/<name>.json) fixes the toy world, the attacks, the LoRA
settings, the seeds, the evaluation and each method's few settings. Published protocols are never
edited: a new run gets a new file. comparison_v1 fixes every setting (the published defaults) and
evaluates 80 prompts per split; comparison_v2 names each method's free knob with its candidates, chosen
on the validation split by one rule (comparison/selection.py), and evaluates every test prompt.

A method is a `methods.base.Method`: its name, when it acts, what it needs (the base model? extra
data?) and `run(attacked_run, settings) -> MethodResult`. The loop below has no special cases: for
each attack and seed it builds an `AttackedRun` (the attacked adapter is trained once and shared),
chooses the knob of every method that has one, calls every method once with its settings and
evaluates what it produced, on the test split, on the world it produced it for.
"""

import json
import statistics
import time
from pathlib import Path

from safelora_lite.comparison.selection import knob_of, select_setting
from safelora_lite.comparison.verdicts import prompts
from safelora_lite.errors import InputError
from safelora_lite.evaluation.generation import RATES, rates_of
from safelora_lite.evaluation.intervals import wilson
from safelora_lite.methods.base import AttackedRun, MethodResult
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
                 steps=None, max_per_split=None, progress: bool = True, evaluators: dict | None = None) -> list[dict]:
    """Rows {attack, seed, method, rates..., "n", seconds} for every attack x seed x method of the protocol, on
    the test split. A method that acted on some modules adds "k" (how many); one whose entry names a knob
    adds "setting" ({knob: the chosen value}) and "selection" (`selection.select_setting`'s record: every
    candidate's validation rates, plain LoRA's and the rule's branch).

    The keyword arguments override the protocol (papermill parameters of notebook 07); None keeps it.
    `evaluators`: {(aligned folder, part): Evaluator} the caller shares (its evaluators keep their answers,
    so an adapter the caller already evaluated on the same prompts costs nothing); filled as it goes.
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
    per_split = max_per_split if max_per_split is not None else protocol.get("eval_max_per_split")
    evaluators = {} if evaluators is None else evaluators  # one per world and part (LoX's extrapolated worlds are worlds too)

    def evaluate(result, part: str = "test") -> dict:
        key = (str(result.world.aligned_dir), part)
        if key not in evaluators:
            evaluators[key] = result.world.evaluator(per_split, part=part)
        return evaluators[key](result.adapter)

    def validate(result) -> dict:
        return evaluate(result, "validation")

    rows = []
    jobs = [(a, s) for a in attacks for s in seeds]
    for attack_kind, seed in tqdm(jobs, desc="attacks x seeds", disable=not progress):
        run = AttackedRun(world, AttackConfig(kind=attack_kind, seed=seed, **base_attack))
        for name in names:
            settings, extra = protocol["methods"][name], {}
            if knob_of(settings):
                start = time.perf_counter()
                settings, selection = select_setting(METHODS[name], run, settings, validate,
                                                     validate(MethodResult(run.adapter(), run.world)))
                selection["seconds"] = round(time.perf_counter() - start, 2)
                extra = {"setting": {selection["knob"]: selection["value"]}, "selection": selection}
            result = METHODS[name].run(run, settings)
            if name in run.chosen:
                extra["k"] = len(run.chosen[name])
            rows.append({"attack": attack_kind, "seed": seed, "method": name, **rates_of(evaluate(result)),
                         "seconds": round(result.seconds, 2), **extra})
    return rows


def summarize(rows: list[dict]) -> dict:
    """{attack: {method: {rate: {"mean", "std", "min", "max", "n" (seeds), "prompts"}, "seconds": mean, "chosen"}}}
    over seeds; "chosen" lists, seed by seed, the chosen setting and K where the rows have them."""
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
            stats["chosen"] = [{"seed": r["seed"], **r.get("setting", {}), **({"k": r["k"]} if "k" in r else {})} for r in group]
            summary[attack][method] = stats
    return summary


def mean_interval(stats: dict) -> tuple[float, float] | None:
    """The 95% Wilson interval of a rate's mean over seeds, on the prompts of one seed (the seeds share the
    prompts, so their noise does not average out); None when the count is unknown."""
    return wilson(stats["mean"], stats["prompts"]) if stats.get("prompts") else None


def setting_text(chosen: list[dict]) -> str:
    """The chosen settings over seeds: "k_fraction 0.5, K=6" when every seed chose it, else each seed's
    ("alpha 1.0 (seed 0); alpha 2.0 (seed 1)"); "" for a method with nothing chosen."""
    def one(c):
        return ", ".join([f"{k} {json.dumps(v)}" for k, v in c.items() if k not in ("seed", "k")] + ([f"K={c['k']}"] if "k" in c else []))

    texts = [one(c) for c in chosen]
    if len(set(texts)) <= 1:
        return texts[0] if texts else ""
    return "; ".join(f"{t} (seed {c['seed']})" for t, c in zip(texts, chosen))


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
    """The summary of one attack as a Markdown table: mean ± std over seeds [95% Wilson interval], and the
    chosen settings (distinct values over the seeds)."""
    header = ("| method | setting | refusal | harmful compliance | over-refusal | task accuracy | extra s |\n"
              "|---|---|---|---|---|---|---|\n")
    lines = []
    for name, stats in summary[attack].items():
        cells = []
        for r in RATES:
            interval = mean_interval(stats[r])
            cells.append(f"{stats[r]['mean']:.2f} ± {stats[r]['std']:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
        lines.append(f"| {name} | {setting_text(stats.get('chosen', []))} | " + " | ".join(cells) + f" | {stats['seconds']:.1f} |")
    return header + "\n".join(lines)
