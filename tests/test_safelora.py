"""Safe LoRA (library): scores, selection, B <- C B on exactly the selected modules, controls."""

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import safelora_lite as sl
from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.adapters.controls import random_modules, zero_modules
from safelora_lite.methods.safelora import apply_projection, open_adapter, safe_lora, safe_lora_peft_model, score_adapter


def _weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def _dense_c(v: torch.Tensor, kind: str, rank=None) -> torch.Tensor:
    """C built densely and independently of the library (for paper), or via SVD (for exact)."""
    v = v.double()
    if kind == "paper":
        return v @ v.T / torch.linalg.matrix_norm(v)
    u, _, _ = torch.linalg.svd(v)
    return u[:, :rank] @ u[:, :rank].T


def _dir_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("projector,rank", [("paper", None), ("exact", 3)])
def test_update_is_cba_for_exactly_the_selected_modules(tiny_llama_pair, projector, rank):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    before = _dir_digest(adapter_dir)
    adapter = read_adapter(adapter_dir)
    projected, report = safe_lora(adapter_dir, base_dir, aligned_dir, select="number", k=2, projector=projector, rank=rank)
    base, aligned = _weights(base_dir), _weights(aligned_dir)
    selected = {m["name"] for m in report["modules"] if m["projected"]}
    assert len(selected) == 2 and report["num_projected"] == 2
    # the K lowest scores were chosen
    scores = sorted(m["score"] for m in report["modules"])
    assert max(m["score"] for m in report["modules"] if m["projected"]) <= scores[1]
    for name, m in adapter.modules.items():
        v = aligned[m.target].double() - base[m.target].double()
        c = _dense_c(v, projector, rank)
        ba = m.lora_b.double() @ m.lora_a.double()
        cba = c @ ba
        score = float((cba * ba).sum() / (cba.norm() * ba.norm()))
        entry = next(e for e in report["modules"] if e["name"] == name)
        assert entry["score"] == pytest.approx(score, abs=1e-5)
        expected = cba if name in selected else ba
        new = projected.modules[name]
        assert torch.allclose(new.lora_b.double() @ new.lora_a.double(), expected, atol=1e-5)
        assert torch.equal(new.lora_a, m.lora_a)
        if name not in selected:
            assert torch.equal(new.lora_b, m.lora_b)
    assert _dir_digest(adapter_dir) == before  # input untouched


def test_threshold_selection_and_shrink(tiny_llama_pair):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    _, report = safe_lora(adapter_dir, base_dir, aligned_dir, select="number", k=0)
    scores = sorted(m["score"] for m in report["modules"])
    threshold = (scores[1] + scores[2]) / 2
    _, by_threshold = safe_lora(adapter_dir, base_dir, aligned_dir, select="threshold", threshold=threshold)
    chosen = [m["name"] for m in by_threshold["modules"] if m["projected"]]
    assert chosen == [m["name"] for m in report["modules"] if m["score"] <= threshold]
    assert len(chosen) == 2
    adapter = read_adapter(adapter_dir)
    projections = score_adapter(adapter, base_dir, aligned_dir)
    for name, p in projections.items():
        b = adapter.modules[name].lora_b.float()
        assert p.shrink == pytest.approx(float(p.projected_b.norm() / b.norm()), rel=1e-5)
        assert 0 < p.shrink


def test_exact_projector_is_idempotent_on_b(tiny_llama_pair):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    once, _ = safe_lora(adapter_dir, base_dir, aligned_dir, k=4, projector="exact", rank=2)
    twice, report = safe_lora(once, base_dir, aligned_dir, k=4, projector="exact", rank=2)
    for name, m in once.modules.items():
        assert torch.allclose(twice.modules[name].lora_b, m.lora_b, atol=1e-5)
    # an update already inside the subspace scores 1
    assert all(e["score"] == pytest.approx(1.0, abs=1e-5) for e in report["modules"])


def test_sharded_half_precision_and_in_memory_sources_agree(tiny_llama_pair, tmp_path):
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    _, reference = safe_lora(adapter_dir, base_dir, aligned_dir, k=1)
    base = LlamaForCausalLM.from_pretrained(base_dir)
    aligned = LlamaForCausalLM.from_pretrained(aligned_dir)
    base.save_pretrained(tmp_path / "base_sharded", max_shard_size="20KB")
    aligned.save_pretrained(tmp_path / "aligned_sharded", max_shard_size="20KB")
    assert (tmp_path / "base_sharded" / "model.safetensors.index.json").is_file()
    _, sharded = safe_lora(adapter_dir, tmp_path / "base_sharded", tmp_path / "aligned_sharded", k=1)
    _, in_memory = safe_lora(adapter_dir, base, aligned, k=1)
    for other in (sharded, in_memory):
        assert [m["score"] for m in other["modules"]] == pytest.approx([m["score"] for m in reference["modules"]], abs=1e-6)
    base.to(torch.bfloat16).save_pretrained(tmp_path / "base_bf16")
    aligned.to(torch.bfloat16).save_pretrained(tmp_path / "aligned_bf16")
    _, bf16 = safe_lora(adapter_dir, tmp_path / "base_bf16", tmp_path / "aligned_bf16", k=1)
    assert [m["score"] for m in bf16["modules"]] == pytest.approx([m["score"] for m in reference["modules"]], abs=0.05)


def test_peft_model_in_memory_matches_directory_path(tiny_llama_pair):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    projected, reference = safe_lora(adapter_dir, base_dir, aligned_dir, k=3)
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), adapter_dir)
    report = safe_lora_peft_model(model, base_dir, aligned_dir, k=3)
    assert [m["projected"] for m in report["modules"]] == [m["projected"] for m in reference["modules"]]
    assert [m["score"] for m in report["modules"]] == pytest.approx([m["score"] for m in reference["modules"]], abs=1e-6)
    now = open_adapter(model)
    for name, m in projected.modules.items():
        assert torch.allclose(now.modules[name].lora_b, m.lora_b, atol=1e-6)


def test_all_target_modules_and_rank_patterns(tiny_llama_pair, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, _ = tiny_llama_pair
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                        rank_pattern={"down_proj": 2}, alpha_pattern={"v_proj": 32})
    torch.manual_seed(1)
    get_peft_model(LlamaForCausalLM.from_pretrained(aligned_dir), config).save_pretrained(tmp_path / "adapter")
    out = tmp_path / "out"
    sl.safe_lora_dir(tmp_path / "adapter", base_dir, aligned_dir, out, k=5)
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), out)
    written = read_adapter(out)
    assert len(written.modules) == 14
    for name, m in written.modules.items():
        layer = model.get_submodule(name)
        assert torch.allclose(layer.get_delta_weight("default"), m.delta(), atol=1e-6)
        if name.endswith("down_proj"):
            assert m.rank == 2
        if name.endswith("v_proj"):
            assert m.scaling == pytest.approx(8.0)


def test_apply_projection_rejects_unscored_module(tiny_llama_pair):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    with pytest.raises(sl.InputError, match="no projection"):
        apply_projection(adapter_dir, {}, ["base_model.model.model.layers.0.self_attn.q_proj"])


def test_bad_selection_is_rejected_before_reading_weights(tiny_llama_pair, tmp_path):
    _, _, adapter_dir = tiny_llama_pair
    missing = tmp_path / "nowhere"
    with pytest.raises(sl.InputError, match="K=5 is out of range"):
        safe_lora(adapter_dir, missing, missing, k=5)
    with pytest.raises(sl.InputError, match="outside"):
        safe_lora(adapter_dir, missing, missing, select="threshold", threshold=1.5)


def test_zero_control_removes_exactly_the_named_updates(tiny_llama_pair):
    adapter = read_adapter(tiny_llama_pair[2])
    names = list(adapter.modules)[1:3]
    zeroed = zero_modules(adapter, names)
    for name, m in adapter.modules.items():
        if name in names:
            assert torch.count_nonzero(zeroed.modules[name].delta()) == 0
        else:
            assert torch.equal(zeroed.modules[name].lora_b, m.lora_b)
    assert torch.count_nonzero(adapter.modules[names[0]].lora_b) > 0  # input not mutated
    with pytest.raises(sl.InputError, match="unknown module"):
        zero_modules(adapter, ["nope"])


def test_random_control_is_seeded_and_in_range(tiny_llama_pair):
    adapter = read_adapter(tiny_llama_pair[2])
    picks = {tuple(random_modules(adapter, 2, seed)) for seed in range(20)}
    assert all(len(p) == 2 and set(p) <= set(adapter.modules) for p in picks)
    assert len(picks) > 1
    assert random_modules(adapter, 2, 7) == random_modules(adapter, 2, 7)
    assert random_modules(adapter, 0, 0) == []
    with pytest.raises(sl.InputError):
        random_modules(adapter, 5, 0)


def test_k_sweep_points_and_controls(tiny_llama_pair):
    from safelora_lite.comparison.posthoc import k_sweep, threshold_sweep

    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    adapter = read_adapter(adapter_dir)
    calls = []

    def fake_evaluate(variant):  # a stand-in metric: how much of the update is left
        calls.append(variant)
        left = sum(float(m.delta().norm()) for m in variant.modules.values()) / sum(float(m.delta().norm()) for m in adapter.modules.values())
        return {"refusal_rate": 1 - left, "harmful_compliance_rate": left, "over_refusal_rate": 0.0, "task_accuracy": left}

    projections = {"paper": score_adapter(adapter, base_dir, aligned_dir), "exact": score_adapter(adapter, base_dir, aligned_dir, "exact", 1)}
    points = k_sweep(fake_evaluate, adapter, projections, [0, 2, 4], seed=3, exact_rank=1, attack="mixed")
    assert {p["method"] for p in points} == {"safe_lora_paper", "safe_lora_exact", "zero", "random"}
    for p in points:
        assert set(p) >= {"method", "k", "rank", "seed", "refusal_rate", "task_accuracy", "over_refusal_rate"}
        assert len(p["modules"]) == p["k"] and p["seed"] == 3 and p["attack"] == "mixed"
        assert (p["rank"] == 1) == (p["method"] == "safe_lora_exact")
    by = {(p["method"], p["k"]): p for p in points}
    for k in (0, 2, 4):
        assert by[("zero", k)]["modules"] == by[("safe_lora_paper", k)]["modules"]
        assert by[("zero", k)]["task_accuracy"] == by[("safe_lora_paper", k)]["zero_control"]["task_accuracy"]
    assert by[("zero", 4)]["task_accuracy"] == pytest.approx(0.0)
    assert by[("safe_lora_paper", 0)]["task_accuracy"] == pytest.approx(1.0)
    assert 0 < by[("safe_lora_paper", 4)]["task_accuracy"] < 1  # projected, not deleted
    t_points = threshold_sweep(fake_evaluate, adapter, projections["paper"], [-1.0, 1.0], seed=3)
    assert [p["k"] for p in t_points] == [0, 4] and all(p["select"] == "threshold" for p in t_points)
