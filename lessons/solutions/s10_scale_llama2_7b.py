"""Worked solutions to notebook 10's exercises (Llama-2-7B's LoRA budget). Try them yourself first!

tests/test_exercises.py runs every solution against its check.
"""


def lora_parameters(config, r, target_modules):
    h = config["hidden_size"]
    kv = h // config["num_attention_heads"] * config["num_key_value_heads"]
    dims = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h)}  # (d_in, d_out)
    per_layer = sum(r * (d_in + d_out) for d_in, d_out in (dims[m] for m in target_modules))  # A: r x d_in, B: d_out x r
    return config["num_hidden_layers"] * per_layer


def lora_state_bytes(config, r, target_modules):
    n = lora_parameters(config, r, target_modules)
    return n * 4 * (1 + 1 + 2)  # fp32 parameters + gradients + AdamW exp_avg and exp_avg_sq: 16 bytes each


SOLUTIONS = {
    "10.lora_parameters": lora_parameters,
    "10.lora_state_bytes": lora_state_bytes,
}


# --- the inline exercises of notebook 10, section 7 (checked in the notebook with `compare`) -------

def weights_4bit_gib():
    total, kept_16bit = 6_738_415_616, 262_410_240  # all parameters; embeddings + lm_head + norms
    linear = (total - kept_16bit) * (0.5 + 1 / 64)  # NF4: half a byte, plus an 8-bit absmax per 64 weights
    return (linear + (kept_16bit + 4096 * 11008) * 2) / 2**30  # + one projection dequantized to fp16 at a time


def all_c_gib():
    return 2 * 32 * 4096 * 4096 * 4 / 2**30  # q_proj and v_proj, 32 layers, one 4096 x 4096 fp32 C each: 4 GiB


NOTEBOOK_SOLUTIONS = {1: weights_4bit_gib, 2: all_c_gib}  # answer_4bit_gib = weights_4bit_gib(), ...
