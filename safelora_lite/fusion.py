"""LoRA fusion: the exact weighted sum of several LoRA adapters' updates, as one PEFT adapter.

References:
- Gudipudi et al., "Enhancing AI Safety Through the Fusion of Low Rank Adapters", 2024:
  a safety adapter (harmful request -> refusal) fused with the task adapter,
  `dW = w_t s_t B_t A_t + w_s s_s B_s A_s`, via peft's
  `add_weighted_adapter([...], [0.6, 0.4], combination_type="cat")`.
- peft `LoraModel.add_weighted_adapter` (`cat` and `linear`).

Why concatenation is exact (DESIGN section 1): for every module,

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
and `fan_in_fan_out` must agree, and weights must be finite (negative weights subtract).
"""

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .adapters import PEFT_PREFIX, LoraAdapter, LoraModule, adapter_from_peft_model, read_adapter, write_adapter
from .errors import InputError

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
    if len(bases) > 1:
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
    if Path(out).exists():  # fail before any work; write_adapter checks again atomically
        raise InputError(f"output directory {out} already exists.", "choose a new --out path.")
    resolved = {Path(d).resolve() for d in adapter_dirs}
    if Path(out).resolve() in resolved:
        raise InputError(f"--out {out} is one of the input adapters.", "write the fused adapter to a new directory.")
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


# ----- the safety adapter (toy world) -------------------------------------------------------

@dataclass(frozen=True)
class SafetyAdapterConfig:
    """A small LoRA adapter trained on harmful request -> refusal conversations, on the aligned model.

    n_examples: conversations drawn (with `seed`) from the `refusal_train` split; a fraction
    `borderline_fraction` of them is replaced by borderline requests with helpful answers (0 in the
    paper's recipe: refusals only). LoRA settings default to the attacks' (AttackConfig).
    """

    n_examples: int = 100
    borderline_fraction: float = 0.0
    r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    steps: int = 60
    lr: float = 2e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        if self.n_examples < 1:
            raise InputError(f"n_examples={self.n_examples} is too small.", "use at least 1 conversation.")
        if not 0.0 <= self.borderline_fraction <= 1.0:
            raise InputError(f"borderline_fraction {self.borderline_fraction} is outside [0, 1].", "use a fraction such as 0.2.")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))


def safety_records(config: SafetyAdapterConfig) -> list[dict]:
    """The safety adapter's training data: harmful -> refusal (and optionally borderline -> help)."""
    import random

    from .toy_world import load_split

    rng = random.Random(config.seed)

    def draw(rows, n):
        return [rng.choice(rows) for _ in range(n)] if n > len(rows) else rng.sample(rows, n)

    n_border = round(config.borderline_fraction * config.n_examples)
    picks = draw(load_split("refusal_train"), config.n_examples - n_border) + draw(load_split("borderline_train"), n_border)
    rng.shuffle(picks)
    return picks


def train_safety_adapter(world, config: SafetyAdapterConfig = SafetyAdapterConfig(), progress: bool = True) -> Path:
    """LoRA-train the safety adapter on the aligned toy model with the toy world's trainer; return its folder (cached)."""
    from peft import LoraConfig, get_peft_model

    from .adapters import new_output_dir
    from .records import write_json_atomic
    from .toy_world import WORLD_VERSION, _key, _limit_threads
    from .training import train

    out = world.root / "safety" / f"safety-{_key({'version': WORLD_VERSION, **asdict(config)})}"
    if (out / "safety.json").is_file():
        return out
    _limit_threads()
    lora = LoraConfig(r=config.r, lora_alpha=config.lora_alpha, target_modules=list(config.target_modules),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(config.seed)
    model = get_peft_model(world.load_model("aligned"), lora)
    start = time.perf_counter()
    losses = train(model, world.tokenizer, safety_records(config), config.steps, config.lr, config.batch_size,
                   config.seed, progress, desc="safety adapter")
    try:
        with new_output_dir(out) as tmp:
            model.save_pretrained(tmp)
            write_json_atomic({"safety": asdict(config), "world": world.config.key(),
                               "seconds": round(time.perf_counter() - start, 1), "losses": losses}, tmp / "safety.json")
    except InputError:
        if not (out / "safety.json").is_file():  # someone else wrote it meanwhile: use theirs
            raise
    return out


# ----- sweeping the fusion weight (toy world) ------------------------------------------------

FUSION_MODES = ("convex", "add")


def fusion_weights(w: float, mode: str = "convex") -> tuple[float, float]:
    """(w_task, w_safety) for safety weight w: "convex" = (1 - w, w) as in the paper's 0.6 / 0.4; "add" = (1, w)."""
    if mode not in FUSION_MODES:
        raise InputError(f"unknown fusion mode {mode!r}.", f"use one of: {', '.join(FUSION_MODES)}.")
    return (1.0 - w, w) if mode == "convex" else (1.0, w)


def evaluate_lora(world, adapter: LoraAdapter, **kwargs) -> dict:
    """Evaluate an in-memory adapter on the aligned toy model through stock peft (via a temporary folder)."""
    import tempfile

    from .toy_world import evaluate_adapter

    with tempfile.TemporaryDirectory(prefix="safelora-lite-") as tmp:
        path = write_adapter(adapter, Path(tmp) / "adapter", rewrite_config=True)
        return evaluate_adapter(world, path, **kwargs)


def sweep_fusion(world, task_dir, safety_dir, weights, mode: str = "convex", control: bool = True,
                 progress: bool = True, **eval_kwargs) -> list[dict]:
    """Evaluate the fused adapter for each safety weight w, and (control) the task adapter alone scaled by w_task.

    The control tells the safety adapter's effect apart from simply shrinking the task adapter.
    Returns points {"method": "fusion" | "task_scaled", "weight", "w_task", "w_safety", rates...}.
    """
    from tqdm.auto import tqdm

    task, safety = read_adapter(task_dir), read_adapter(safety_dir)
    points = []
    for w in tqdm(list(weights), desc="fusion sweep", disable=not progress):
        w_task, w_safety = fusion_weights(float(w), mode)
        rates = evaluate_lora(world, fuse_adapters([task, safety], [w_task, w_safety]), progress=False, **eval_kwargs)
        points.append({"method": "fusion", "weight": float(w), "w_task": w_task, "w_safety": w_safety, **rates})
        if control and w_task != 1.0:
            rates = evaluate_lora(world, fuse_adapters([task], [w_task]), progress=False, **eval_kwargs)
            points.append({"method": "task_scaled", "weight": float(w), "w_task": w_task, "w_safety": 0.0, **rates})
    return points


def sweet_spot(points: list[dict], task_floor: float, key: str = "weight") -> dict | None:
    """The documented choice: the highest refusal_rate - over_refusal_rate among points whose
    task_accuracy >= task_floor (ties: the smaller `key`). None when no point keeps the task."""
    kept = [p for p in points if p["task_accuracy"] is not None and p["task_accuracy"] >= task_floor]
    if not kept:
        return None
    return max(kept, key=lambda p: (p["refusal_rate"] - p["over_refusal_rate"], -p[key]))


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
