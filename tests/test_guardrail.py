"""The guardrail: per-token weights of partial responses, trained without the attack's labels."""

import pytest
import torch

from safelora_lite.methods import guardrail
from safelora_lite.worlds.toy import tokenizer as toy_tokenizer
from safelora_lite.worlds import toy as toy_world
from safelora_lite.errors import InputError
from safelora_lite.training.sft import IGNORE_INDEX, collate, encode_conversation


@pytest.fixture(scope="module")
def splits():
    return toy_world.load_splits()


@pytest.fixture(scope="module")
def tokenizer(splits):
    return toy_tokenizer.train_tokenizer(toy_tokenizer.corpus(splits))


@pytest.fixture(scope="module")
def small_pairs(splits):
    """A quick training set: every 4th labelled response (both classes stay in)."""
    return guardrail.labelled_responses(splits, harmful_fraction=0.5, seed=0)[::4]


@pytest.fixture(scope="module")
def trained(tokenizer, small_pairs):
    return guardrail.fit_guardrail(tokenizer, small_pairs, guardrail.GuardrailConfig(steps=120, seed=0))


def test_labelled_responses_use_a_seeded_fraction_of_harmful_prompts(splits):
    pairs = guardrail.labelled_responses(splits, harmful_fraction=0.25, seed=3)
    unsafe = [r for r, y in pairs if y == 1]
    assert len(unsafe) == round(0.25 * len(splits["harmful_train"]))
    assert all(r["kind"] == "harmful" for r in unsafe)
    refusals = {r["prompt"] for r, y in pairs if y == 0 and r["kind"] == "harmful"}
    assert refusals == {r["prompt"] for r in unsafe}  # each picked prompt also with its refusal
    assert pairs == guardrail.labelled_responses(splits, harmful_fraction=0.25, seed=3)
    assert pairs != guardrail.labelled_responses(splits, harmful_fraction=0.25, seed=4)
    flipped = guardrail.labelled_responses(splits, harmful_fraction=0.25, seed=3, flip_fraction=0.5)
    assert sum(y for _, y in flipped) == len(unsafe) - round(0.5 * len(unsafe))


def test_guardrail_beats_chance_on_held_out_prompts(tokenizer, splits, trained):
    guard, losses = trained
    assert losses[-1] < losses[0]
    report = guardrail.classify(guard, tokenizer, guardrail.held_out_responses(splits, toy_world.ToyWorld.held_out_refusal))
    assert report["n_unsafe"] == len(splits["harmful_test"])
    # Better than a coin and better than always answering one class, on prompts it never saw.
    assert report["miss_rate"] < 0.5 and report["false_alarm_rate"] < 0.5
    assert report["accuracy"] > report["n_safe"] / (report["n_safe"] + report["n_unsafe"])


def test_safety_weights_score_every_prefix(tokenizer, splits, trained):
    guard, _ = trained
    record = splits["harmful_test"][0]
    context, response = guardrail.split_context(encode_conversation(tokenizer, record["prompt"], record["response"]))
    w = guard.safety_weights(context, response)
    assert w.shape == (len(response),) and bool(((w >= 0) & (w <= 1)).all())
    for t in (0, len(response) // 2, len(response) - 1):  # w_t is the guardrail on the prefix y_<=t
        assert torch.isclose(w[t], 1 - torch.sigmoid(guard([context], [response[: t + 1]]))[0], atol=1e-6)
    assert abs(float(w[-1]) - (1 - guard.unsafe_probability(context, response))) < 1e-6


def test_batch_weights_sit_on_label_positions(tokenizer, splits, trained):
    guard, _ = trained
    records = [splits["harmful_train"][0], splits["task_train"][0], splits["refusal_train"][5]]
    encoded = [encode_conversation(tokenizer, r["prompt"], r["response"]) for r in records]
    batch = collate(encoded, tokenizer.pad_token_id)
    weights = guard.batch_weights(batch["input_ids"], batch["labels"])  # (batch, seq)
    assert weights.shape == batch["labels"].shape
    for i, e in enumerate(encoded):
        context, response = guardrail.split_context(e)
        positions = batch["labels"][i] != IGNORE_INDEX
        torch.testing.assert_close(weights[i][positions], guard.safety_weights(context, response))
        assert bool((weights[i][~positions] == 1).all())


def test_one_class_and_bad_configs_are_refused(tokenizer, splits):
    safe_only = [(r, 0) for r in splits["benign_train"][:5]]
    with pytest.raises(InputError, match="one class"):
        guardrail.fit_guardrail(tokenizer, safe_only, guardrail.GuardrailConfig(steps=1))
    with pytest.raises(InputError):
        guardrail.GuardrailConfig(harmful_fraction=0.0)
    with pytest.raises(InputError):
        guardrail.GuardrailConfig(flip_fraction=1.0)
