"""SaLoRA: a fixed safety module C and a task-informed init; the LoRA update is always s C B A.

References:
- Li et al., "SaLoRA: Safety-Alignment Preserved Low-Rank Adaptation", ICLR 2025, and its public
  code (docs/architecture.md section 2 lists what that code does, with its defaults r=16, alpha=16, r_s=d_t=32).

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

from dataclasses import dataclass

import torch
from torch.nn.utils import parametrize

from safelora_lite.adapters.lora_io import PEFT_PREFIX
from safelora_lite.device import one_thread_if_small
from safelora_lite.errors import InputError
from safelora_lite.methods.salora.features import collect_module_inputs, find_target_modules
from safelora_lite.maths.projection import as_float32, top_left_singular_vectors



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
    with one_thread_if_small(weight):
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
