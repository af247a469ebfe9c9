"""Every method behind the method interface (`methods/base.py`), by name: what a protocol's "methods" list names.

Each entry reads its few settings from the protocol (`settings`) and returns a `MethodResult`; the
comparison loop evaluates `result.adapter` on `result.world` and never asks which method it ran.
"""

import json

from safelora_lite.adapters.controls import zero_modules
from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.errors import InputError
from safelora_lite.methods.base import AttackedRun, Method, MethodResult, timed
from safelora_lite.training.runs import run_info


def run_lora(run: AttackedRun, settings: dict) -> MethodResult:
    return MethodResult(run.adapter(), run.world)


def run_safe_lora(run: AttackedRun, settings: dict, name: str) -> MethodResult:
    from safelora_lite.methods.safelora import safe_lora

    (projected, report), seconds = timed(lambda: safe_lora(
        run.adapter(), run.world.base_dir, run.world.aligned_dir, select="number", k=run.k_of(settings["k_fraction"]),
        projector=settings["projector"], rank=settings.get("rank")))
    run.chosen[name] = [m["name"] for m in report["modules"] if m["projected"]]
    return MethodResult(projected, run.world, report, seconds)


def run_zero_control(run: AttackedRun, settings: dict) -> MethodResult:
    if settings["of"] not in run.chosen:
        raise InputError(f"zero_control needs {settings['of']} to run first.", "list it before zero_control in the protocol.")
    return MethodResult(zero_modules(run.adapter(), run.chosen[settings["of"]]), run.world)


def run_splora(run: AttackedRun, settings: dict) -> MethodResult:
    from safelora_lite.methods.splora import splora

    (pruned, report), seconds = timed(lambda: splora(run.adapter(), run.world.base_dir, run.world.aligned_dir,
                                                     select="number", k=run.k_of(settings["k_fraction"])))
    run.chosen["splora"] = [m["name"] for m in report["modules"] if m["pruned"]]
    return MethodResult(pruned, run.world, report, seconds)


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
        Method("splora", "after training", True, "none", run_splora),
        Method("salora", "during training", False, "harmful prompts with refusals (features, 128)", run_salora),
        Method("fusion", "after training", False, "harmful prompts with refusals (safety adapter)", run_fusion),
        Method("lox", "before training", True, "none", run_lox),
        Method("shaping", "during training", False, "a guardrail (trained on labelled toy responses)", run_shaping),
    ]
}

