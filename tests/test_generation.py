"""Greedy generation: the tokens every prompt of a batch starts with are run once, and change no answer."""

import pytest

from safelora_lite.evaluation.generation import MIN_SHARED_PREFIX, generate, shared_prefix
from safelora_lite.training.sft import prompt_ids


def test_shared_prefix_leaves_every_row_a_token_of_its_own():
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter row keeps its last token
    assert shared_prefix([[7, 8, 9]]) == 2
    assert shared_prefix([[1, 2], [3, 2]]) == 0


@pytest.mark.real_model
def test_a_chat_templates_shared_prefix_run_once_changes_no_answer(real_base):
    """SmolLM2's system prompt: its keys and values computed once per batch and copied to every row, each row's
    padding after them, give every prompt the answer it gets alone, whole, with no cache given."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    import safelora_lite.worlds.real as real

    tokenizer = AutoTokenizer.from_pretrained(real_base)
    model = LlamaForCausalLM.from_pretrained(real_base, dtype=torch.float32)
    records = real.eval_records(max_per_split=2) + real.eval_records(max_per_split=2, part="natural")
    prompts = [r["prompt"] for r in records]
    rows = [prompt_ids(tokenizer, p) for p in prompts]
    assert shared_prefix(rows) >= MIN_SHARED_PREFIX and len(set(map(len, rows))) > 3  # a long shared start, lengths differ
    together = generate(model, tokenizer, prompts, max_new_tokens=12)
    alone = [generate(model, tokenizer, [p], max_new_tokens=12, share_prefix=False)[0] for p in prompts]
    assert together == alone and len(set(together)) > 3
