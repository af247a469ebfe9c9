"""The SFT loop's real-model speed-ups change nothing they should not: the same loss, every example once per epoch."""

import itertools
import random

import torch

from safelora_lite.training.sft import IGNORE_INDEX, batch_indices, collate, response_loss


def _one_batch_at_a_time(n, batch_size, rng, steps):
    """The loop's batches before length grouping existed (the toy world's cached runs were drawn this way)."""
    order, out = [], []
    for _ in range(steps):
        batch = []
        while len(batch) < min(batch_size, n):
            if not order:
                order = list(range(n))
                rng.shuffle(order)
            batch.append(order.pop())
        out.append(batch)
    return out


def test_batches_without_grouping_are_drawn_as_before():
    for n, size in ((10, 3), (5, 8), (100, 32)):
        assert list(itertools.islice(batch_indices(n, size, random.Random(1)), 25)) == _one_batch_at_a_time(n, size, random.Random(1), 25)


def test_length_groups_keep_epochs_and_sort_lengths():
    lengths = [random.Random(i).randint(1, 60) for i in range(48)]
    batches = list(itertools.islice(batch_indices(48, 8, random.Random(0), lengths, length_groups=6), 6))  # one epoch
    assert sorted(i for b in batches for i in b) == list(range(48))
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spans) < sum(max(lengths[i] for i in b) - min(lengths[i] for i in b)
                            for b in _one_batch_at_a_time(48, 8, random.Random(0), 6))  # less padding than random batches


def test_response_loss_equals_the_full_loss():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    features = [{"input_ids": list(range(3, 3 + n)), "labels": [IGNORE_INDEX] * p + list(range(3 + p, 3 + n))}
                for n, p in ((9, 4), (6, 5), (12, 2))]
    batch = collate(features, pad_token_id=0)
    full = model(**batch).loss
    ours = response_loss(model, batch)
    assert torch.allclose(ours, full, rtol=1e-5, atol=1e-6)
    ours.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None
