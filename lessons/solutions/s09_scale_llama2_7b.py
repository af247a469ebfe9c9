"""Worked solutions to notebook 09's exercises (Llama-2-7B's LoRA budget). Try them yourself first!

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
    "09.lora_parameters": lora_parameters,
    "09.lora_state_bytes": lora_state_bytes,
}
