"""Worked solutions to notebook 08's exercises (section 8, "they check themselves"). Try them yourself first!

These exercises work on the notebook's own objects: `world` (the real small world, `safelora_lite.worlds.real`)
and `adapter` (a LoraAdapter, from `safelora_lite.adapters.lora_io.read_adapter`). Paste a function into the notebook and call
it, e.g. `answer_1 = prompt_tokens(world)`. tests/test_lessons.py runs each one against the library's check.
"""

import torch

import safelora_lite as sl
from safelora_lite.adapters.weights import Checkpoint


def prompt_tokens(world):
    chat = [{"role": "user", "content": world.split("benign_test")[0]["prompt"]}]
    ids = world.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids  # transformers 5 returns a dict
    return len(ids)  # the system prompt the template adds, the request, and the assistant's header


def top_eigenvalue_first(world, adapter):
    module = next(iter(adapter.modules.values()))
    base, aligned = Checkpoint(world.base_dir), Checkpoint(world.aligned_dir)
    v = sl.alignment_matrix(base.get(module.target).float(), aligned.get(module.target).float())  # (d_out, d_in), V
    sigma_1 = torch.linalg.matrix_norm(v, ord=2)  # the largest singular value of V
    return float(sigma_1 ** 2 / torch.linalg.matrix_norm(v))  # C = V V^T / ||V||_F has eigenvalues sigma_i^2 / ||V||_F


NOTEBOOK_SOLUTIONS = {1: prompt_tokens, 2: top_eigenvalue_first}

SOLUTIONS = {}  # no registered exercises for notebook 08: its checks are inline (see tests/test_lessons.py)
