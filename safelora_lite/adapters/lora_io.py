"""Read and write PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`).

Every post-hoc method reads an adapter with `read_adapter`, changes some modules, and writes a
NEW directory with `write_adapter`, which never touches an existing path and writes atomically.

Naming (used in every report): a module's `name` is its state-dict key without the
`.lora_A.weight` / `.lora_B.weight` suffix, e.g. `base_model.model.model.layers.0.self_attn.q_proj`;
its `target` is the weight it adapts in the base checkpoint, e.g. `model.layers.0.self_attn.q_proj.weight`.
"""

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from safelora_lite.adapters.weights import damaged, read_json
from safelora_lite.errors import InputError
from safelora_lite.maths.projection import as_float32
from safelora_lite.outputs import new_output_dir

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
_SUFFIX = re.compile(r"\.lora_([AB])(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class LoraModule:
    """One LoRA module: dW = scaling * B @ A."""

    name: str
    lora_a: torch.Tensor  # (r, d_in), A in the paper
    lora_b: torch.Tensor  # (d_out, r), B in the paper
    scaling: float  # s = alpha / r (alpha / sqrt(r) with rsLoRA)

    @property
    def rank(self) -> int:
        return self.lora_a.shape[0]

    @property
    def target(self) -> str:
        """The key of the adapted weight in the base model's checkpoint."""
        return module_target(self.name)

    def delta(self) -> torch.Tensor:
        """The dense update s * B @ A in fp32, shape (d_out, d_in). For tests and small modules."""
        return self.scaling * (self.lora_b.float() @ self.lora_a.float())


@dataclass(frozen=True)
class LoraAdapter:
    """A PEFT LoRA adapter in memory: its config, its modules (in file order), other tensors."""

    config: dict
    modules: dict[str, LoraModule]
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model_name_or_path")

    def with_modules(self, modules: dict[str, LoraModule]) -> "LoraAdapter":
        """A copy with some modules replaced (same names); the input adapter is never mutated."""
        unknown = set(modules) - set(self.modules)
        if unknown:
            raise InputError(f"unknown module names: {sorted(unknown)[:3]}.", "use names from the adapter's report.")
        return replace(self, modules={n: modules.get(n, m) for n, m in self.modules.items()})


def module_target(name: str) -> str:
    """`base_model.model.X` -> `X.weight`, the weight key in a transformers checkpoint."""
    inner = name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name
    return f"{inner}.weight"


def _pattern_value(patterns: dict, module_path: str, default):
    """peft's rule for rank_pattern / alpha_pattern: the first key that matches the end of the path."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module_path):
            return value
    return default


def lora_scaling(config: dict, module_path: str, rank: int) -> float:
    """s for one module, following peft: alpha / r, or alpha / sqrt(r) with use_rslora."""
    alpha = _pattern_value(config.get("alpha_pattern"), module_path, config.get("lora_alpha", 8))
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def read_adapter(path: str | os.PathLike) -> LoraAdapter:
    """Load a PEFT LoRA adapter directory; DoRA, embedding LoRA, non-LoRA adapters, damaged files and
    NaN / Inf values are refused."""
    path = Path(path)
    config_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not config_file.is_file():
        raise InputError(f"{config_file} not found: {path} is not a PEFT adapter directory.", "point --adapter at the folder saved by save_pretrained.")
    if not weights_file.is_file():
        hint = " (found adapter_model.bin; re-save it with safetensors)" if (path / "adapter_model.bin").exists() else ""
        raise InputError(f"{weights_file} not found{hint}.", "save the adapter with save_pretrained(safe_serialization=True).")
    config = read_json(config_file)
    if config.get("peft_type", "LORA") != "LORA":
        raise InputError(f"{path} is a {config.get('peft_type')} adapter, not LoRA.", "use a LoRA adapter.")
    if config.get("use_dora"):
        raise InputError(f"{path} is a DoRA adapter: its update is not s * B @ A.", "use a plain LoRA adapter.")
    try:
        tensors = load_file(str(weights_file))
    except SafetensorError as error:
        raise damaged(weights_file, error) from None
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    extra = {}
    for key, tensor in tensors.items():
        if "lora_embedding_" in key or "lora_magnitude_vector" in key:
            raise InputError(f"{path} holds {key}: embedding LoRA and DoRA are not supported.", "target linear layers only.")
        match = _SUFFIX.search(key)
        if match:
            pairs.setdefault(key[: match.start()], {})[match.group(1)] = tensor
        else:
            extra[key] = tensor
    modules = {}
    for name, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise InputError(f"module {name} has lora_{next(iter(pair))} but not its partner.", "re-save the adapter.")
        a, b = pair["A"], pair["B"]
        if a.dim() != 2 or b.dim() != 2 or b.shape[1] != a.shape[0]:
            raise InputError(f"module {name}: lora_B {tuple(b.shape)} and lora_A {tuple(a.shape)} do not form B @ A.")
        for which, tensor in (("lora_A", a), ("lora_B", b)):
            as_float32(tensor, f"{which} of module {name} in {weights_file}")  # NaN / Inf is refused here, for every command
        target_path = module_target(name)[: -len(".weight")]
        modules[name] = LoraModule(name, a, b, lora_scaling(config, target_path, a.shape[0]))
    if not modules:
        raise InputError(f"{weights_file} holds no LoRA modules.", "check that this is a LoRA adapter.")
    return LoraAdapter(config=config, modules=modules, extra_tensors=extra)


def config_for_modules(config: dict, modules: dict[str, LoraModule]) -> dict:
    """Rewrite r / lora_alpha / rank_pattern / alpha_pattern so that peft rebuilds each module's rank and s."""
    ranks = Counter(m.rank for m in modules.values())
    r = ranks.most_common(1)[0][0]
    rslora = bool(config.get("use_rslora"))

    def alpha_for(m: LoraModule) -> float:
        return m.scaling * (math.sqrt(m.rank) if rslora else m.rank)

    alphas = Counter(round(alpha_for(m), 10) for m in modules.values())
    alpha = alphas.most_common(1)[0][0]
    rank_pattern, alpha_pattern = {}, {}
    for m in modules.values():
        key = re.escape(m.target[: -len(".weight")])
        if m.rank != r:
            rank_pattern[key] = m.rank
        if round(alpha_for(m), 10) != alpha:
            alpha_pattern[key] = alpha_for(m)
    alpha = int(alpha) if float(alpha).is_integer() else alpha
    return {**config, "r": r, "lora_alpha": alpha, "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern}


def write_adapter(adapter: LoraAdapter, out: str | os.PathLike, files: dict[str, dict] | None = None, rewrite_config: bool = False) -> Path:
    """Write `adapter` to the NEW directory `out` in PEFT format, plus JSON `files` (e.g. a report).

    rewrite_config=True recomputes r / alpha and their patterns from the modules (needed when a
    method changed ranks or scalings); otherwise the config is written as it was read.
    """
    config = config_for_modules(adapter.config, adapter.modules) if rewrite_config else dict(adapter.config)
    tensors = dict(adapter.extra_tensors)
    for name, m in adapter.modules.items():
        tensors[f"{name}.lora_A.weight"] = m.lora_a.contiguous()
        tensors[f"{name}.lora_B.weight"] = m.lora_b.contiguous()
    with new_output_dir(out) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for filename, data in (files or {}).items():
            (tmp / filename).write_text(json.dumps(data, indent=2) + "\n")
    return Path(out)


def adapter_from_peft_model(model, adapter_name: str = "default") -> LoraAdapter:
    """The LoRA modules of an in-memory PeftModel, as an adapter (tensors detached and cloned)."""
    from peft import get_peft_model_state_dict

    config = model.peft_config[adapter_name].to_dict()
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    tmp_modules = {}
    extra = {}
    for key, tensor in state.items():
        match = _SUFFIX.search(key)
        if match:
            tmp_modules.setdefault(key[: match.start()], {})[match.group(1)] = tensor.detach().clone().cpu()
        else:
            extra[key] = tensor.detach().clone().cpu()
    modules = {
        name: LoraModule(name, p["A"], p["B"], lora_scaling(config, module_target(name)[: -len(".weight")], p["A"].shape[0]))
        for name, p in tmp_modules.items()
    }
    return LoraAdapter(config=config, modules=modules, extra_tensors=extra)


def load_adapter_into_peft_model(adapter: LoraAdapter, model, adapter_name: str = "default") -> None:
    """Copy an adapter's tensors into a PeftModel built with the same config (shapes must agree)."""
    from peft import set_peft_model_state_dict

    state = dict(adapter.extra_tensors)
    for name, m in adapter.modules.items():
        state[f"{name}.lora_A.weight"] = m.lora_a
        state[f"{name}.lora_B.weight"] = m.lora_b
    result = set_peft_model_state_dict(model, state, adapter_name=adapter_name)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise InputError(f"the model has no LoRA module for {missing[0]}.", "build the PeftModel with the adapter's own config.")
