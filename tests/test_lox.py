"""LoX: the written checkpoint is W_aligned + alpha * rank_k(W_aligned - W_base), checked independently."""

import json

import pytest
import torch
from safetensors.torch import load_file

from safelora_lite.methods import lox
from safelora_lite.cli import main
from safelora_lite.errors import InputError
from safelora_lite.adapters.weights import Checkpoint


def _weights(folder):
    ckpt = Checkpoint(folder)
    return {k: ckpt.get(k) for k in ckpt.keys()}


@pytest.mark.parametrize("k", [0, 1, 3])
def test_checkpoint_matches_the_formula(tiny_llama_pair, tmp_path, k):
    base_dir, aligned_dir, _ = tiny_llama_pair
    alpha = 0.7
    report = lox.extrapolate_checkpoint(base_dir, aligned_dir, tmp_path / "lox", alpha, k)
    base, aligned, out = _weights(base_dir), _weights(aligned_dir), _weights(tmp_path / "lox")
    assert set(out) == set(aligned)
    targets = {row["name"] for row in report["matrices"]}
    assert targets == {key for key in aligned if key.endswith("_proj.weight")}
    for key, w in out.items():
        if key not in targets:
            assert torch.equal(w, aligned[key])  # embeddings, norms, head: the aligned model's
            continue
        delta = aligned[key] - base[key]  # (d_out, d_in)
        change = (w - aligned[key]) / alpha  # should be rank_k(delta)
        if k == 0:
            torch.testing.assert_close(change, delta, atol=1e-5, rtol=1e-4)
            continue
        # Eckart-Young, from the singular values alone: rank k and the optimal residual.
        assert torch.linalg.matrix_rank(change, atol=1e-4).item() == k
        tail = torch.linalg.svdvals(delta)[k:]
        torch.testing.assert_close((delta - change).norm(), tail.norm(), atol=1e-4, rtol=1e-3)


def test_alpha_zero_is_the_aligned_model_and_inputs_are_untouched(tiny_llama_pair, tmp_path):
    base_dir, aligned_dir, _ = tiny_llama_pair
    before = {p.name: p.read_bytes() for p in aligned_dir.iterdir() if p.is_file()}
    lox.extrapolate_checkpoint(base_dir, aligned_dir, tmp_path / "zero", 0.0, 2)
    out, aligned = _weights(tmp_path / "zero"), _weights(aligned_dir)
    assert all(torch.equal(out[k], aligned[k]) for k in aligned)
    assert {p.name: p.read_bytes() for p in aligned_dir.iterdir() if p.is_file()} == before
    assert (tmp_path / "zero" / "config.json").read_text() == (aligned_dir / "config.json").read_text()


def test_only_the_named_modules_change_and_the_result_loads(tiny_llama_pair, tmp_path):
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, _ = tiny_llama_pair
    report = lox.extrapolate_checkpoint(base_dir, aligned_dir, tmp_path / "qv", 1.0, 0, modules=("q_proj", "v_proj"))
    assert report["num_matrices"] == 4 and all(r["name"].endswith(("q_proj.weight", "v_proj.weight")) for r in report["matrices"])
    out, aligned = _weights(tmp_path / "qv"), _weights(aligned_dir)
    changed = {k for k in aligned if not torch.equal(out[k], aligned[k])}
    assert changed == {r["name"] for r in report["matrices"]}
    model = LlamaForCausalLM.from_pretrained(tmp_path / "qv")
    torch.testing.assert_close(model.state_dict()["model.layers.1.self_attn.q_proj.weight"], out["model.layers.1.self_attn.q_proj.weight"])
    saved = json.loads((tmp_path / "qv" / lox.REPORT_NAME).read_text())
    assert saved["alpha"] == 1.0 and saved["k"] == 0


def test_sharded_checkpoint_keeps_its_layout(tiny_llama_pair, tmp_path):
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, _ = tiny_llama_pair
    sharded = tmp_path / "aligned_sharded"
    LlamaForCausalLM.from_pretrained(aligned_dir).save_pretrained(sharded, max_shard_size="20KB")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    lox.extrapolate_checkpoint(base_dir, sharded, tmp_path / "out", 0.5, 1)
    out_index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert out_index["weight_map"] == index["weight_map"]
    for shard in set(index["weight_map"].values()):
        assert set(load_file(str(tmp_path / "out" / shard))) == {k for k, s in index["weight_map"].items() if s == shard}
    flat = lox.extrapolate_checkpoint(base_dir, aligned_dir, tmp_path / "flat", 0.5, 1)
    a, b = _weights(tmp_path / "out"), _weights(tmp_path / "flat")
    assert flat["num_matrices"] > 0 and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("alpha, k, modules", [(float("nan"), 0, lox.DEFAULT_MODULES), (0.5, -1, lox.DEFAULT_MODULES),
                                               (0.5, 1.5, lox.DEFAULT_MODULES), (0.5, 0, ("no_such_proj",))])
def test_bad_arguments_write_nothing(tiny_llama_pair, tmp_path, alpha, k, modules):
    base_dir, aligned_dir, _ = tiny_llama_pair
    with pytest.raises(InputError):
        lox.extrapolate_checkpoint(base_dir, aligned_dir, tmp_path / "out", alpha, k, modules)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == []


def test_other_architecture_is_refused(tiny_llama_pair, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    base_dir, aligned_dir, _ = tiny_llama_pair
    other = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(InputError, match="hidden_size"):
        lox.extrapolate_checkpoint(tmp_path / "other", aligned_dir, tmp_path / "out", 0.5, 0)
    assert not (tmp_path / "out").exists()


def test_cli_writes_once_and_refuses_to_overwrite(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, _ = tiny_llama_pair
    args = ["lox", "--base", str(base_dir), "--aligned", str(aligned_dir), "--out", str(tmp_path / "cli"), "--alpha", "0.3", "--k", "2"]
    assert main(args) == 0
    first = (tmp_path / "cli" / "model.safetensors").read_bytes()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert (tmp_path / "cli" / "model.safetensors").read_bytes() == first
    assert main(["lox", "--base", str(base_dir), "--aligned", str(aligned_dir), "--out", str(tmp_path / "bad"), "--k", "-2"]) == 2
    assert not (tmp_path / "bad").exists()


def test_blocks_of_any_size_write_the_same_checkpoint(tiny_llama_pair, tmp_path, monkeypatch):
    from safelora_lite.adapters import weights

    base_dir, aligned_dir, _ = tiny_llama_pair
    lox.extrapolate_checkpoint(base_dir, aligned_dir, tmp_path / "whole", 0.7, 0)
    monkeypatch.setattr(weights, "BLOCK_ENTRIES", 50)  # blocks of one row
    lox.extrapolate_checkpoint(base_dir, aligned_dir, tmp_path / "blocks", 0.7, 0)
    whole, blocks = _weights(tmp_path / "whole"), _weights(tmp_path / "blocks")
    assert set(whole) == set(blocks) and all(torch.equal(whole[k], blocks[k]) for k in whole)
