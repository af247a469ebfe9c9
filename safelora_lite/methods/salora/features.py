"""Collect each target module's INPUT activations at response tokens, from the clean aligned model.

References:
- Li et al., "SaLoRA: Safety-Alignment Preserved Low-Rank Adaptation", ICLR 2025. Its public code
  hooks each target module, keeps the module's input at positions whose label is not -100 (the
  response tokens), on 128 harmful prompts with refusals (safety) and 128 task samples (task).

All hooks are registered at once and removed afterwards, so every layer's features come from the
same clean model (the reference code collects a later layer's task features after earlier layers
were already replaced by W_res; at init that model computes the same function only if the LoRA
branch is active, see docs/architecture.md section 2).
"""

from collections.abc import Iterable

import torch

from safelora_lite.errors import InputError

IGNORE_INDEX = -100


def module_key(name: str) -> str:
    """A transformers module path, also for a model wrapped by peft: drop `base_model.model.` and `.base_layer`."""
    if name.startswith("base_model.model."):
        name = name[len("base_model.model."):]
    return name.removesuffix(".base_layer")


def find_target_modules(model: torch.nn.Module, target_modules: Iterable[str]) -> dict[str, torch.nn.Linear]:
    """`{module path: nn.Linear}` for every Linear whose last name part is in `target_modules` (peft's rule)."""
    targets = set(target_modules)
    if not targets:
        raise InputError("target_modules is empty.", "name the linear layers to adapt, e.g. ['q_proj', 'v_proj'].")
    found = {}
    for name, module in model.named_modules():
        if "lora_" in name:
            continue
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in targets:
            found[module_key(name)] = module
    missing = targets - {k.split(".")[-1] for k in found}
    if missing:
        raise InputError(f"the model has no Linear module named {sorted(missing)[0]!r}.", "use names that exist in the model, e.g. q_proj, v_proj.")
    return found


@torch.no_grad()
def collect_module_inputs(
    model: torch.nn.Module,
    batches: Iterable[dict],
    target_modules: Iterable[str],
    max_tokens: int | None = None,
) -> dict[str, torch.Tensor]:
    """X per module: `{module path: (n_tokens, d_in) fp32}`, the module's input at response tokens only.

    `batches` yields dicts with `input_ids`, `attention_mask` and `labels` (-100 outside responses);
    a token counts when its own label is not -100, as in the reference code. At most `max_tokens`
    rows are kept per module (the first ones, so the result is deterministic).
    """
    modules = find_target_modules(model, target_modules)
    device = next(model.parameters()).device
    collected: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    counts = {name: 0 for name in modules}
    mask_holder: dict[str, torch.Tensor] = {}

    def hook_for(name):
        def hook(_module, args):
            x = args[0]  # (batch, seq, d_in)
            if max_tokens is not None and counts[name] >= max_tokens:
                return
            rows = x[mask_holder["mask"]].float().cpu()  # (n_response_tokens, d_in)
            collected[name].append(rows)
            counts[name] += rows.shape[0]
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in modules.items()]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            if "labels" not in batch:
                raise InputError("a feature batch has no 'labels'.", "mark response tokens with their ids and everything else with -100.")
            mask_holder["mask"] = (batch["labels"] != IGNORE_INDEX).to(device)
            model(input_ids=batch["input_ids"].to(device), attention_mask=batch.get("attention_mask", torch.ones_like(batch["input_ids"])).to(device))
            if max_tokens is not None and min(counts.values()) >= max_tokens:
                break
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = {}
    for name, parts in collected.items():
        x = torch.cat(parts) if parts else torch.empty(0)
        if x.shape[0] == 0:
            raise InputError("the feature batches hold no response tokens (every label is -100).", "pass samples whose responses are labelled.")
        out[name] = x[:max_tokens] if max_tokens is not None else x
    return out
