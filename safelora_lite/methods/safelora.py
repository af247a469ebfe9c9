"""Safe LoRA: project the LoRA update of the modules that drift from the alignment subspace.

References:
- Hsu et al., "Safe LoRA: the Silver Lining of Reducing Safety Risks when Fine-tuning Large
  Language Models", NeurIPS 2024 (Algorithm 1), and its public code (IBM/SafeLoRA).

Per LoRA module (dW = s * B @ A):
  1. V = W_aligned - W_base, streamed from the two checkpoints one module at a time;
  2. C, the projector onto the alignment subspace of V (`paper`: V V^T / ||V||_F; `exact`: U_k U_k^T);
  3. score = cos(vec(C B A), vec(B A)), in low-rank form;
then the modules with the lowest scores (`number`: the K lowest; `threshold`: score <= T) get
B <- C B. One pass computes every score and every C B (d_out x r), so memory holds one module's
weights at a time and no C is ever stored; a K or threshold sweep reuses the same pass.

Python:  `projections = score_adapter(adapter, base, aligned)`, then
         `apply_projection(adapter, projections, names)`; or `safe_lora(...)` for both steps,
         `safe_lora_peft_model(model, ...)` on an in-memory PeftModel.
CLI:     `safelora-lite safe-lora --adapter DIR --base DIR|ID --aligned DIR|ID --out DIR ...`
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from safelora_lite.adapters.lora_io import LoraAdapter, LoraModule, adapter_from_peft_model, read_adapter
from safelora_lite.errors import InputError
from safelora_lite.methods.base import edit_folder, edit_peft_model
from safelora_lite.options import add_adapter_pair_arguments, refuse_inapplicable
from safelora_lite.maths.projection import K_RULE, as_float32, default_k, safe_lora_projector, select_modules, similarity_of_projected
from safelora_lite.adapters.weights import alignment_changes, check_same_architecture, open_weights

REPORT_NAME = "safelora_report.json"


@dataclass(frozen=True)
class ModuleProjection:
    """One module's Safe LoRA pass: its score and its projected B (kept small: d_out x r)."""

    name: str
    score: float  # cos(vec(C B A), vec(B A))
    projected_b: torch.Tensor  # (d_out, r), C B in fp32
    shrink: float  # ||C B||_F / ||B||_F: how much projecting keeps of B
    v_norm: float  # ||V||_F of this module's alignment matrix


def open_adapter(adapter) -> LoraAdapter:
    """A LoraAdapter from a directory, a LoraAdapter, or an in-memory PeftModel."""
    if isinstance(adapter, LoraAdapter):
        return adapter
    if hasattr(adapter, "peft_config"):
        return adapter_from_peft_model(adapter)
    return read_adapter(adapter)


def weight_key(weights, target: str) -> str:
    """The base-checkpoint key of a module's weight (also accepts a bare model without `model.`)."""
    if target in weights:
        return target
    if target.startswith("model.") and target[len("model."):] in weights:
        return target[len("model."):]
    return target


def check_inputs(adapter: LoraAdapter, base, aligned) -> dict[str, str]:
    """Every check that can be made before any maths: architectures, finite adapter, names, shapes.

    Returns {module name: weight key}.
    """
    check_same_architecture(base, aligned)
    keys = {}
    for name, m in adapter.modules.items():
        as_float32(m.lora_a, f"lora_A of {name}")
        as_float32(m.lora_b, f"lora_B of {name}")
        key = weight_key(base, m.target)
        if key not in base:
            raise InputError(
                f"the adapter's module {name} targets {m.target}, which the base checkpoint {base.path} does not have.",
                "use the base / aligned pair the adapter was trained on.",
            )
        if key not in aligned:
            raise InputError(f"the aligned checkpoint {aligned.path} has no weight {key}.", "pair the base with its own aligned sibling.")
        shape_base, shape_aligned = base.shape(key), aligned.shape(key)
        if shape_base != shape_aligned:
            raise InputError(f"{key} is {shape_base} in base but {shape_aligned} in aligned.", "pair checkpoints of the same architecture.")
        expected = (m.lora_b.shape[0], m.lora_a.shape[1])
        if tuple(shape_base) != expected:
            raise InputError(
                f"the adapter was made for another model: module {name} updates a {expected} weight but {key} is {tuple(shape_base)}.",
                "use the base / aligned pair the adapter was trained on.",
            )
        keys[name] = key
    return keys


def score_adapter(adapter, base, aligned, projector: str = "paper", rank: int | None = None, progress: bool = False) -> dict[str, ModuleProjection]:
    """One streaming pass over the modules: V -> C -> score and C B for each. Nothing is changed."""
    adapter = open_adapter(adapter)
    base, aligned = open_weights(base), open_weights(aligned)
    if projector == "paper" and rank is not None:
        raise InputError("--rank applies to the exact projector only.", "drop the rank, or use projector 'exact'.")
    keys = check_inputs(adapter, base, aligned)
    items = adapter.modules.items()
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="Safe LoRA", total=len(adapter.modules))
    out = {}
    changes = alignment_changes(base, aligned, [keys[name] for name in adapter.modules])
    for (name, m), (key, v, v_norm) in zip(items, changes):
        # v: (d_out, d_in), V in a buffer the next module reuses
        if rank is not None and rank > min(v.shape):
            raise InputError(f"rank={rank} exceeds the size of {key} {tuple(v.shape)}.", f"use a rank <= {min(v.shape)}.")
        c = safe_lora_projector(v, kind=projector, rank=rank, v_norm=v_norm)  # C, never formed densely
        lora_b = m.lora_b.float()  # (d_out, r), B
        projected_b = c @ lora_b  # (d_out, r), C B
        b_norm = float(torch.linalg.matrix_norm(lora_b))
        out[name] = ModuleProjection(
            name=name,
            score=similarity_of_projected(projected_b, lora_b, m.lora_a),
            projected_b=projected_b,
            shrink=float(torch.linalg.matrix_norm(projected_b)) / b_norm if b_norm > 0 else 1.0,
            v_norm=v_norm,
        )
        del v, c
    return out


def apply_projection(adapter, projections: dict[str, ModuleProjection], names) -> LoraAdapter:
    """A new adapter with B <- C B for the named modules (B keeps its dtype); the input is not changed."""
    adapter = open_adapter(adapter)
    unknown = [n for n in names if n not in projections]
    if unknown:
        raise InputError(f"no projection for module {unknown[0]}.", "score the adapter first, with score_adapter.")
    changed = {}
    for name in names:
        m = adapter.modules[name]
        changed[name] = LoraModule(name, m.lora_a, projections[name].projected_b.to(m.lora_b.dtype), m.scaling)
    return adapter.with_modules(changed)


def make_report(projections: dict[str, ModuleProjection], chosen, **settings) -> dict:
    """The JSON report: settings, then one entry per module in adapter order."""
    chosen = set(chosen)
    modules = [
        {"name": p.name, "score": p.score, "projected": p.name in chosen, "shrink": p.shrink, "v_norm": p.v_norm}
        for p in projections.values()
    ]
    return {"method": "safe_lora", **settings, "num_modules": len(modules), "num_projected": len(chosen), "modules": modules}


def safe_lora(adapter, base, aligned, select: str = "number", k: int | None = None, threshold: float | None = None,
              projector: str = "paper", rank: int | None = None, progress: bool = False) -> tuple[LoraAdapter, dict]:
    """Safe LoRA end to end in memory: returns (projected adapter, report). Inputs are never changed.

    k=None in `number` mode is the default K (`projection.default_k`); the report says which rule gave K.
    """
    adapter = open_adapter(adapter)
    k_rule = K_RULE if k is None else "given"
    if select == "number" and k is None:
        k = default_k(len(adapter.modules))
    _check_selection(select, k, threshold, len(adapter.modules))
    projections = score_adapter(adapter, base, aligned, projector=projector, rank=rank, progress=progress)
    chosen = select_modules({n: p.score for n, p in projections.items()}, select=select, k=k, threshold=threshold)
    number = select == "number"
    settings = {"projector": projector, "rank": rank, "select": select, "k": k if number else None, "k_rule": k_rule if number else None,
                "num_proj_layers": k if number else None, "threshold": threshold if select == "threshold" else None}
    return apply_projection(adapter, projections, chosen), make_report(projections, chosen, **settings)


def safe_lora_dir(adapter_dir, base, aligned, out, revision: str | None = None, **options) -> dict:
    """Safe LoRA on an adapter directory and two checkpoints (folders or hub ids at `revision`): writes
    OUT (new) with the adapter and its report. OUT is checked before any weight is read."""
    return edit_folder(safe_lora, adapter_dir, base, aligned, out, REPORT_NAME, revision, **options)


def safe_lora_peft_model(model, base, aligned, adapter_name: str = "default", **options) -> dict:
    """Safe LoRA on an in-memory PeftModel: scores everything first, then sets B <- C B in the model."""
    return edit_peft_model(safe_lora, model, base, aligned, adapter_name, **options)


def _check_selection(select: str, k, threshold, num_modules: int) -> None:
    """Validate K / threshold up front (before any weight is read)."""
    select_modules({f"m{i}": 0.0 for i in range(num_modules)}, select=select, k=k, threshold=threshold)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "safe-lora", help="Safe LoRA: project the adapter's drifting modules onto the alignment subspace.",
        description="Writes a NEW adapter directory OUT with safelora_report.json; the input adapter is never touched.",
    )
    add_adapter_pair_arguments(parser)
    parser.add_argument("--select", choices=["number", "threshold"], default="number",
                        help="number: project the K lowest-scoring modules (default); threshold: project modules with score <= T")
    parser.add_argument("--num-proj-layers", type=int, metavar="K",
                        help=f"K for --select number; counts LoRA modules (q and v of one block are two). Default: {K_RULE}, "
                             "i.e. the reference's 10 of Llama-2-7B's 64 q/v modules")
    parser.add_argument("--threshold", type=float, metavar="T", help="T in [-1, 1] for --select threshold. Default 0.5")
    parser.add_argument("--projector", choices=["paper", "exact"], default="paper",
                        help="paper: C = V V^T / ||V||_F (default, as the paper); exact: U_k U_k^T")
    parser.add_argument("--rank", type=int, help="k for --projector exact (default: the numerical rank of V)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    number = args.select == "number"
    refuse_inapplicable(args, num_proj_layers=(number, "--select number"), threshold=(not number, "--select threshold"),
                        rank=(args.projector == "exact", "--projector exact"))
    report = safe_lora_dir(
        args.adapter, args.base, args.aligned, args.out, revision=args.revision, select=args.select,
        k=args.num_proj_layers, threshold=None if number else (0.5 if args.threshold is None else args.threshold),
        projector=args.projector, rank=args.rank,
    )
    k = f", K={report['k']} ({report['k_rule']})" if number else ""
    print(f"projected {report['num_projected']} of {report['num_modules']} modules ({args.projector} projector{k}) "
          f"in {report['seconds']:.1f} s -> {Path(args.out) / REPORT_NAME}")
    return 0
