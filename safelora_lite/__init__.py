"""safelora-lite: keep an LLM's safety alignment while fine-tuning it with LoRA.

The top-level names below are the library's contract (docs/architecture.md).
"""

__version__ = "0.1.0"

from safelora_lite.device import environment_report, pick_device
from safelora_lite.errors import InputError
from safelora_lite.maths.projection import alignment_matrix, projection_similarity, safe_lora_projector, select_modules
from safelora_lite.course.exercises import check, exercise_inputs
from safelora_lite.records import record_results
from safelora_lite.adapters.controls import random_modules, zero_modules
from safelora_lite.methods.safelora import apply_projection, safe_lora, safe_lora_dir, safe_lora_peft_model, score_adapter
from safelora_lite.methods.fusion import fuse, fuse_adapters, fuse_peft_model
from safelora_lite.methods.fusion_safety import SafetyAdapterConfig, sweep_fusion, train_safety_adapter
from safelora_lite.methods.splora import prune_modules, select_pruned, splora_dir, splora_peft_model
from safelora_lite.methods.salora.model import SaLoRAConfig, salora_model
from safelora_lite.methods.salora.export import export_checkpoint as salora_export
from safelora_lite.methods.lox import evaluate_lox, extrapolate_checkpoint
from safelora_lite.methods.shaping import evaluate_shaped, train_shaped_lora

__all__ = [
    "evaluate_lox",
    "evaluate_shaped",
    "extrapolate_checkpoint",
    "train_shaped_lora",
    "SaLoRAConfig",
    "salora_export",
    "salora_model",
    "SafetyAdapterConfig",
    "fuse",
    "fuse_adapters",
    "fuse_peft_model",
    "sweep_fusion",
    "train_safety_adapter",
    "apply_projection",
    "prune_modules",
    "select_pruned",
    "splora_dir",
    "splora_peft_model",
    "random_modules",
    "safe_lora",
    "safe_lora_dir",
    "safe_lora_peft_model",
    "score_adapter",
    "zero_modules",
    "InputError",
    "alignment_matrix",
    "check",
    "exercise_inputs",
    "environment_report",
    "pick_device",
    "projection_similarity",
    "record_results",
    "safe_lora_projector",
    "select_modules",
]
