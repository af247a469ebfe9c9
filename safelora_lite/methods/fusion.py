"""LoRA fusion: the exact weighted sum of several LoRA adapters' updates, as one PEFT adapter.

References:
- Gudipudi et al., "Enhancing AI Safety Through the Fusion of Low Rank Adapters", 2024:
  a safety adapter (harmful request -> refusal) fused with the task adapter,
  `dW = w_t s_t B_t A_t + w_s s_s B_s A_s`, via peft's
  `add_weighted_adapter([...], [0.6, 0.4], combination_type="cat")`.
- peft `LoraModel.add_weighted_adapter` (`cat` and `linear`).

Why concatenation is exact (docs/architecture.md section 2): for every module,

    B_f = [w_1 s_1 B_1 | w_2 s_2 B_2 | ...]   (d_out, r_1 + r_2 + ...)
    A_f = [A_1; A_2; ...]                       (r_1 + r_2 + ..., d_in)
    B_f @ A_f = sum_i w_i s_i B_i A_i           with scaling s_f = 1.

peft's `linear` instead averages the factors, A = sum_i sqrt(w_i s_i) A_i and
B = sum_i sqrt(w_i s_i) B_i, so B A also holds the cross terms sqrt(w_i s_i w_j s_j) B_i A_j:
it is not the weighted sum (`linear_mix` reproduces it for teaching).

Policy for adapters that do not cover the same modules: by default the fused adapter covers the
UNION, and a module missing from an adapter contributes zero from that adapter (exactly what its
update is there). `require_same_modules=True` (CLI `--require-same-modules`) refuses instead.
Ranks may differ (the fused rank of a module is the sum of its inputs' ranks); shapes, base model
(by name: a hub id, a local folder and a hub-cache snapshot of one model agree, `model_name`) and
`fan_in_fan_out` must agree, and weights must be finite (negative weights subtract).
"""

import math
import os
from pathlib import Path

import torch

from safelora_lite.adapters.lora_io import PEFT_PREFIX, LoraAdapter, LoraModule, adapter_from_peft_model, read_adapter, write_adapter
from safelora_lite.errors import InputError
from safelora_lite.outputs import check_new_output

REPORT_NAME = "fusion_report.json"


def _check_weights(n_adapters: int, weights) -> list[float]:
    weights = [float(w) for w in weights]
    if n_adapters == 0:
        raise InputError("no adapters to fuse.", "pass at least one adapter directory.")
    if len(weights) != n_adapters:
        raise InputError(f"{n_adapters} adapters but {len(weights)} weights.", "give one weight per adapter, in the same order.")
    bad = [w for w in weights if not math.isfinite(w)]
    if bad:
        raise InputError(f"fusion weight {bad[0]} is not a finite number.", "use finite weights such as 0.6 0.4.")
    return weights


def _check_compatible(adapters: list[LoraAdapter], require_same_modules: bool) -> None:
    """Refuse what cannot be summed exactly: other base models, other shapes, extra tensors."""
    bases = {a.base_model for a in adapters if a.base_model}
    if len({model_name(b) for b in bases}) > 1:
        raise InputError(f"the adapters were trained on different base models: {sorted(bases)}.",
                         "fuse only adapters of the same base model.")
    for i, a in enumerate(adapters):
        if a.extra_tensors:
            key = next(iter(a.extra_tensors))
            raise InputError(f"adapter {i} holds {key} (a bias or modules_to_save tensor), which has no weighted sum.",
                             "train the adapters with bias='none' and no modules_to_save.")
        if a.config.get("target_parameters"):
            raise InputError(f"adapter {i} targets parameters, not modules.", "fuse adapters of linear modules.")
    if len({bool(a.config.get("fan_in_fan_out")) for a in adapters}) > 1:
        raise InputError("the adapters disagree on fan_in_fan_out.", "fuse adapters of the same model family.")
    shapes: dict[str, tuple[int, int]] = {}
    for i, a in enumerate(adapters):
        for name, m in a.modules.items():
            shape = (m.lora_b.shape[0], m.lora_a.shape[1])  # (d_out, d_in)
            if shapes.setdefault(name, shape) != shape:
                raise InputError(f"module {name} is {shapes[name]} in one adapter but {shape} in adapter {i}.",
                                 "the adapters belong to different base models; fuse adapters of the same model.")
    if require_same_modules:
        for i, a in enumerate(adapters):
            missing = sorted(set(shapes) - set(a.modules))
            if missing:
                raise InputError(f"adapter {i} has no module {missing[0]} ({len(missing)} missing).",
                                 "fuse adapters with the same target modules, or drop --require-same-modules.")


def model_name(name_or_path: str) -> str:
    """What names one base model, whether given as a hub id (`meta-llama/Llama-2-7b-hf`), a local folder
    (`/models/Llama-2-7b-hf`) or a Hugging Face cache snapshot (`.../models--meta-llama--Llama-2-7b-hf/snapshots/<hash>`):
    the model's own name, lower-cased (`llama-2-7b-hf`)."""
    parts = Path(str(name_or_path).rstrip("/")).parts
    for i, part in enumerate(parts[:-2]):
        if part.startswith("models--") and parts[i + 1] == "snapshots":
            return part.split("--")[-1].lower()
    return parts[-1].lower() if parts else ""


def _fused_config(adapters: list[LoraAdapter], names: list[str]) -> dict:
    """The first adapter's config, targeting exactly the fused modules (full paths), scaling 1."""
    config = dict(adapters[0].config)
    targets = sorted({n[len(PEFT_PREFIX):] if n.startswith(PEFT_PREFIX) else n for n in names})
    config.update(target_modules=targets, use_rslora=False, bias="none")
    for key in ("layers_to_transform", "layers_pattern", "exclude_modules", "modules_to_save"):  # only keys this peft wrote
        if key in config:
            config[key] = None
    if "use_dora" in config:
        config["use_dora"] = False
    config["base_model_name_or_path"] = next((a.base_model for a in adapters if a.base_model), None)
    return config


def fuse_adapters(adapters: list[LoraAdapter], weights, require_same_modules: bool = False) -> LoraAdapter:
    """The exact fusion: per module B_f = [w_i s_i B_i | ...], A_f = [A_i; ...], scaling 1."""
    weights = _check_weights(len(adapters), weights)
    _check_compatible(adapters, require_same_modules)
    names = list(dict.fromkeys(n for a in adapters for n in a.modules))  # union, first-seen order
    dtype = adapters[0].modules[next(iter(adapters[0].modules))].lora_a.dtype
    for a in adapters:
        for m in a.modules.values():
            dtype = torch.promote_types(dtype, torch.promote_types(m.lora_a.dtype, m.lora_b.dtype))
    fused = {}
    for name in names:
        parts = [(w, a.modules[name]) for w, a in zip(weights, adapters) if name in a.modules]
        lora_b = torch.cat([w * m.scaling * m.lora_b.float() for w, m in parts], dim=1)  # (d_out, sum r_i), B_f
        lora_a = torch.cat([m.lora_a.float() for _, m in parts], dim=0)  # (sum r_i, d_in), A_f
        fused[name] = LoraModule(name, lora_a.to(dtype), lora_b.to(dtype), scaling=1.0)
    return LoraAdapter(config=_fused_config(adapters, names), modules=fused)


def fusion_report(adapters: list[LoraAdapter], weights, fused: LoraAdapter, sources: list[str] | None = None) -> dict:
    """What went into the fused adapter: per input adapter and per fused module."""
    weights = [float(w) for w in weights]
    sources = sources or [f"adapter {i}" for i in range(len(adapters))]
    return {
        "method": "lora_fusion",
        "combination": "cat",
        "formula": "dW = sum_i w_i * s_i * B_i @ A_i (exact; fused scaling 1)",
        "adapters": [
            {"path": str(src), "weight": w, "base_model": a.base_model, "n_modules": len(a.modules),
             "ranks": sorted({m.rank for m in a.modules.values()}),
             "scalings": sorted({round(m.scaling, 10) for m in a.modules.values()})}
            for src, w, a in zip(sources, weights, adapters)
        ],
        "modules": [
            {"name": name, "rank": m.rank,
             "from": [i for i, a in enumerate(adapters) if name in a.modules],
             "missing_from": [i for i, a in enumerate(adapters) if name not in a.modules]}
            for name, m in fused.modules.items()
        ],
    }


def fuse(adapter_dirs: list[str | os.PathLike], weights, out: str | os.PathLike, require_same_modules: bool = False) -> Path:
    """Fuse adapter directories into the NEW directory `out` (PEFT adapter + fusion_report.json)."""
    check_new_output(out, adapter_dirs)  # before any work; write_adapter checks again atomically
    adapters = [read_adapter(d) for d in adapter_dirs]
    fused = fuse_adapters(adapters, weights, require_same_modules=require_same_modules)
    report = fusion_report(adapters, weights, fused, sources=[str(d) for d in adapter_dirs])
    return write_adapter(fused, out, files={REPORT_NAME: report}, rewrite_config=True)


def fuse_peft_model(model, adapter_names: list[str], weights) -> LoraAdapter:
    """Fuse adapters loaded side by side in one in-memory PeftModel (like add_weighted_adapter 'cat')."""
    unknown = [n for n in adapter_names if n not in model.peft_config]
    if unknown:
        raise InputError(f"the model has no adapter named {unknown[0]!r}.", f"use one of {sorted(model.peft_config)}.")
    return fuse_adapters([adapter_from_peft_model(model, n) for n in adapter_names], weights)


def fused_delta(adapters: list[LoraAdapter], weights, name: str) -> torch.Tensor:
    """The reference: sum_i w_i * s_i * B_i @ A_i for one module, dense, fp32 (for tests and toys)."""
    terms = [w * a.modules[name].delta() for w, a in zip(weights, adapters) if name in a.modules]
    return torch.stack(terms).sum(0)  # (d_out, d_in)


def linear_mix(modules: list[LoraModule], weights) -> tuple[torch.Tensor, torch.Tensor]:
    """peft's combination_type="linear" for one module: (A, B) with scaling 1. NOT the weighted sum.

    A = sum_i sign(w_i s_i) sqrt(|w_i s_i|) A_i, B = sum_i sqrt(|w_i s_i|) B_i, so B @ A also holds
    the cross terms B_i A_j (i != j). All ranks must be equal.
    """
    weights = _check_weights(len(modules), weights)
    if len({m.rank for m in modules}) != 1:
        raise InputError("linear mixing needs equal ranks.", "use the exact concatenation (fuse_adapters).")
    ws = [w * m.scaling for w, m in zip(weights, modules)]
    lora_a = sum(math.copysign(math.sqrt(abs(w)), w) * m.lora_a.float() for w, m in zip(ws, modules))  # (r, d_in)
    lora_b = sum(math.sqrt(abs(w)) * m.lora_b.float() for w, m in zip(ws, modules))  # (d_out, r)
    return lora_a, lora_b


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("fuse", help="fuse LoRA adapters: the exact weighted sum of their updates")
    parser.add_argument("--adapters", nargs="+", required=True, metavar="DIR", help="PEFT LoRA adapter directories")
    parser.add_argument("--weights", nargs="+", required=True, type=float, metavar="W",
                        help="one weight per adapter (negative weights subtract)")
    parser.add_argument("--out", required=True, type=Path, help="new directory for the fused adapter")
    parser.add_argument("--require-same-modules", action="store_true",
                        help="refuse adapters with different target modules (default: fuse the union)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    _check_weights(len(args.adapters), args.weights)
    out = fuse(args.adapters, args.weights, args.out, require_same_modules=args.require_same_modules)
    print(f"fused {len(args.adapters)} adapters into {out} (report: {out / REPORT_NAME})")
    return 0
