"""A SaLoRA training checkpoint: per module A, B, A0, B0 and V_s, saved as safetensors with its config.

The checkpoint is what `safelora-lite salora-export` reads; it restores the training-time model too.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from safelora_lite.adapters.lora_io import PEFT_PREFIX
from safelora_lite.outputs import new_output_dir
from safelora_lite.errors import InputError
from safelora_lite.maths.projection import as_float32
from safelora_lite.methods.salora.model import ModuleInit, SaLoRAConfig, apply_c, build_model, lora_layers, raw_lora_b

CONFIG_NAME = "salora_config.json"
WEIGHTS_NAME = "salora_state.safetensors"
FORMAT = "safelora-lite/salora-checkpoint"


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
