"""Token-level safety shaping: learn the safe tokens, pull the unsafe ones back to the aligned model.

References:
- Peng et al., "Shape it Up! Restoring LLM Safety during Finetuning", 2025 (STAR-DSS: dynamic
  safety shaping guided by a guardrail's token-level Safety Trajectory Assessment of Response).

Per response token t of a fine-tuning example, with w_t the guardrail's safety weight of the
partial response y_<=t (guardrail.py), pi_theta the LoRA model and pi_ref the frozen aligned model
(the same PeftModel with its adapter disabled, so no second copy is held):

    CE_t = -log pi_theta(y_t | x, y_<t)
    KL_t = KL(pi_ref(. | x, y_<t) || pi_theta(. | x, y_<t))        over the whole vocabulary
    loss = sum_t [ w_t * CE_t + (1 - w_t) * beta * KL_t ] / (number of response tokens)

Safe tokens (w_t ~ 1) are learnt as usual; tokens the guardrail flags (w_t ~ 0) are not imitated
but kept where the aligned model would be. beta = 0 only drops the flagged tokens' imitation.

Python:  `train_shaped_lora(world, attack, guardrail, beta=1.0)` -> a PEFT adapter folder (cached),
         evaluated like any attack with `world.evaluate(folder)`.
"""

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from safelora_lite.cache import cache_key
from safelora_lite.device import limit_threads
from safelora_lite.errors import InputError
from safelora_lite.outputs import cache_entry
from safelora_lite.records import write_json_atomic
from safelora_lite.training.sft import IGNORE_INDEX, encode_records, train

REPORT_NAME = "shaping.json"


def shaped_loss(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                beta: float) -> tuple[torch.Tensor, dict]:
    """The shaping loss of one batch and its parts (mean CE and KL over response tokens).

    logits, ref_logits: (batch, seq, vocab); labels, weights: (batch, seq), aligned with the input
    (position t predicts labels[t + 1], as in transformers' causal LM loss).
    """
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)  # (batch, seq-1, vocab), log pi_theta
    ref_logp = F.log_softmax(ref_logits[:, :-1].float(), dim=-1)  # (batch, seq-1, vocab), log pi_ref
    target = labels[:, 1:]  # (batch, seq-1)
    w = weights[:, 1:].float()  # (batch, seq-1), w_t
    mask = target != IGNORE_INDEX
    ce = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (batch, seq-1), CE_t
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)  # (batch, seq-1), KL_t
    per_token = w * ce + (1.0 - w) * beta * kl
    n = mask.sum().clamp(min=1)
    loss = (per_token * mask).sum() / n
    with torch.no_grad():
        parts = {"ce": float((ce * mask).sum() / n), "kl": float((kl * mask).sum() / n), "mean_weight": float((w * mask).sum() / n)}
    return loss, parts


class ShapedObjective(nn.Module):
    """Wraps a PeftModel so that `training.train` optimises the shaping loss instead of plain CE.

    forward(input_ids, attention_mask, labels) scores the batch's partial responses with the
    guardrail, runs the model with and without its adapter, and returns an object with `.loss`.
    """

    def __init__(self, peft_model, guardrail, beta: float):
        super().__init__()
        self.model = peft_model
        self.guardrail = guardrail  # frozen: its parameters have requires_grad = False
        self.beta = beta
        self.parts: list[dict] = []

    def forward(self, input_ids, attention_mask, labels):
        weights = self.guardrail.batch_weights(input_ids, labels)  # (batch, seq), w_t; 1 off the response
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # (batch, seq, vocab)
        with torch.no_grad(), self.model.disable_adapter():
            ref_logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # pi_ref
        loss, parts = shaped_loss(logits, ref_logits, labels, weights, self.beta)
        self.parts.append(parts)
        return SimpleNamespace(loss=loss)


def guardrail_agreement(guardrail, tokenizer, records: list[dict]) -> dict:
    """How the guardrail's weights on the training data compare with the ground truth (reported, never used).

    Ground truth: every token of a harmful record's answer is unsafe, every other token safe.
    """
    from safelora_lite.methods.guardrail import split_context

    unsafe_w, safe_w = [], []
    for record, encoded in zip(records, encode_records(tokenizer, records)):
        context, response = split_context(encoded)
        w = guardrail.safety_weights(context, response).tolist()
        (unsafe_w if record["kind"] == "harmful" else safe_w).extend(w)

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    return {"mean_weight_unsafe_tokens": mean(unsafe_w), "mean_weight_safe_tokens": mean(safe_w),
            "missed_unsafe_tokens": mean([float(w >= 0.5) for w in unsafe_w]),  # learnt as if safe
            "flagged_safe_tokens": mean([float(w < 0.5) for w in safe_w]),  # pulled back though safe
            "n_unsafe_tokens": len(unsafe_w), "n_safe_tokens": len(safe_w)}


def train_shaped_lora(world, attack, guardrail, beta: float = 1.0, progress: bool = True) -> Path:
    """LoRA-fine-tune the aligned model on the attack's data with the shaping loss; return the adapter folder.

    Same data, LoRA config, steps, learning rate and seed as `world.train_attack(attack)`:
    only the loss differs. Cached under the world's folder by (attack, guardrail, beta).
    """
    from peft import get_peft_model

    if not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise InputError(f"beta {beta!r} is not a finite number >= 0.", "use a KL weight such as 1.0.")
    key = cache_key({"attack": attack.key(), "guardrail": getattr(guardrail, "key", None), "beta": float(beta)})
    out = Path(world.root) / "shaped" / f"{attack.kind}-{key}"
    if (out / REPORT_NAME).is_file():
        return out
    limit_threads()
    records = world.attack_records(attack)
    model = world.load_model("aligned")
    torch.manual_seed(attack.seed)
    model = get_peft_model(model, attack.run.peft_config())
    objective = ShapedObjective(model, guardrail, float(beta))
    options = {k: v for k, v in world.train_options.items() if k != "response_logits"}  # the KL term needs every logit
    start = time.perf_counter()
    losses = train(objective, world.tokenizer, records, attack.steps, attack.lr, attack.batch_size, attack.seed,
                   progress, desc=f"shaped: {attack.kind}", **options)
    seconds = time.perf_counter() - start
    report = {"attack": asdict(attack), "beta": float(beta), "guardrail": getattr(guardrail, "key", None),
              "seconds": round(seconds, 1), "losses": losses, "parts_last": objective.parts[-1],
              "guardrail_on_attack_data": guardrail_agreement(guardrail, world.tokenizer, records)}
    with cache_entry(out) as tmp:
        model.save_pretrained(tmp)
        write_json_atomic(report, tmp / REPORT_NAME)
    return out


def load_report(adapter_dir) -> dict:
    """The shaping report saved beside a shaped adapter."""
    path = Path(adapter_dir) / REPORT_NAME
    if not path.is_file():
        raise InputError(f"{path} not found.", "train the adapter with train_shaped_lora.")
    return json.loads(path.read_text())


def evaluate_shaped(world, attack, beta: float = 1.0, guardrail_config=None, max_per_split: int | None = None,
                    progress: bool = False) -> dict:
    """The comparison protocol's entry point: the four rates after the attack trained with safety shaping
    (the world's guardrail, `guardrail.GuardrailConfig()` by default)."""
    from safelora_lite.methods.guardrail import GuardrailConfig, train_guardrail

    guard = train_guardrail(world, guardrail_config or GuardrailConfig(), progress=progress)
    folder = train_shaped_lora(world, attack, guard, beta, progress=progress)
    return world.evaluate(folder, max_per_split=max_per_split)
