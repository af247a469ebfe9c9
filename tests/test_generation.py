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


def test_a_roomy_layer_holds_what_concatenation_would():
    """Keys and values written in place equal the concatenated ones, through a full buffer's growth, a repeat
    over the batch and a selection of rows."""
    import torch

    from safelora_lite.evaluation.prefix_decoding import RoomyLayer

    layer, keys, values = RoomyLayer(room=2), [], []
    for step, new in enumerate((3, 1, 1, 2, 1)):  # the fourth update outgrows the buffer
        k, v = torch.randn(1 if step == 0 else 4, 2, new, 5), torch.randn(1 if step == 0 else 4, 2, new, 5)
        if step == 1:
            layer.batch_repeat_interleave(4)
            keys, values = [t.repeat_interleave(4, dim=0) for t in keys], [t.repeat_interleave(4, dim=0) for t in values]
        got_k, got_v = layer.update(k, v)
        keys, values = keys + [k], values + [v]
        assert torch.equal(got_k, torch.cat(keys, dim=-2)) and torch.equal(got_v, torch.cat(values, dim=-2))
    assert layer.get_seq_length() == 8
    layer.batch_select_indices(torch.tensor([3, 1]))
    assert torch.equal(layer.keys, torch.cat(keys, dim=-2)[[3, 1]]) and layer.values.shape == (2, 2, 8, 5)


def test_greedy_after_prefix_gives_each_row_its_answer_alone():
    """A tiny random Llama: rows that share a start, each padded after it, get the tokens `generate` gives each row
    alone, while rows that end leave the batch."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from safelora_lite.evaluation.prefix_decoding import greedy_after_prefix

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    start, pad, new = list(range(3, 13)), 0, 10
    rows = [start + torch.randint(3, 40, (n,)).tolist() for n in (1, 4, 2, 6, 3, 5, 2)]

    def alone(eos):
        return [model.generate(torch.tensor([r]), max_new_tokens=new, do_sample=False, eos_token_id=eos,
                               pad_token_id=pad)[0, len(r):].tolist() for r in rows]

    free = alone(None)  # an end token that some rows reach early and others never: the commonest token
    eos = max(range(40), key=lambda t: sum(answer[1:].count(t) for answer in free))
    expected = [answer + [pad] * (new - len(answer)) for answer in alone(eos)]
    assert sum(eos in answer[:-2] for answer in expected) >= 2 and any(eos not in answer for answer in expected)
    width = max(map(len, rows))
    input_ids = torch.tensor([start + [pad] * (width - len(r)) + r[len(start):] for r in rows])
    mask = torch.tensor([[1] * len(start) + [0] * (width - len(r)) + [1] * (len(r) - len(start)) for r in rows])
    assert greedy_after_prefix(model, input_ids, mask, len(start), new, eos, pad).tolist() == expected
