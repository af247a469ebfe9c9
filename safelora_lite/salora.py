"""SaLoRA: a fixed safety module C and a task-informed init; the LoRA update is always s C B A.

References:
- Li et al., "SaLoRA: Safety-Alignment Preserved Low-Rank Adaptation", ICLR 2025, and its public
  code (DESIGN section 1 lists what that code does, with its defaults r=16, alpha=16, r_s=d_t=32).

Per target module with weight W (d_out, d_in) of the ALIGNED model:
- Y_s = X_s W^T from the module's inputs X_s at response tokens of harmful prompts with refusals;
  V_s (d_out, r_s) = top right singular vectors of Y_s: the outputs that carry safety features.
- The safety module C = I - V_s V_s^T, applied as b - V_s (V_s^T b): never a d_out x d_out matrix.
- Task init: V_t (d_out, d_t) the same way from task samples; W ~ U2 S2 V2^T (rank r);
  B0 = V_t V_t^T U2 sqrt(S2), A0 = sqrt(S2) V2^T; W_res = W - s C B0 A0 (zero change at init).
- Forward: W_res x + s C B A x. B and A train; C, W_res stay fixed.

Design choice: C is a `torch.nn.utils.parametrize` parametrization of peft's `lora_B` weight, so
peft's own forward (`lora_B(lora_A(x)) * s`) always sees C B. The optimiser updates the raw B; the
update the model uses is C B whatever the optimiser does (Adam moments, weight decay, clipping),
which is why this is optimiser-agnostic. Projecting gradients instead (B.grad <- C B.grad) keeps B
in range(C) only under plain SGD: Adam's per-coordinate scaling and weight decay leave that range.

Differences from the reference code, on purpose:
- V_s and V_t come from a deterministic SVD (a seeded randomized SVD only for big matrices); the
  reference's randomized SVD is unseeded.
- Every layer's features come from the clean aligned model (features.py).
- W_res = W - s C B0 A0, so the change at init is zero for any s = alpha / r; the reference writes
  W - C B0 A0, the same thing at its default alpha = r (s = 1).
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn.utils import parametrize
from safetensors.torch import load_file, save_file

from .adapters import PEFT_PREFIX, new_output_dir
from .errors import InputError
from .features import collect_module_inputs, find_target_modules
from .projection import as_float32, top_left_singular_vectors

CONFIG_NAME = "salora_config.json"
WEIGHTS_NAME = "salora_state.safetensors"
FORMAT = "safelora-lite/salora-checkpoint"


@dataclass(frozen=True)
class SaLoRAConfig:
    """Every SaLoRA knob. Defaults follow the reference code."""

    r: int = 16  # LoRA rank
    lora_alpha: float = 16  # s = lora_alpha / r
    safety_rank: int = 32  # r_s: columns of V_s
    task_rank: int = 32  # d_t: columns of V_t
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    task_init: bool = True  # False: peft's default init (A random, B = 0) and W_res = W

    @property
    def scaling(self) -> float:
        return self.lora_alpha / self.r

    def check(self) -> None:
        for knob in ("r", "safety_rank", "task_rank"):
            value = getattr(self, knob)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (knob == "r" and value == 0):
                raise InputError(f"{knob}={value!r} must be a {'positive' if knob == 'r' else 'non-negative'} integer.")
        if not self.lora_alpha > 0:
            raise InputError(f"lora_alpha={self.lora_alpha} must be positive.")


@dataclass(frozen=True)
class ModuleInit:
    """What SaLoRA fixes for one module before training."""

    v_s: torch.Tensor  # (d_out, r_s), V_s: safety directions of the module's output
    lora_b0: torch.Tensor  # (d_out, r), B0
    lora_a0: torch.Tensor | None  # (r, d_in), A0 (None without task init)
    v_t: torch.Tensor | None = None  # (d_out, d_t), V_t: task directions (for plots)


class SafetyModule(torch.nn.Module):
    """C = I - V_s V_s^T as a parametrization of lora_B: forward(B) = B - V_s (V_s^T B)."""

    def __init__(self, v_s: torch.Tensor):
        super().__init__()
        self.register_buffer("v_s", v_s)  # (d_out, r_s), orthonormal columns

    def forward(self, b: torch.Tensor) -> torch.Tensor:  # (d_out, r) -> (d_out, r)
        return b - self.v_s @ (self.v_s.T @ b)

    def dense(self) -> torch.Tensor:
        """The d_out x d_out matrix C, for teaching and tests only."""
        return torch.eye(self.v_s.shape[0], dtype=self.v_s.dtype) - self.v_s @ self.v_s.T


def apply_c(v_s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C b = b - V_s (V_s^T b), O(d_out * r_s * r)."""
    return b - v_s @ (v_s.T @ b)


def feature_directions(x: torch.Tensor, weight: torch.Tensor, rank: int) -> torch.Tensor:
    """(d_out, rank): top right singular vectors of Y = X W^T, by a deterministic (or seeded) SVD."""
    x = as_float32(x, "features X")  # (n, d_in)
    weight = as_float32(weight, "weight W")  # (d_out, d_in)
    if x.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise InputError(f"features {tuple(x.shape)} do not match the weight {tuple(weight.shape)}.")
    d_out = weight.shape[0]
    if rank == 0:
        return torch.zeros(d_out, 0)
    if rank > min(d_out, x.shape[0]):
        raise InputError(f"rank {rank} exceeds min(d_out={d_out}, tokens={x.shape[0]}).", "lower the rank or collect more samples.")
    y_t = weight @ x.T  # (d_out, n), Y^T: its left singular vectors are Y's right ones
    return top_left_singular_vectors(y_t, rank)


def task_init(weight: torch.Tensor, v_t: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B0 = V_t V_t^T U2 sqrt(S2) (d_out, r) and A0 = sqrt(S2) V2^T (r, d_in), from W ~ U2 S2 V2^T."""
    weight = as_float32(weight, "weight W")
    if r > min(weight.shape):
        raise InputError(f"r={r} exceeds the module's size {tuple(weight.shape)}.", f"use r <= {min(weight.shape)}.")
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    root = s[:r].sqrt()  # sqrt(S2)
    u2 = u[:, :r] * root  # (d_out, r), U2 sqrt(S2)
    b0 = v_t @ (v_t.T @ u2)  # (d_out, r)
    a0 = root[:, None] * vh[:r]  # (r, d_in)
    return b0, a0


def inits_from_features(model: torch.nn.Module, safety_x: dict, task_x: dict | None, config: SaLoRAConfig) -> dict[str, ModuleInit]:
    """V_s (and V_t, B0, A0) per target module from collected features (features.collect_module_inputs)."""
    config.check()
    inits = {}
    for name, linear in find_target_modules(model, config.target_modules).items():
        w = linear.weight.detach().float()  # (d_out, d_in), W
        v_s = feature_directions(safety_x[name], w, config.safety_rank)  # (d_out, r_s)
        if config.task_init:
            v_t = feature_directions(task_x[name], w, config.task_rank)  # (d_out, d_t)
            b0, a0 = task_init(w, v_t, config.r)
        else:
            v_t, b0, a0 = None, torch.zeros(w.shape[0], config.r), None
        inits[name] = ModuleInit(v_s=v_s, lora_b0=b0, lora_a0=a0, v_t=v_t)
    return inits


def prepare(model: torch.nn.Module, safety_batches, task_batches, config: SaLoRAConfig,
            max_tokens: int | None = 4096) -> dict[str, ModuleInit]:
    """V_s, B0, A0 for every target module of the clean aligned `model` (keys: module paths)."""
    config.check()
    safety_x = collect_module_inputs(model, safety_batches, config.target_modules, max_tokens)
    task_x = collect_module_inputs(model, task_batches, config.target_modules, max_tokens) if config.task_init else None
    return inits_from_features(model, safety_x, task_x, config)


def lora_layers(model) -> dict[str, torch.nn.Module]:
    """peft's LoRA Linear layers of a PeftModel, keyed by adapter module name (base_model.model....)."""
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def build_model(model: torch.nn.Module, inits: dict[str, ModuleInit], config: SaLoRAConfig, adapter_name: str = "default"):
    """Wrap the aligned `model` (in place, as peft does) into the SaLoRA training model.

    Each target module gets lora_A = A0, lora_B = B0 (parametrized as C B), W <- W_res = W - s C B0 A0.
    """
    from peft import LoraConfig, get_peft_model

    config.check()
    lora = LoraConfig(r=config.r, lora_alpha=config.lora_alpha, target_modules=list(config.target_modules),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora, adapter_name=adapter_name)
    layers = lora_layers(peft_model)
    expected = {PEFT_PREFIX + n for n in inits}
    if set(layers) != expected:
        diff = sorted(set(layers) ^ expected)
        raise InputError(f"SaLoRA inits and the model's LoRA modules differ (e.g. {diff[0]}).", "prepare the inits on the same model and target_modules.")
    s = config.scaling
    with torch.no_grad():
        for name, layer in layers.items():
            init = inits[name[len(PEFT_PREFIX):]]
            lora_b, lora_a = layer.lora_B[adapter_name], layer.lora_A[adapter_name]
            base = layer.get_base_layer()
            if init.lora_a0 is not None:
                lora_a.weight.copy_(init.lora_a0)
                lora_b.weight.copy_(init.lora_b0)
                w = base.weight.float()
                delta0 = s * apply_c(init.v_s, init.lora_b0) @ init.lora_a0  # (d_out, d_in), s C B0 A0
                base.weight.copy_((w - delta0).to(base.weight.dtype))  # W_res
            else:
                lora_b.weight.zero_()
            v_s = init.v_s.to(device=lora_b.weight.device, dtype=lora_b.weight.dtype)
            parametrize.register_parametrization(lora_b, "weight", SafetyModule(v_s))
    peft_model.salora_config = config
    peft_model.salora_inits = inits
    return peft_model


def salora_model(model, safety_batches, task_batches, config: SaLoRAConfig = SaLoRAConfig(), max_tokens: int | None = 4096):
    """The whole set-up in one call: features from the clean `model`, then the SaLoRA training model."""
    inits = prepare(model, safety_batches, task_batches, config, max_tokens)
    return build_model(model, inits, config)


def raw_lora_b(lora_b: torch.nn.Module) -> torch.Tensor:
    """The trainable B (before C) of a parametrized lora_B, or its weight if not parametrized."""
    if parametrize.is_parametrized(lora_b, "weight"):
        return lora_b.parametrizations.weight.original
    return lora_b.weight


def safety_fractions(inits: dict[str, ModuleInit], adapter) -> dict[str, float]:
    """subspace_fraction of every module of a LoraAdapter (adapters.read_adapter) against its V_s."""
    return {name: subspace_fraction(inits[name[len(PEFT_PREFIX):]].v_s, m.lora_b, m.lora_a) for name, m in adapter.modules.items()}


def subspace_overlap(v_s: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    """Cosines of the principal angles between the safety and task subspaces (1: shared direction)."""
    return torch.linalg.svdvals(v_s.T @ v_t)


def subspace_fraction(v_s: torch.Tensor, lora_b: torch.Tensor, lora_a: torch.Tensor) -> float:
    """||V_s V_s^T B A||_F / ||B A||_F: the share of an update B A that lies in the safety subspace.

    Low-rank form: ||V_s^T B A||^2 = sum((B^T V_s V_s^T B) * (A A^T)); 0 for SaLoRA, not for LoRA.
    """
    b, a, v = lora_b.detach().double(), lora_a.detach().double(), v_s.detach().double()
    gram_a = a @ a.T  # (k, k)
    vb = v.T @ b  # (r_s, k)
    inside = float(((vb.T @ vb) * gram_a).sum())
    total = float(((b.T @ b) * gram_a).sum())
    return 0.0 if total <= 0 else max(inside, 0.0) ** 0.5 / total ** 0.5


# ---------------------------------------------------------------- checkpoint of the training state

@dataclass(frozen=True)
class SaLoRAModule:
    """One module of a SaLoRA checkpoint: the net change on W is s C B A - s C B0 A0."""

    name: str  # adapter module name, base_model.model....
    lora_a: torch.Tensor  # (r, d_in), A (trained)
    lora_b: torch.Tensor  # (d_out, r), B (trained, before C)
    lora_a0: torch.Tensor  # (r, d_in), A0
    lora_b0: torch.Tensor  # (d_out, r), B0
    v_s: torch.Tensor  # (d_out, r_s), V_s

    def net_factors(self, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(B', A') with B' A' = C B A - C B0 A0: B' (d_out, 2r), A' (2r, d_in); scale by s."""
        b = torch.cat([apply_c(self.v_s, self.lora_b), -apply_c(self.v_s, self.lora_b0)], dim=1)
        a = torch.cat([self.lora_a, self.lora_a0], dim=0)
        return b, a


@dataclass(frozen=True)
class SaLoRACheckpoint:
    config: SaLoRAConfig
    modules: dict[str, SaLoRAModule]
    info: dict = field(default_factory=dict)  # base_model_name_or_path, step, ...


def checkpoint_from_model(model, adapter_name: str = "default", info: dict | None = None) -> SaLoRACheckpoint:
    """The SaLoRA training state of a model built by `build_model` (tensors cloned to the CPU)."""
    config = getattr(model, "salora_config", None)
    if config is None:
        raise InputError("this model was not built by salora.build_model.", "build it with salora_model(...) or build_model(...).")
    modules = {}
    for name, layer in lora_layers(model).items():
        init = model.salora_inits[name[len(PEFT_PREFIX):]]
        a0 = init.lora_a0 if init.lora_a0 is not None else torch.zeros_like(layer.lora_A[adapter_name].weight)
        modules[name] = SaLoRAModule(
            name=name,
            lora_a=layer.lora_A[adapter_name].weight.detach().float().cpu().clone(),
            lora_b=raw_lora_b(layer.lora_B[adapter_name]).detach().float().cpu().clone(),
            lora_a0=a0.float().cpu().clone(), lora_b0=init.lora_b0.float().cpu().clone(), v_s=init.v_s.float().cpu().clone(),
        )
    base_name = getattr(getattr(model, "base_model", None), "model", model).config.name_or_path
    return SaLoRACheckpoint(config=config, modules=modules, info={"base_model_name_or_path": base_name or None, **(info or {})})


def save_checkpoint(checkpoint: SaLoRACheckpoint, out: str | os.PathLike) -> Path:
    """Write a NEW checkpoint directory: salora_config.json + salora_state.safetensors."""
    tensors = {}
    for name, m in checkpoint.modules.items():
        tensors.update({f"{name}.lora_A.weight": m.lora_a, f"{name}.lora_B.weight": m.lora_b,
                        f"{name}.lora_A0": m.lora_a0, f"{name}.lora_B0": m.lora_b0, f"{name}.safety_basis": m.v_s})
    meta = {"format": FORMAT, "version": 1, "config": {**asdict(checkpoint.config), "target_modules": list(checkpoint.config.target_modules)},
            "info": checkpoint.info}
    with new_output_dir(out) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return Path(out)


def save_model_checkpoint(model, out: str | os.PathLike, info: dict | None = None) -> Path:
    """Shortcut: checkpoint_from_model + save_checkpoint."""
    return save_checkpoint(checkpoint_from_model(model, info=info), out)


_KINDS = {".lora_A.weight": "lora_a", ".lora_B.weight": "lora_b", ".lora_A0": "lora_a0", ".lora_B0": "lora_b0", ".safety_basis": "v_s"}


def load_checkpoint(path: str | os.PathLike) -> SaLoRACheckpoint:
    """Read a SaLoRA checkpoint directory, checking its format, shapes and values."""
    path = Path(path)
    config_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not config_file.is_file() or not weights_file.is_file():
        hint = " (it looks like a PEFT adapter, which is already exported)" if (path / "adapter_config.json").is_file() else ""
        raise InputError(f"{path} is not a SaLoRA checkpoint: {CONFIG_NAME} or {WEIGHTS_NAME} is missing{hint}.",
                         "point --checkpoint at a folder written by salora.save_checkpoint.")
    meta = json.loads(config_file.read_text())
    if meta.get("format") != FORMAT:
        raise InputError(f"{config_file} is not a {FORMAT} file.", "point --checkpoint at a folder written by salora.save_checkpoint.")
    raw = dict(meta["config"])
    raw["target_modules"] = tuple(raw["target_modules"])
    config = SaLoRAConfig(**raw)
    parts: dict[str, dict] = {}
    for key, tensor in load_file(str(weights_file)).items():
        suffix = next((s for s in _KINDS if key.endswith(s)), None)
        if suffix is None:
            raise InputError(f"{weights_file} holds an unknown tensor {key}.", "re-save the checkpoint with salora.save_checkpoint.")
        parts.setdefault(key[: -len(suffix)], {})[_KINDS[suffix]] = as_float32(tensor, key)
    modules = {}
    for name, p in parts.items():
        if len(p) != len(_KINDS):
            raise InputError(f"module {name} lacks {sorted(set(_KINDS.values()) - set(p))[0]} in {weights_file}.", "re-save the checkpoint.")
        d_out, d_in, r = p["lora_b"].shape[0], p["lora_a"].shape[1], config.r
        shapes = {"lora_a": (r, d_in), "lora_b": (d_out, r), "lora_a0": (r, d_in), "lora_b0": (d_out, r), "v_s": (d_out, config.safety_rank)}
        for kind, shape in shapes.items():
            if tuple(p[kind].shape) != shape:
                raise InputError(f"module {name}: {kind} has shape {tuple(p[kind].shape)}, expected {shape} (r={r}).", "re-save the checkpoint.")
        modules[name] = SaLoRAModule(name=name, **p)
    if not modules:
        raise InputError(f"{weights_file} holds no modules.", "re-save the checkpoint.")
    return SaLoRACheckpoint(config=config, modules=modules, info=meta.get("info", {}))


def model_from_checkpoint(checkpoint: SaLoRACheckpoint, model: torch.nn.Module, adapter_name: str = "default"):
    """Rebuild the training-time model (W_res, C, trained A and B) on a fresh aligned `model`."""
    inits = {n[len(PEFT_PREFIX):]: ModuleInit(v_s=m.v_s, lora_b0=m.lora_b0, lora_a0=m.lora_a0 if checkpoint.config.task_init else None)
             for n, m in checkpoint.modules.items()}
    peft_model = build_model(model, inits, checkpoint.config, adapter_name)
    with torch.no_grad():
        for name, layer in lora_layers(peft_model).items():
            m = checkpoint.modules[name]
            layer.lora_A[adapter_name].weight.copy_(m.lora_a)
            raw_lora_b(layer.lora_B[adapter_name]).copy_(m.lora_b)
    return peft_model


# ---------------------------------------------------------------- on the toy world

def feature_batches(tokenizer, records: list[dict], n_samples: int = 128, batch_size: int = 32) -> list[dict]:
    """The first `n_samples` (prompt, response) records as padded batches with response-only labels."""
    from .training import collate, encode_records

    if not records or n_samples < 1:
        raise InputError("no feature samples.", "pass at least one (prompt, response) record and n_samples >= 1.")
    encoded = encode_records(tokenizer, records[:n_samples])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return [collate(encoded[i: i + batch_size], pad) for i in range(0, len(encoded), batch_size)]


def train_on_world(world, attack, safety_rank: int = 32, task_rank: int = 32, task_init: bool = True,
                   n_feature_samples: int = 128, progress: bool = True, eval_every: int | None = None,
                   curve_max_per_split: int = 40) -> Path:
    """SaLoRA fine-tuning of the toy aligned model on the attack's data, with the attack's own rank,
    alpha, modules, steps, lr, batch and seed, and the same trainer as `toy_world.train_attack`.

    Safety features: the first `n_feature_samples` harmful->refusal records (refusal_train). Task
    features: the first ones of the fine-tuning data itself (what a user fine-tuning has; for a
    mixed attack it includes its harmful examples). Cached; returns a folder with `checkpoint/`
    (SaLoRA training state), `adapter/` (its rank-2r PEFT export), `attack.json` and, with
    eval_every, `curve.json` (the training-time model evaluated along the way).
    """
    import time

    from . import toy_world as tw
    from .records import write_json_atomic
    from .salora_export import export_checkpoint
    from .training import train

    config = SaLoRAConfig(r=attack.r, lora_alpha=attack.lora_alpha, safety_rank=safety_rank, task_rank=task_rank,
                          target_modules=tuple(attack.target_modules), task_init=task_init)
    config.check()
    key = tw._key({"attack": attack.key(), "salora": asdict(config), "n": n_feature_samples})
    out = world.root / "salora" / f"{attack.kind}-{key}"
    if tw.run_is_cached(out, eval_every, curve_max_per_split):
        return out
    tw._limit_threads()
    records = tw.attack_records(attack)
    safety = feature_batches(world.tokenizer, tw.load_split("refusal_train"), n_feature_samples)
    task = feature_batches(world.tokenizer, records, n_feature_samples)
    clean = world.load_model("aligned")
    start = time.perf_counter()
    inits = prepare(clean, safety, task, config, max_tokens=None)
    torch.manual_seed(attack.seed)
    model = build_model(clean, inits, config)
    seconds_setup = time.perf_counter() - start
    curve, callback = tw.eval_curve(world, model, attack.steps, eval_every, curve_max_per_split, context=parametrize.cached)
    start = time.perf_counter()
    losses = train(model, world.tokenizer, records, attack.steps, attack.lr, attack.batch_size, attack.seed, progress,
                   callback, desc=f"SaLoRA: {attack.kind}")
    seconds = time.perf_counter() - start

    def save(tmp):
        save_checkpoint(checkpoint_from_model(model, info={"step": attack.steps, "attack": asdict(attack)}), tmp / "checkpoint")
        export_checkpoint(tmp / "checkpoint", tmp / "adapter")
        write_json_atomic({"attack": asdict(attack), "salora": asdict(config), "world": world.config.key(),
                           "n_feature_samples": n_feature_samples, "seconds_setup": round(seconds_setup, 1),
                           "seconds": round(seconds, 1), "losses": losses}, tmp / "attack.json")

    tw.save_run(out, save, curve, eval_every, curve_max_per_split)
    return out
