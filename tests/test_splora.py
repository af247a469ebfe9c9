"""SPLoRA: exactly K modules pruned (B = 0), the rest unchanged; defined scores; bad input refused."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from safelora_lite import InputError
from safelora_lite.adapters.lora_io import LoraModule, read_adapter, write_adapter
from safelora_lite.cli import main
from safelora_lite.methods.splora import reference_number_selection, score_adapter, select_pruned, splora, splora_peft_model


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _cli(capsys, adapter, base, aligned, out, *extra) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["splora", "--adapter", str(adapter), "--base", str(base), "--aligned", str(aligned), "--out", str(out), *extra])
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, out: Path, *words: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("safelora-lite splora: error:"), err
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


@pytest.mark.parametrize("k", [0, 1, 3, 4])
def test_number_mode_prunes_exactly_k_highest_and_leaves_the_rest(tiny_llama_pair, tmp_path, capsys, k):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    before = _digest(adapter_dir)
    out = tmp_path / f"pruned{k}"
    code, _ = _cli(capsys, adapter_dir, base_dir, aligned_dir, out, "--num-prune", str(k))
    assert code == 0
    assert _digest(adapter_dir) == before  # input never touched
    report = json.loads((out / "splora_report.json").read_text())
    pruned = {m["name"] for m in report["modules"] if m["pruned"]}
    assert len(pruned) == report["num_pruned"] == k
    by_score = sorted(report["modules"], key=lambda m: -m["score"])
    assert pruned == {m["name"] for m in by_score[:k]}
    original, result = read_adapter(adapter_dir), read_adapter(out)
    for name, m in original.modules.items():
        new = result.modules[name]
        assert torch.equal(new.lora_a, m.lora_a)
        assert new.lora_b.shape == m.lora_b.shape and new.scaling == m.scaling
        if name in pruned:
            assert torch.count_nonzero(new.delta()) == 0
        else:
            assert torch.equal(new.lora_b, m.lora_b)


def test_threshold_and_low_side(tiny_llama_pair):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    scores = {n: s.score for n, s in score_adapter(adapter_dir, base_dir, aligned_dir).items()}
    t = sorted(scores.values())[1]
    assert select_pruned(scores, "threshold", threshold=t) == [n for n in scores if scores[n] >= t]
    assert select_pruned(scores, "threshold", threshold=t, prune="low") == [n for n in scores if scores[n] <= t]
    low = select_pruned(scores, "number", k=1, prune="low")
    assert low == [min(scores, key=scores.get)]


def test_reference_number_mode_keeps_k_minus_one():
    scores = {"a": 0.3, "b": 0.9, "c": 0.1, "d": 0.5, "e": 0.7}
    pruned = reference_number_selection(scores, 2)  # the public code's K = 2
    assert sorted(set(scores) - set(pruned)) == ["b"]  # keeps K - 1 = 1 module, prunes 4
    assert select_pruned(scores, "number", k=2) == ["b", "e"]  # here K = 2 prunes 2


@pytest.mark.parametrize("variant,null", [("empirical", "random"), ("empirical", "modules"), ("reference", "random")])
def test_zero_update_module_gets_a_defined_score(tiny_llama_pair, tmp_path, variant, null):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    adapter = read_adapter(adapter_dir)
    name = next(iter(adapter.modules))
    m = adapter.modules[name]
    zeroed = adapter.with_modules({name: LoraModule(name, m.lora_a, torch.zeros_like(m.lora_b), m.scaling)})
    scores = score_adapter(zeroed, base_dir, aligned_dir, variant=variant, null=null)
    assert all(torch.isfinite(torch.tensor(s.score)) for s in scores.values())
    assert scores[name].distance == 0.0
    pruned, report = splora(zeroed, base_dir, aligned_dir, k=2, variant=variant, null=null)
    assert report["num_pruned"] == 2


def test_mixed_ranks_prune_with_the_right_shapes(tiny_llama_pair, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, _ = tiny_llama_pair
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], rank_pattern={"v_proj": 2},
                        init_lora_weights=False)
    get_peft_model(LlamaForCausalLM.from_pretrained(aligned_dir), config).save_pretrained(tmp_path / "mixed")
    pruned, report = splora(tmp_path / "mixed", base_dir, aligned_dir, k=3)
    write_adapter(pruned, tmp_path / "out")
    original = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), tmp_path / "mixed")
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), tmp_path / "out")
    flags = {m["name"]: m["pruned"] for m in report["modules"]}
    assert len(flags) == 6 and sum(flags.values()) == 3  # 2 layers x (q r=4, v r=2, down 64 -> 32)
    for name, was_pruned in flags.items():
        delta = model.get_submodule(name).get_delta_weight("default")
        if was_pruned:
            assert torch.count_nonzero(delta) == 0
        else:
            assert torch.equal(delta, original.get_submodule(name).get_delta_weight("default"))


def test_in_memory_peft_model(tiny_llama_pair):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), adapter_dir)
    before = {n: model.get_submodule(n).get_delta_weight("default").clone() for n in read_adapter(adapter_dir).modules}
    report = splora_peft_model(model, base_dir, aligned_dir, k=2)
    for m in report["modules"]:
        delta = model.get_submodule(m["name"]).get_delta_weight("default")
        if m["pruned"]:
            assert torch.count_nonzero(delta) == 0
        else:
            assert torch.equal(delta, before[m["name"]])
    assert sum(m["pruned"] for m in report["modules"]) == 2


def test_library_refuses_bad_options(tiny_llama_pair):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    for options in ({"k": 5}, {"k": -1}, {"select": "threshold", "threshold": float("nan")}, {"variant": "paper"},
                    {"null": "gaussian", "k": 1}, {"samples": 1, "k": 1}, {"prune": "middle", "k": 1}):
        with pytest.raises(InputError):
            splora(adapter_dir, base_dir, aligned_dir, **options)


def test_cli_output_exists(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _cli(capsys, adapter_dir, base_dir, aligned_dir, out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "already exists" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("extra,words", [(("--num-prune", "9"), ("K=9",)), (("--select", "threshold", "--threshold", "nan"), ("threshold",)),
                                         (("--samples", "1"), ("samples",))])
def test_cli_refuses_out_of_range(tiny_llama_pair, tmp_path, capsys, extra, words):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter_dir, base_dir, aligned_dir, out, *extra), out, *words)


def test_cli_refuses_nan_adapter(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    bad = tmp_path / "nan_adapter"
    bad.mkdir()
    (bad / "adapter_config.json").write_text((adapter_dir / "adapter_config.json").read_text())
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    key = next(k for k in tensors if k.endswith("lora_B.weight"))
    tensors[key][0, 0] = float("nan")
    save_file(tensors, str(bad / "adapter_model.safetensors"))
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, bad, base_dir, aligned_dir, out), out, "NaN")


def test_cli_refuses_adapter_for_another_model(tiny_llama_pair, tmp_path, capsys):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    base_dir, aligned_dir, _ = tiny_llama_pair
    config = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    other = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    other.save_pretrained(tmp_path / "other_adapter")
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, tmp_path / "other_adapter", base_dir, aligned_dir, out), out, "another model")


def test_cli_refuses_mismatched_checkpoints(tiny_llama_pair, tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    base_dir, _, adapter_dir = tiny_llama_pair
    config = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "wider")
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter_dir, base_dir, tmp_path / "wider", out), out, "hidden_size")
