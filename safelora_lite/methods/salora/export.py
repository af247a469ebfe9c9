"""Export a SaLoRA training checkpoint as an ordinary PEFT LoRA adapter for the UNMODIFIED aligned model.

References:
- Li et al., "SaLoRA: Safety-Alignment Preserved Low-Rank Adaptation", ICLR 2025 (the method);
  docs/architecture.md section 2 (the export: the net change has rank <= 2r).

The training-time model computes (W_res + s C B A) x with W_res = W - s C B0 A0, so against the
aligned W the net change is

    dW = s C B A - s C B0 A0 = s [C B, -C B0] @ [A; A0]        B' (d_out, 2r), A' (2r, d_in)

an ordinary LoRA update of rank 2r with the same s (lora_alpha' = 2r * s). Stock peft or vLLM
serve it on the aligned model: no W_res to swap in.

`safelora-lite salora-export --checkpoint DIR --out DIR` writes OUT/ (adapter_config.json,
adapter_model.safetensors, salora_export_report.json); the checkpoint is only read.
"""

import os
from pathlib import Path

from safelora_lite.adapters.lora_io import LoraAdapter, LoraModule, write_adapter
from safelora_lite.methods.salora.checkpoint import SaLoRACheckpoint, load_checkpoint
from safelora_lite.methods.salora.model import subspace_fraction
from safelora_lite.outputs import check_new_output

REPORT_NAME = "salora_export_report.json"


def export_adapter(checkpoint: SaLoRACheckpoint) -> tuple[LoraAdapter, dict]:
    """The rank-2r PEFT LoRA adapter whose update equals SaLoRA's net change, and a per-module report."""
    from peft import LoraConfig

    cfg = checkpoint.config
    s = cfg.scaling
    rank = 2 * cfg.r
    lora = LoraConfig(r=rank, lora_alpha=rank * s, target_modules=sorted(cfg.target_modules), lora_dropout=0.0,
                      bias="none", task_type="CAUSAL_LM", base_model_name_or_path=checkpoint.info.get("base_model_name_or_path"))
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in lora.to_dict().items()}
    modules, rows = {}, []
    for name, m in checkpoint.modules.items():
        lora_b, lora_a = m.net_factors(s)  # (d_out, 2r), (2r, d_in)
        modules[name] = LoraModule(name=name, lora_a=lora_a.contiguous(), lora_b=lora_b.contiguous(), scaling=s)
        rows.append({"name": name, "rank": rank, "safety_fraction": subspace_fraction(m.v_s, lora_b, lora_a)})
    report = {"method": "salora", "rank": rank, "scaling": s, "safety_rank": cfg.safety_rank,
              "base_model_name_or_path": config.get("base_model_name_or_path"), "modules": rows}
    return LoraAdapter(config=config, modules=modules), report


def export_checkpoint(checkpoint_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Read a SaLoRA checkpoint and write the exported adapter to the NEW directory `out` (checked first)."""
    check_new_output(out, [checkpoint_dir])
    adapter, report = export_adapter(load_checkpoint(checkpoint_dir))
    return write_adapter(adapter, out, files={REPORT_NAME: report}, rewrite_config=True)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("salora-export", help="turn a SaLoRA checkpoint into a PEFT LoRA adapter (rank 2r) for the aligned model")
    parser.add_argument("--checkpoint", required=True, type=Path, help="SaLoRA checkpoint folder (salora_config.json)")
    parser.add_argument("--out", required=True, type=Path, help="new adapter folder (must not exist)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    out = export_checkpoint(args.checkpoint, args.out)
    print(f"wrote {out} (PEFT LoRA adapter for the unmodified aligned model)")
    return 0
