"""SPLoRA: score each LoRA module by E-DIEM and prune (remove the update of) those judged to weaken safety.

References:
- Ao, Dong, Hu, Ramchurn, "Safe Pruning LoRA: Robust Distance-Guided Pruning for Safety Alignment
  in Adaptation of LLMs", TACL 2025 (arXiv 2506.18931), and its public code (AoShuang92/SPLoRA).

Per LoRA module (dW = s * B @ A), streamed one module at a time like Safe LoRA:
  1. V = W_aligned - W_base and the Safe LoRA projector C (`paper` by default, as SPLoRA's code);
  2. the distance d = ||s (C B A - B A)||_F between the projected update and the update;
  3. its E-DIEM score (`ediem.py`) against an empirical distribution of distances:
     `null="random"` (default): random updates of the same shape, rank and norm, per module;
     `null="modules"`: the adapter's other modules of the same weight shape;
     `variant="reference"`: the public code's 50 identical copies (degenerate, for comparison).
Pruning sets B <- 0 for the chosen modules (any rank, any shape), which removes their update.
  `select="number"`: K = how many modules are pruned, those with the highest scores (the updates
      that lie farthest outside the alignment subspace, relative to the null). The public code's
      K means the opposite: it prunes every module scoring <= the K-th largest score, i.e. it
      KEEPS K-1 (`reference_number_selection`).
  `select="threshold"`: prune every module whose score is >= T.
  `prune="low"` flips both rules to the low scores, which is the public code's comparison
      (`score <= threshold`, inherited from Safe LoRA's cosine, where low means dissimilar).

Python:  `scores = score_adapter(adapter, base, aligned)`, `select_pruned(...)`, `prune_modules(...)`;
         `splora(...)` for all three, `splora_peft_model(model, ...)` on an in-memory PeftModel.
CLI:     `safelora-lite splora --adapter DIR --base DIR|ID --aligned DIR|ID --out DIR ...`
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from safelora_lite.adapters.lora_io import LoraAdapter
from safelora_lite.adapters.controls import zero_modules
from safelora_lite.maths.ediem import LowRank, ediem, null_distances, quantile_range_terms, quantiles, reference_ediem, update_distance
from safelora_lite.errors import InputError
from safelora_lite.methods.base import edit_folder, edit_peft_model
from safelora_lite.options import add_adapter_pair_arguments, refuse_inapplicable
from safelora_lite.maths.projection import K_RULE, default_k, safe_lora_projector
from safelora_lite.methods.safelora import check_inputs, open_adapter
from safelora_lite.adapters.weights import alignment_changes, open_weights

REPORT_NAME = "splora_report.json"
VARIANTS = ("empirical", "reference")
NULLS = ("random", "modules")


@dataclass(frozen=True)
class ModuleScore:
    """One module's SPLoRA pass: its E-DIEM score and what went into it."""

    name: str
    score: float  # E-DIEM
    distance: float  # d = ||s (C B A - B A)||_F (reference: without s, as the public code)
    null_mean: float  # E[d] of the empirical distribution (reference: d itself)
    null_iqr: float  # IQR of that distribution (reference: 0)
    v_max: float  # v_M = Q3(C B A) - Q1(C B A)
    v_min: float  # v_m = Q1(C B A) - Q1(B A)
    update_norm: float  # ||s B A||_F
    shape: tuple[int, int]  # (d_out, d_in) of the adapted weight


def _check_options(variant: str, null: str, samples: int, projector: str, rank) -> None:
    if variant not in VARIANTS:
        raise InputError(f"unknown E-DIEM variant {variant!r}.", f"use one of {', '.join(VARIANTS)}.")
    if null not in NULLS:
        raise InputError(f"unknown null distribution {null!r}.", f"use one of {', '.join(NULLS)}.")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InputError(f"samples={samples} is too few for an empirical distribution.", "use samples >= 2 (e.g. 32).")
    if projector == "paper" and rank is not None:
        raise InputError("--rank applies to the exact projector only.", "drop the rank, or use projector 'exact'.")
    if projector not in ("paper", "exact"):
        raise InputError(f"unknown projector kind {projector!r}.", "use 'paper' or 'exact'.")


def score_adapter(adapter, base, aligned, variant: str = "empirical", null: str = "random", samples: int = 32,
                  seed: int = 0, projector: str = "paper", rank: int | None = None, quantile_terms: bool = True,
                  progress: bool = False) -> dict[str, ModuleScore]:
    """One streaming pass over the modules: V -> C -> d, its null and E-DIEM. Nothing is changed.

    quantile_terms=False drops v_m from the empirical score (it is in weight units, tiny next to
    the z-part) and skips the exact quantiles of C B A and B A per module.
    """
    _check_options(variant, null, samples, projector, rank)
    adapter = open_adapter(adapter)
    base, aligned = open_weights(base), open_weights(aligned)
    keys = check_inputs(adapter, base, aligned)
    items = list(adapter.modules.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="SPLoRA E-DIEM")
    parts = {}
    changes = alignment_changes(base, aligned, [keys[name] for name in adapter.modules])
    for index, ((name, m), (key, v, v_norm)) in enumerate(zip(items, changes)):
        # v: (d_out, d_in), V in a buffer the next module reuses
        if rank is not None and rank > min(v.shape):
            raise InputError(f"rank={rank} exceeds the size of {key} {tuple(v.shape)}.", f"use a rank <= {min(v.shape)}.")
        c = safe_lora_projector(v, kind=projector, rank=rank, v_norm=v_norm)  # C, never formed densely
        lora_b, lora_a = m.lora_b.float(), m.lora_a.float()  # (d_out, r) B, (r, d_in) A
        s = 1.0 if variant == "reference" else m.scaling  # the public code ignores s
        projected_b = c @ lora_b  # (d_out, r), C B
        update = LowRank(s * lora_b, lora_a)  # s B A, its entries made block by block
        projected = LowRank(s * projected_b, lora_a)  # s C B A
        d = update_distance(c, lora_b, lora_a, s, projected_b=projected_b)
        v_max = v_min = 0.0
        if variant == "reference" or quantile_terms:
            v_max, v_min = quantile_range_terms(projected, update, check=False)
        gram_a = lora_a.double() @ lora_a.double().T  # (r, r)
        update_norm = abs(s) * float(((lora_b.double().T @ lora_b.double()) * gram_a).sum().clamp_min(0.0)) ** 0.5
        row = {"name": name, "distance": d, "v_max": v_max, "v_min": v_min, "shape": (lora_b.shape[0], lora_a.shape[1]),
               "update_norm": update_norm}
        if variant == "reference":
            row.update(score=reference_ediem(projected_b @ lora_a, lora_b @ lora_a, terms=(v_max, v_min)),  # dense, as there
                       null_mean=d, null_iqr=0.0)
        elif null == "random":
            dist = null_distances(c, lora_b, lora_a, s, samples=samples, seed=seed + index)
            row.update(score=ediem(d, dist, v_max, v_min), null_mean=float(dist.double().mean()), null_iqr=_iqr(dist))
        parts[name] = row
        del c
    if variant == "empirical" and null == "modules":
        for shape in {row["shape"] for row in parts.values()}:
            group = [row for row in parts.values() if row["shape"] == shape]
            dist = torch.tensor([row["distance"] for row in group], dtype=torch.float64)
            for row in group:
                row.update(score=ediem(row["distance"], dist, row["v_max"], row["v_min"]),
                           null_mean=float(dist.mean()), null_iqr=_iqr(dist))
    return {name: ModuleScore(**row) for name, row in parts.items()}


def _iqr(dist: torch.Tensor) -> float:
    q1, q3 = quantiles(dist.float(), [0.25, 0.75])
    return q3 - q1


def select_pruned(scores: dict[str, float], select: str = "number", k: int | None = None,
                  threshold: float | None = None, prune: str = "high") -> list[str]:
    """Which modules to prune, in input order.

    number: the K modules with the highest scores (prune="low": the K lowest); ties by input order.
    threshold: every module with score >= T (prune="low": score <= T). E-DIEM is unbounded: any finite T.
    """
    names = list(scores)
    if prune not in ("high", "low"):
        raise InputError(f"prune={prune!r} is neither 'high' nor 'low'.", "use 'high' (default) or 'low' (the public code's direction).")
    sign = -1.0 if prune == "high" else 1.0
    if select == "number":
        if k is None or isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(names):
            raise InputError(f"K={k} is out of range: the adapter has {len(names)} LoRA modules.", f"use 0 <= K <= {len(names)} (K = how many modules are pruned).")
        chosen = set(sorted(names, key=lambda n: (sign * scores[n], names.index(n)))[:k])
    elif select == "threshold":
        if threshold is None or isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise InputError(f"threshold={threshold} is not a finite number.", "E-DIEM scores are unbounded reals; pick a finite threshold, e.g. 0.")
        chosen = {n for n in names if (scores[n] >= threshold if prune == "high" else scores[n] <= threshold)}
    else:
        raise InputError(f"unknown selection {select!r}.", "use 'number' or 'threshold'.")
    return [n for n in names if n in chosen]


def reference_number_selection(scores: dict[str, float], k: int) -> list[str]:
    """What the public code's `number` mode prunes: every module scoring <= the K-th largest score.

    That keeps only the K-1 highest-scoring modules (ties aside): its K counts what is KEPT, plus one.
    """
    names = list(scores)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(names):
        raise InputError(f"K={k} is out of range for the reference number mode.", f"use 1 <= K <= {len(names)}.")
    cut = sorted(scores.values(), reverse=True)[k - 1]
    return [n for n in names if scores[n] <= cut]


def prune_modules(adapter, names) -> LoraAdapter:
    """A new adapter whose named modules have B <- 0: their update s B A is removed, shapes kept."""
    return zero_modules(open_adapter(adapter), names)


def make_report(scores: dict[str, ModuleScore], pruned, **settings) -> dict:
    """The JSON report: settings, then one entry per module in adapter order."""
    pruned = set(pruned)
    modules = [
        {"name": s.name, "score": s.score, "pruned": s.name in pruned, "distance": s.distance,
         "null_mean": s.null_mean, "null_iqr": s.null_iqr, "v_max": s.v_max, "v_min": s.v_min,
         "update_norm": s.update_norm}
        for s in scores.values()
    ]
    return {"method": "splora", **settings, "num_modules": len(modules), "num_pruned": len(pruned), "modules": modules}


def splora(adapter, base, aligned, select: str = "number", k: int | None = None, threshold: float | None = None,
           prune: str = "high", variant: str = "empirical", null: str = "random", samples: int = 32, seed: int = 0,
           projector: str = "paper", rank: int | None = None, quantile_terms: bool = True,
           progress: bool = False) -> tuple[LoraAdapter, dict]:
    """SPLoRA end to end in memory: returns (pruned adapter, report). Inputs are never changed.

    k=None in `number` mode is the default K (`projection.default_k`); the report says which rule gave K.
    """
    adapter = open_adapter(adapter)
    k_rule = K_RULE if k is None else "given"
    if select == "number" and k is None:
        k = default_k(len(adapter.modules))
    _check_options(variant, null, samples, projector, rank)
    select_pruned({f"m{i}": 0.0 for i in range(len(adapter.modules))}, select, k, threshold, prune)  # validate early
    scores = score_adapter(adapter, base, aligned, variant=variant, null=null, samples=samples, seed=seed,
                           projector=projector, rank=rank, quantile_terms=quantile_terms, progress=progress)
    pruned = select_pruned({n: s.score for n, s in scores.items()}, select, k, threshold, prune)
    settings = {"variant": variant, "null": null if variant == "empirical" else None,
                "samples": samples if variant == "empirical" and null == "random" else None, "seed": seed,
                "projector": projector, "rank": rank, "quantile_terms": quantile_terms or variant == "reference",
                "select": select, "prune": prune, "k": k if select == "number" else None,
                "k_rule": k_rule if select == "number" else None, "num_prune": k if select == "number" else None,
                "threshold": threshold if select == "threshold" else None}
    return prune_modules(adapter, pruned), make_report(scores, pruned, **settings)


def splora_dir(adapter_dir, base, aligned, out, revision: str | None = None, **options) -> dict:
    """SPLoRA on an adapter directory and two checkpoints (folders or hub ids at `revision`): writes
    OUT (new) with the adapter and its report. OUT is checked before any weight is read."""
    return edit_folder(splora, adapter_dir, base, aligned, out, REPORT_NAME, revision, **options)


def splora_peft_model(model, base, aligned, adapter_name: str = "default", **options) -> dict:
    """SPLoRA on an in-memory PeftModel: scores everything first, then zeroes B of the pruned modules."""
    return edit_peft_model(splora, model, base, aligned, adapter_name, **options)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "splora", help="SPLoRA: prune the LoRA modules whose E-DIEM distance says they weaken safety.",
        description="Writes a NEW adapter directory OUT with splora_report.json; the input adapter is never touched.",
    )
    add_adapter_pair_arguments(parser)
    parser.add_argument("--select", choices=["number", "threshold"], default="number",
                        help="number: prune K modules; threshold: prune modules with score >= T")
    parser.add_argument("--num-prune", type=int, metavar="K",
                        help=f"K for --select number: how many LoRA modules are PRUNED (the public code's K keeps K-1). Default: {K_RULE}")
    parser.add_argument("--threshold", type=float, metavar="T", help="T for --select threshold (E-DIEM is unbounded). Default 0")
    parser.add_argument("--prune", choices=["high", "low"], default="high",
                        help="high: prune the highest scores (farthest from the alignment subspace; default); low: the public code's direction")
    parser.add_argument("--variant", choices=list(VARIANTS), default="empirical",
                        help="empirical: E-DIEM against a real distribution (default); reference: the public code's 50 identical samples")
    parser.add_argument("--null", choices=list(NULLS),
                        help="random: random updates of the same size (default); modules: the adapter's modules of the same shape")
    parser.add_argument("--samples", type=int, help="random-null samples per module. Default 32")
    parser.add_argument("--seed", type=int, help="seed of the random null. Default 0")
    parser.add_argument("--projector", choices=["paper", "exact"], default="paper",
                        help="paper: C = V V^T / ||V||_F (default, as SPLoRA's code); exact: U_k U_k^T")
    parser.add_argument("--rank", type=int, help="k for --projector exact (default: the numerical rank of V)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    number, empirical = args.select == "number", args.variant == "empirical"
    random_null = empirical and args.null in (None, "random")
    refuse_inapplicable(args, num_prune=(number, "--select number"), threshold=(not number, "--select threshold"),
                        null=(empirical, "--variant empirical"), samples=(random_null, "--variant empirical --null random"),
                        seed=(random_null, "--variant empirical --null random"), rank=(args.projector == "exact", "--projector exact"))
    report = splora_dir(
        args.adapter, args.base, args.aligned, args.out, revision=args.revision, select=args.select, k=args.num_prune,
        threshold=None if number else (0.0 if args.threshold is None else args.threshold),
        prune=args.prune, variant=args.variant, null=args.null or "random", samples=32 if args.samples is None else args.samples,
        seed=args.seed or 0, projector=args.projector, rank=args.rank,
    )
    k = f", K={report['k']} ({report['k_rule']})" if number else ""
    print(f"pruned {report['num_pruned']} of {report['num_modules']} modules ({args.variant} E-DIEM{k}) "
          f"in {report['seconds']:.1f} s -> {Path(args.out) / REPORT_NAME}")
    return 0
