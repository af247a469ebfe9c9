"""The one evaluation path: an adapter's update merged as stock peft merges it, the weights put back, variants cached."""

from dataclasses import replace

import pytest
import torch
from peft import PeftModel
from transformers import LlamaForCausalLM

import safelora_lite.evaluation.evaluator as evaluator_module
from safelora_lite.adapters.controls import zero_modules
from safelora_lite.adapters.lora_io import read_adapter, write_adapter
from safelora_lite.errors import InputError
from safelora_lite.evaluation.evaluator import Evaluator
from safelora_lite.evaluation.generation import RATES
from safelora_lite.methods.safelora import safe_lora


@pytest.fixture
def seen_weights(monkeypatch):
    """Replace generation by a probe: each evaluation records the model's weights and returns dummy rates."""
    seen = []

    def probe(tokenizer, model, records, max_new_tokens=24, progress=False, complies=None):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {r: 0.5 for r in RATES}, ["answer"] * len(records)

    monkeypatch.setattr(evaluator_module, "evaluate_records", probe)
    return seen


def test_update_is_peft_merge_and_weights_come_back(tiny_llama_pair, tmp_path, seen_weights):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    model = LlamaForCausalLM.from_pretrained(aligned_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate = Evaluator(model, tokenizer=None, records=[{"prompt": "x", "kind": "harmful"}])
    projected, _ = safe_lora(adapter_dir, base_dir, aligned_dir, k=2)

    assert evaluate(projected) == {r: 0.5 for r in RATES}
    folder = write_adapter(projected, tmp_path / "projected")
    reference = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), str(folder)).merge_and_unload()
    for key, value in reference.state_dict().items():
        assert torch.equal(seen_weights[-1][key], value), key  # bit for bit
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # put back

    assert evaluate(read_adapter(adapter_dir)) and evaluate(adapter_dir) and len(seen_weights) == 2  # a folder = its adapter
    evaluate(zero_modules(projected, projected.modules))
    assert all(torch.equal(seen_weights[-1][k], v) for k, v in before.items())  # a zero update is the model itself
    evaluate()
    assert evaluate.evaluations == 3 and len(seen_weights) == 3  # the zeroed adapter is the model alone: answered once
    half = zero_modules(projected, list(projected.modules)[:1])
    evaluate(half)
    evaluate(replace(half, modules={n: m for n, m in half.modules.items() if m.lora_b.any()}))  # the same update, fewer modules
    assert evaluate.evaluations == 4


def test_answers_equal_the_merged_peft_model(small_world):
    """End to end on the toy world: the same rates as evaluating peft's merged model."""
    import safelora_lite.worlds.toy as tw

    folder = small_world.train_attack(tw.AttackConfig(kind="mixed", steps=4, batch_size=16, r=4, lora_alpha=8, seed=9),
                                      progress=False)
    merged = small_world.load_model("aligned", adapter=folder)
    assert small_world.evaluate(folder, max_per_split=10) == small_world.evaluate_model(merged, max_per_split=10)


def test_peft_model_takes_the_update_in_its_base_layers(tiny_llama_pair, seen_weights):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    peft_model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), str(adapter_dir))
    adapter = read_adapter(adapter_dir)
    Evaluator(peft_model, tokenizer=None, records=[])(adapter)
    m = next(iter(adapter.modules.values()))
    key = f"base_model.model.{m.target.removesuffix('.weight')}.base_layer.weight"
    aligned = LlamaForCausalLM.from_pretrained(aligned_dir).state_dict()[m.target]
    assert torch.equal(seen_weights[-1][key], aligned + m.delta())
    assert torch.equal(peft_model.state_dict()[key], aligned)


def test_adapter_for_another_model_is_refused(tiny_llama_pair):
    from transformers import LlamaConfig

    _, _, adapter_dir = tiny_llama_pair
    other = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(InputError, match="no weight"):
        Evaluator(other, tokenizer=None, records=[])(adapter_dir)


def test_the_log_finds_a_model_that_reads_two_ways(tmp_path, monkeypatch):
    from safelora_lite.evaluation import log

    model = torch.nn.Linear(3, 2)
    records = [{"prompt": "a"}, {"prompt": "b"}]
    for stem, rate in (("02", 0.5), ("03", 0.5), ("04", 0.25)):
        monkeypatch.setenv(log.LOG_VARIABLE, str(tmp_path / f"{stem}.jsonl"))
        log.log_evaluation(model, records, {"refusal_rate": rate})
    log.log_evaluation(torch.nn.Linear(3, 2), records, {"refusal_rate": 0.9})  # another model, once: not shared
    shared, differ = log.disagreements(log.read_logs(tmp_path))
    assert shared == 1 and len(differ) == 1 and differ[0]["rates"]["04"] == {"refusal_rate": 0.25}
    shared, differ = log.disagreements({k: v for k, v in log.read_logs(tmp_path).items() if k != "04"})
    assert shared == 1 and differ == []
