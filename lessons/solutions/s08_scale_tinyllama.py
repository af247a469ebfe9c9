"""Worked solution to notebook 08's exercise (TinyLlama's shapes). Try it yourself first!

tests/test_exercises.py runs every solution against its check.
"""


def v_proj_shape(config):
    head_dim = config["hidden_size"] // config["num_attention_heads"]  # 2048 / 32 = 64
    d_out = head_dim * config["num_key_value_heads"]  # grouped-query attention: 4 k/v heads -> 256
    return [d_out, config["hidden_size"]]  # (256, 2048): V, B and C B all have 256 rows


SOLUTIONS = {"08.v_proj_shape": v_proj_shape}
