"""Self-checking exercises for notebooks 07-11, on toy tensors (seconds, no training).

Each exercise is registered with `exercises.register(key, question, make_inputs, reference)`; the reference
calls the library where the library has the computation, so the exercise checks the learner against the code
the notebooks use. Worked solutions are in lessons/solutions/sNN_<stem>.py; tests/test_exercises.py runs them.
Library modules are imported inside the references, so importing this module stays cheap.
"""

import torch

from safelora_lite.course.exercises.registry import generator, register


# --- notebook 07: comparison ------------------------------------------------------------------------

def _pareto_inputs() -> dict:
    return {"points": {"lora": [0.05, 0.92], "safe_lora": [0.60, 0.10], "zero": [0.62, 0.10], "salora": [0.40, 0.85],
                       "fusion": [0.70, 0.80], "splora": [0.30, 0.80]}}


def _pareto_front(points):
    from safelora_lite.comparison.protocol import pareto_front

    return pareto_front({name: tuple(p) for name, p in points.items()})


register(
    "07.pareto_front",
    "points maps a method to [refusal rate, task accuracy] (invented numbers; both: higher is better). Which methods are on the "
    "Pareto front (no other method at least as good on both and better on one)? A list in input order.",
    _pareto_inputs,
    _pareto_front,
)


# --- notebooks 09 and 10: scale ---------------------------------------------------------------------

TINYLLAMA = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
             "num_key_value_heads": 4, "vocab_size": 32000}
LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32000}


def _v_shape(config):
    from safelora_lite.training.memory_plan import module_dims

    d_in, d_out = module_dims(config)["v_proj"]
    return [d_out, d_in]


register(
    "09.v_proj_shape",
    "config is TinyLlama-1.1B's (grouped-query attention: 32 heads, 4 key/value heads). What is the shape "
    "[d_out, d_in] of a v_proj weight? (So: what shape do V, B and C B have there?)",
    lambda: {"config": dict(TINYLLAMA)},
    _v_shape,
)


def _lora_count(config, r, target_modules):
    from safelora_lite.training.memory_plan import lora_parameters

    return lora_parameters(config, r, target_modules)


def _lora_state_bytes(config, r, target_modules):
    from safelora_lite.training.memory_plan import plan

    p = plan(config, rank=r, target_modules=tuple(target_modules))
    return p.lora + p.gradients + p.optimizer


_SCALE_INPUTS = lambda: {"config": dict(LLAMA2_7B), "r": 8, "target_modules": ["q_proj", "v_proj"]}

register(
    "10.lora_parameters",
    "config is Llama-2-7B's. How many trainable parameters does a LoRA of rank r on q_proj and v_proj of every "
    "layer have? (r (d_in + d_out) per module; an int.)",
    _SCALE_INPUTS,
    _lora_count,
)

register(
    "10.lora_state_bytes",
    "Training keeps the LoRA parameters, their gradients and AdamW's two moments, all in fp32. How many bytes "
    "is that for the same LoRA? (an int; compare with ~13.5 GB of bf16 weights.)",
    _SCALE_INPUTS,
    _lora_state_bytes,
)


# --- notebook 11: beyond --------------------------------------------------------------------------------

def _lox_inputs() -> dict:
    g = generator(100)
    w_base = torch.randn(6, 6, generator=g)
    return {"w_base": w_base, "w_aligned": w_base + 0.1 * torch.randn(6, 6, generator=g), "alpha": 0.5, "k": 2}


def _lox_weight(w_base, w_aligned, alpha, k):
    from safelora_lite.methods.lox import extrapolate

    return extrapolate(w_base, w_aligned, alpha, k)[0]  # W_aligned + alpha * rank_k(W_aligned - W_base)


register(
    "11.lox_weight",
    "LoX extrapolates the alignment before fine-tuning: W <- W_aligned + alpha * rank_k(W_aligned - W_base), "
    "rank_k the truncated SVD. Return the new 6 x 6 weight for the given w_base, w_aligned, alpha and k.",
    _lox_inputs,
    _lox_weight,
)


def _shaping_inputs() -> dict:
    return {"ce": torch.tensor([2.1, 0.4, 1.3, 3.0, 0.2]), "kl": torch.tensor([0.5, 0.1, 0.9, 1.5, 0.0]),
            "w": torch.tensor([1.0, 1.0, 0.2, 0.0, 0.9]), "beta": 0.5}


def shaped_loss(ce, kl, w, beta):
    """mean_t [w_t CE_t + (1 - w_t) beta KL_t], as safelora_lite.methods.shaping: safe tokens learn, flagged ones stay near the reference."""
    return float((w * ce + (1 - w) * beta * kl).mean())


register(
    "11.shaped_loss",
    "Token-level safety shaping: per response token t, cross-entropy ce[t], KL to the reference model kl[t], "
    "a guardrail's safety weight w[t] in [0, 1]. Return the loss, the mean over tokens of "
    "w_t CE_t + (1 - w_t) beta KL_t (a float).",
    _shaping_inputs,
    shaped_loss,
)
