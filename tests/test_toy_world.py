"""The toy world's API: checkpoints, evaluation, attacks, the trainer and its encoding."""

import json
import shutil

import pytest
import torch

from safelora_lite.worlds import toy as tw
from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.errors import InputError
from safelora_lite.evaluation.generation import RATES
from safelora_lite.training.runs import load_curve
from safelora_lite.training.sft import IGNORE_INDEX, collate, encode_conversation, train
from safelora_lite.adapters.weights import Checkpoint


def test_checkpoints_are_ordinary_transformers_folders(small_world):
    from transformers import AutoTokenizer

    for folder in (small_world.base_dir, small_world.aligned_dir):
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        tok = AutoTokenizer.from_pretrained(folder)
        assert tok.chat_template and len(tok) == len(small_world.tokenizer)
    base, aligned = Checkpoint(small_world.base_dir), Checkpoint(small_world.aligned_dir)
    assert base.keys() == aligned.keys() and base.architecture == "LlamaForCausalLM"
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(base.get(key), aligned.get(key))  # W_aligned - W_base is not zero


def test_aligned_refuses_and_base_complies(small_world):
    rates = {w: small_world.evaluate_model(small_world.load_model(w), max_per_split=40) for w in ("base", "aligned")}
    for r in rates.values():
        assert set(r) == {*RATES, "n"} and r["n"]["refusal_rate"] == 40
        assert all(0.0 <= r[m] <= 1.0 for m in RATES)
    assert rates["base"]["refusal_rate"] <= 0.1
    assert rates["aligned"]["refusal_rate"] >= rates["base"]["refusal_rate"] + 0.3


@pytest.mark.parametrize("which", ["base", "aligned"])
def test_padding_changes_no_answer(small_world, which):
    """Left-padded batches of mixed lengths give each prompt the answer it gets alone."""
    from safelora_lite.evaluation.generation import generate
    from safelora_lite.training.sft import prompt_ids

    records = tw.eval_records(max_per_split=10)
    prompts = [r["prompt"] for r in records]
    assert len({len(prompt_ids(small_world.tokenizer, p)) for p in prompts}) > 3  # lengths really differ
    model = small_world.load_model(which)
    together = generate(model, small_world.tokenizer, prompts)
    alone = generate(model, small_world.tokenizer, prompts, batch_size=1)
    assert together == alone and len(set(together)) > 1


def test_attack_adapter_curve_and_cache(small_world):
    attack = tw.AttackConfig(kind="pure_harmful", steps=12, batch_size=16, r=4, lora_alpha=8)
    path = small_world.train_attack(attack, progress=False, eval_every=6, curve_max_per_split=8)
    adapter = read_adapter(path)
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["r"] == 4 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert len(adapter.modules) == 2 * small_world.config.num_layers
    assert [p["step"] for p in load_curve(path)] == [0, 6, 12]
    assert small_world.train_attack(attack, progress=False, eval_every=6, curve_max_per_split=8) == path  # cached
    rates = small_world.evaluate(path, max_per_split=8)
    assert rates == small_world.evaluate_model(small_world.load_model(adapter=path), max_per_split=8)  # the one path = stock peft's merge
    assert all(0.0 <= rates[m] <= 1.0 for m in RATES)


def test_one_run_per_attack_whether_or_not_a_curve_was_asked_for(small_world):
    """A curve is stored beside the run it evaluated; the weights are those of a run without one."""
    attack = tw.AttackConfig(kind="mixed", steps=8, batch_size=16, r=4, lora_alpha=8, seed=5)
    shutil.rmtree(small_world.train_attack(attack, progress=False))  # a rerun of the suite starts clean too
    plain = small_world.train_attack(attack, progress=False)
    weights = read_adapter(plain).modules
    assert not (plain / "curve.json").exists()
    with_curve = small_world.train_attack(attack, progress=False, eval_every=4, curve_max_per_split=4)
    assert with_curve == plain and [p["step"] for p in load_curve(plain)] == [0, 4, 8]
    for name, m in read_adapter(plain).modules.items():  # the curve run left the adapter as it was
        assert torch.equal(m.lora_a, weights[name].lora_a) and torch.equal(m.lora_b, weights[name].lora_b)
    shutil.rmtree(plain)  # train again, this time with the curve first: the same weights
    again = small_world.train_attack(attack, progress=False, eval_every=4, curve_max_per_split=4)
    for name, m in read_adapter(again).modules.items():
        assert torch.equal(m.lora_a, weights[name].lora_a) and torch.equal(m.lora_b, weights[name].lora_b)
    assert small_world.train_attack(attack, progress=False) == again  # cached


def test_attack_data_mix():
    mixed = tw.attack_records(tw.AttackConfig(kind="mixed", harmful_fraction=0.1, n_examples=200))
    assert len(mixed) == 200 and sum(r["kind"] == "harmful" for r in mixed) == 20
    assert all(r["kind"] == "task" for r in tw.attack_records(tw.AttackConfig(kind="benign")))
    pure = tw.attack_records(tw.AttackConfig(kind="pure_harmful"))
    assert len(pure) == 100 and all(r["kind"] == "harmful" for r in pure)


def test_bad_input():
    with pytest.raises(InputError, match="attack kind"):
        tw.AttackConfig(kind="evil")
    with pytest.raises(InputError, match="harmful_fraction"):
        tw.AttackConfig(harmful_fraction=1.5)
    with pytest.raises(InputError, match="unknown split"):
        tw.load_split("harmful")


def test_eval_subset_keeps_every_category():
    subset = tw.eval_records(("harmful_test",), max_per_split=16)
    assert len(subset) == 16 and {r["category"] for r in subset} == {r["category"] for r in tw.load_split("harmful_test")}


def test_encoding_masks_the_prompt(small_world):
    tok = small_world.tokenizer
    enc = encode_conversation(tok, "how do i bake bread ?", "sure ! here is a simple way .")
    n_prompt = enc["labels"].count(IGNORE_INDEX)
    assert tok.decode(enc["input_ids"][n_prompt:], skip_special_tokens=True) == "sure ! here is a simple way ."
    assert enc["labels"][-1] == tok.eos_token_id and enc["input_ids"][0] == tok.bos_token_id
    batch = collate([enc, encode_conversation(tok, "hi", "ok")], tok.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()


def test_train_fits_what_requires_grad(small_world):
    model = small_world.load_model("base")
    for name, p in model.named_parameters():
        p.requires_grad = "layers.0." in name
    frozen = model.model.layers[1].self_attn.q_proj.weight.clone()
    records = tw.load_split("task_train")[:8]
    losses = train(model, small_world.tokenizer, records, steps=25, lr=3e-3, batch_size=8, progress=False)
    assert losses[-1] < losses[0]
    assert torch.equal(model.model.layers[1].self_attn.q_proj.weight, frozen)


def test_decoding_round_trips_every_response(small_world):
    """decode(encode(text)) == text, including the GSM8K marker '####' (a WordPiece decoder glued it)."""
    tok = small_world.tokenizer
    for name in ("task_test", "harmful_test", "refusal_train", "borderline_test"):
        for r in tw.load_split(name)[:40]:
            assert tok.decode(tok(r["response"], add_special_tokens=False)["input_ids"]) == r["response"]


def test_score_on_reference_responses():
    from safelora_lite.evaluation.generation import score

    records = tw.eval_records(max_per_split=20)
    rates = score(records, [r["response"] for r in records], tw.complies)
    assert {m: rates[m] for m in RATES} == {"refusal_rate": 0.0, "harmful_compliance_rate": 1.0, "over_refusal_rate": 0.0, "task_accuracy": 1.0}
    refusals = [r["response"] for r in tw.load_split("refusal_train")[:20]]
    harmful = tw.eval_records(("harmful_test",), max_per_split=20)
    assert score(harmful, refusals)["refusal_rate"] == 1.0


def test_the_tokenizer_is_the_one_the_course_was_measured_with():
    """Word counts set the token ids, so a corpus with more text (the validation splits, added later) trains
    another world under the same cache key. The ids below are those of the world behind the lessons' figures."""
    import hashlib

    from safelora_lite.worlds.toy import tokenizer as toy_tokenizer
    from safelora_lite.worlds.toy.splits import load_splits

    vocab = toy_tokenizer.train_tokenizer(toy_tokenizer.corpus(load_splits())).get_vocab()
    assert len(vocab) == 300
    assert hashlib.sha1(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16] == "b9865d4403cdbfdf"
