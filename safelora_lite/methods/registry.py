"""Every method behind the method interface (`methods/base.py`), by name: what a protocol's "methods" list names.

Each entry reads its few settings from the protocol (`settings`) and returns a `MethodResult`; the
comparison loop evaluates `result.adapter` on `result.world` and never asks which method it ran.
"""

import json

from safelora_lite.adapters.controls import random_modules, zero_modules
from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.errors import InputError
from safelora_lite.methods.base import AttackedRun, Method, MethodResult, timed
from safelora_lite.training.runs import run_info


def run_lora(run: AttackedRun, settings: dict) -> MethodResult:
    return MethodResult(run.adapter(), run.world)


def safe_lora_scores(run: AttackedRun, projector: str, rank: int | None) -> tuple[dict, float]:
    """(Safe LoRA's projections of every module of the run's adapter, the seconds they took), computed once per run."""
    from safelora_lite.methods.safelora import score_adapter

    return run.once(("safe_lora", projector, rank), lambda: timed(lambda: score_adapter(
        run.adapter(), run.world.base_dir, run.world.aligned_dir, projector=projector, rank=rank)))


def run_safe_lora(run: AttackedRun, settings: dict, name: str) -> MethodResult:
    """Safe LoRA's number mode: B <- C B on the K lowest-scoring modules (`safelora.safe_lora`, its scores kept per run)."""
    from safelora_lite.maths.projection import select_modules
    from safelora_lite.methods.safelora import apply_projection, make_report

    projections, seconds = safe_lora_scores(run, settings["projector"], settings.get("rank"))
    k = run.k_of(settings["k_fraction"])
    run.chosen[name] = select_modules({n: p.score for n, p in projections.items()}, select="number", k=k)
    report = make_report(projections, run.chosen[name], projector=settings["projector"], rank=settings.get("rank"), k=k)
    return MethodResult(apply_projection(run.adapter(), projections, run.chosen[name]), run.world, report, seconds)


def modules_of(run: AttackedRun, settings: dict, control: str) -> list[str]:
    """The modules the method a control follows (`settings["of"]`) acted on in this run."""
    if settings["of"] not in run.chosen:
        raise InputError(f"{control} needs {settings['of']} to run first.", f"list it before {control} in the protocol.")
    return run.chosen[settings["of"]]


def run_zero_control(run: AttackedRun, settings: dict) -> MethodResult:
    run.chosen["zero_control"] = modules_of(run, settings, "zero_control")
    return MethodResult(zero_modules(run.adapter(), run.chosen["zero_control"]), run.world)


def run_random_control(run: AttackedRun, settings: dict) -> MethodResult:
    """Safe LoRA's edit (its `projector`) on as many modules as the method followed chose, drawn at random
    with a seed of the attack's seed and K (as the K sweeps of comparison/posthoc.py draw them)."""
    from safelora_lite.methods.safelora import apply_projection

    k = len(modules_of(run, settings, "random_control"))
    run.chosen["random_control"] = random_modules(run.adapter(), k, seed=1000 * run.attack.seed + k)
    projections, _ = safe_lora_scores(run, settings["projector"], None)
    return MethodResult(apply_projection(run.adapter(), projections, run.chosen["random_control"]), run.world)


def run_splora(run: AttackedRun, settings: dict) -> MethodResult:
    """SPLoRA's number mode: prune the K highest-scoring modules (`splora.splora`'s defaults, its scores kept per run)."""
    from safelora_lite.methods.splora import make_report, prune_modules, score_adapter, select_pruned

    scores, seconds = run.once("splora", lambda: timed(lambda: score_adapter(run.adapter(), run.world.base_dir,
                                                                             run.world.aligned_dir)))
    k = run.k_of(settings["k_fraction"])
    run.chosen["splora"] = select_pruned({n: s.score for n, s in scores.items()}, "number", k)
    return MethodResult(prune_modules(run.adapter(), run.chosen["splora"]), run.world,
                        make_report(scores, run.chosen["splora"], k=k), seconds)


def run_salora(run: AttackedRun, settings: dict) -> MethodResult:
    from safelora_lite.methods.salora.train import train_on_world

    out = train_on_world(run.world, run.attack, safety_rank=settings["safety_rank"], task_rank=settings["task_rank"],
                         progress=False)
    info = run_info(out)
    extra = info["seconds_setup"] + info["seconds"] - run_info(run.folder())["seconds"]  # SaLoRA's training replaces LoRA's
    return MethodResult(read_adapter(out / "adapter"), run.world, {}, extra)


def run_fusion(run: AttackedRun, settings: dict) -> MethodResult:
    from safelora_lite.methods.fusion import fuse_adapters
    from safelora_lite.methods.fusion_safety import SafetyAdapterConfig, train_safety_adapter

    a = run.attack
    safety_dir = train_safety_adapter(run.world, SafetyAdapterConfig(
        n_examples=settings["safety_examples"], r=a.r, lora_alpha=a.lora_alpha, target_modules=a.target_modules, seed=a.seed,
        lr=a.lr, batch_size=a.batch_size),
        progress=False)
    fused, seconds = timed(lambda: fuse_adapters([run.adapter(), read_adapter(safety_dir)], settings["weights"]))
    return MethodResult(fused, run.world, {}, seconds + run_info(safety_dir)["seconds"])


def run_lox(run: AttackedRun, settings: dict) -> MethodResult:
    from safelora_lite.methods.lox import REPORT_NAME, attack_lox

    lox_world, folder = attack_lox(run.world, run.attack, settings["alpha"], settings["k"])
    seconds = json.loads((lox_world.aligned_dir / REPORT_NAME).read_text())["seconds"]
    return MethodResult(read_adapter(folder), lox_world, {}, seconds)  # LoX's attack is plain LoRA


def run_shaping(run: AttackedRun, settings: dict) -> MethodResult:
    from safelora_lite.methods.guardrail import GuardrailConfig, train_guardrail
    from safelora_lite.methods.shaping import load_report, train_shaped_lora

    guard = train_guardrail(run.world, GuardrailConfig())
    folder = train_shaped_lora(run.world, run.attack, guard, settings["beta"], progress=False)
    return MethodResult(read_adapter(folder), run.world, {}, load_report(folder)["seconds"] - run_info(run.folder())["seconds"])


METHODS: dict[str, Method] = {
    m.name: m for m in [
        Method("lora", "baseline", False, "none", run_lora),
        Method("safe_lora_paper", "after training", True, "none", lambda r, s: run_safe_lora(r, s, "safe_lora_paper")),
        Method("safe_lora_exact", "after training", True, "none", lambda r, s: run_safe_lora(r, s, "safe_lora_exact")),
        Method("zero_control", "control", False, "none", run_zero_control),
        Method("random_control", "control", True, "none", run_random_control),
        Method("splora", "after training", True, "none", run_splora),
        Method("salora", "during training", False, "harmful prompts with refusals (features, 128)", run_salora),
        Method("fusion", "after training", False, "harmful prompts with refusals (safety adapter)", run_fusion),
        Method("lox", "before training", True, "none", run_lox),
        Method("shaping", "during training", False, "a guardrail (trained on labelled toy responses)", run_shaping),
    ]
}


def is_control(name: str) -> bool:
    """Whether `name` is a control (what removing part of an update does by itself), not a method."""
    return name in METHODS and METHODS[name].when == "control"
