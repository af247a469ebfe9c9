"""Worked solution to notebook 09's exercise (TinyLlama's shapes). Try it yourself first!

tests/test_exercises.py runs every solution against its check.
"""


def v_proj_shape(config):
    head_dim = config["hidden_size"] // config["num_attention_heads"]  # 2048 / 32 = 64
    d_out = head_dim * config["num_key_value_heads"]  # grouped-query attention: 4 k/v heads -> 256
    return [d_out, config["hidden_size"]]  # (256, 2048): V, B and C B all have 256 rows


SOLUTIONS = {"09.v_proj_shape": v_proj_shape}


# --- the inline exercises of notebook 09, section 7 (checked in the notebook with `compare`) -------

def weights_gib():
    return 1_100_048_384 * 2 / 2**30  # bf16: 2 bytes per parameter -> about 2.05 GiB


def lora_params():
    r, layers = 8, 22
    q = r * (2048 + 2048)  # A (r x 2048) + B (2048 x r)
    v = r * (2048 + 256)  # A (r x 2048) + B (256 x r): grouped-query attention, 4 k/v heads of 64
    return layers * (q + v)


NOTEBOOK_SOLUTIONS = {1: weights_gib, 2: lora_params}  # answer_weights_gib = weights_gib(), ...
