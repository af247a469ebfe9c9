"""LoRA fusion: the fused update is exactly sum_i w_i s_i B_i A_i, loads in stock peft, refuses bad input."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from safelora_lite import cli
from safelora_lite.adapters.lora_io import LoraAdapter, LoraModule, read_adapter
from safelora_lite.errors import InputError
from safelora_lite.worlds import toy as tw
from safelora_lite.methods.fusion import REPORT_NAME, fuse, fuse_adapters, fuse_peft_model, fused_delta, linear_mix, model_name


def _lora(model_dir, out, seed, **config):
    """Save a random (non-zero) LoRA adapter for the model in `model_dir`."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM.from_pretrained(model_dir)
    get_peft_model(model, LoraConfig(init_lora_weights=False, **config)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_llama_pair, tmp_path_factory):
    """Three adapters on the aligned tiny model: different ranks, alphas, rsLoRA, rank patterns, targets."""
    _, aligned, task = tiny_llama_pair  # r=4, alpha=8 on q, v
    root = tmp_path_factory.mktemp("fusion")
    safety = _lora(aligned, root / "safety", 1, r=2, lora_alpha=7, target_modules=["q_proj", "v_proj"],
                   rank_pattern={"layers.1.self_attn.v_proj": 3}, alpha_pattern={"layers.0.self_attn.q_proj": 5})
    other = _lora(aligned, root / "other", 2, r=3, lora_alpha=6, use_rslora=True, target_modules=["v_proj", "o_proj"])
    return aligned, [task, safety, other], root


def _peft_deltas(aligned, adapter_dir):
    """Each module's update as stock peft computes it (get_delta_weight), by module path."""
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned), adapter_dir)
    return {name: mod.get_delta_weight("default").detach() for name, mod in model.named_modules()
            if hasattr(mod, "get_delta_weight") and "default" in getattr(mod, "lora_A", {})}


def test_fused_update_is_the_weighted_sum_for_every_module(adapters):
    aligned, dirs, root = adapters
    weights = [0.6, -0.4, 1.5]
    out = fuse(dirs, weights, root / "fused")
    fused_deltas = _peft_deltas(aligned, out)
    input_deltas = [_peft_deltas(aligned, d) for d in dirs]
    union = set().union(*input_deltas)
    assert set(fused_deltas) == union and len(union) == 6  # q, v, o in 2 layers
    for name, got in fused_deltas.items():
        expected = sum(w * d[name] for w, d in zip(weights, input_deltas) if name in d)
        assert torch.allclose(got, expected, atol=1e-6), name
    # and against our own reading of the inputs (B_i, A_i, s_i from the files)
    read = [read_adapter(d) for d in dirs]
    fused = read_adapter(out)
    for name, m in fused.modules.items():
        assert m.scaling == pytest.approx(1.0)
        assert m.rank == sum(a.modules[name].rank for a in read if name in a.modules)
        assert torch.allclose(m.delta(), fused_delta(read, weights, name), atol=1e-6)
    report = json.loads((out / REPORT_NAME).read_text())
    assert [a["weight"] for a in report["adapters"]] == weights
    o_proj = [m for m in report["modules"] if m["name"].endswith("o_proj")]
    assert o_proj and all(m["from"] == [2] and m["missing_from"] == [0, 1] for m in o_proj)


def test_fused_adapter_gives_the_dense_sum_logits(adapters):
    aligned, dirs, root = adapters
    weights = [0.6, 0.4, -0.3]
    out = fuse(dirs, weights, root / "fused_logits")
    tokens = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    fused_model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned), out).eval()
    dense = LlamaForCausalLM.from_pretrained(aligned).eval()
    read = [read_adapter(d) for d in dirs]
    params = dict(dense.named_parameters())
    with torch.no_grad():
        for name in {n for a in read for n in a.modules}:
            params[name.removeprefix("base_model.model.") + ".weight"].add_(fused_delta(read, weights, name))
        got, expected = fused_model(tokens).logits, dense(tokens).logits
        plain = LlamaForCausalLM.from_pretrained(aligned).eval()(tokens).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)  # the update is not trivially zero


def test_in_memory_fusion_agrees_with_peft_cat(adapters):
    aligned, dirs, _ = adapters
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned), dirs[0], adapter_name="task")
    model.load_adapter(dirs[1], adapter_name="safety")
    weights = [0.6, 0.4]
    ours = fuse_peft_model(model, ["task", "safety"], weights)
    model.add_weighted_adapter(["task", "safety"], weights, "cat_fused", combination_type="cat")
    checked = 0
    for name, mod in model.named_modules():
        if hasattr(mod, "get_delta_weight") and "cat_fused" in getattr(mod, "lora_A", {}):
            key = next(k for k in ours.modules if k.endswith(name.removeprefix("base_model.model.")))
            assert torch.allclose(ours.modules[key].delta(), mod.get_delta_weight("cat_fused"), atol=1e-6), name
            checked += 1
    assert checked == 4
    with pytest.raises(InputError, match="no adapter named"):
        fuse_peft_model(model, ["task", "nope"], weights)


def test_cat_is_exact_and_linear_is_not_on_toy_matrices():
    g = torch.Generator().manual_seed(0)
    m1 = LoraModule("m", torch.randn(2, 5, generator=g), torch.randn(4, 2, generator=g), scaling=2.0)
    m2 = LoraModule("m", torch.randn(2, 5, generator=g), torch.randn(4, 2, generator=g), scaling=0.5)
    weights = [0.6, -0.4]
    exact = 0.6 * m1.delta() - 0.4 * m2.delta()
    fused = fuse_adapters([LoraAdapter({}, {"m": m1}), LoraAdapter({}, {"m": m2})], weights).modules["m"]
    assert torch.allclose(fused.delta(), exact, atol=1e-6)
    lora_a, lora_b = linear_mix([m1, m2], weights)
    w1, w2 = 0.6 * 2.0, -0.4 * 0.5
    cross = math.sqrt(abs(w1)) * math.sqrt(abs(w2)) * (
        math.copysign(1, w2) * m1.lora_b @ m2.lora_a + math.copysign(1, w1) * m2.lora_b @ m1.lora_a)
    assert torch.allclose(lora_b @ lora_a, exact + cross, atol=1e-5)
    assert (lora_b @ lora_a - exact).norm() > 0.1 * exact.norm()


def test_linear_mix_matches_peft_linear(tiny_llama_pair, tmp_path):
    _, aligned, task = tiny_llama_pair
    other = _lora(aligned, tmp_path / "other", 3, r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned), task, adapter_name="a")
    model.load_adapter(other, adapter_name="b")
    weights = [0.7, -0.5]
    model.add_weighted_adapter(["a", "b"], weights, "lin", combination_type="linear")
    ra, rb = read_adapter(task), read_adapter(other)
    for name, mod in model.named_modules():
        if hasattr(mod, "get_delta_weight") and "lin" in getattr(mod, "lora_A", {}):
            key = "base_model.model." + name.removeprefix("base_model.model.")
            lora_a, lora_b = linear_mix([ra.modules[key], rb.modules[key]], weights)
            assert torch.allclose(lora_b @ lora_a, mod.get_delta_weight("lin"), atol=1e-5)
            assert not torch.allclose(mod.get_delta_weight("lin"), fused_delta([ra, rb], weights, key), atol=1e-3)


def _renamed(adapter_dir, out):
    """A copy of an adapter that claims another base model (same shapes)."""
    import shutil

    shutil.copytree(adapter_dir, out)
    config = json.loads((out / "adapter_config.json").read_text())
    (out / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "org/other-model"}))
    return out


def _cli(capsys, *args):
    code = cli.main(["fuse", *map(str, args)])
    return code, capsys.readouterr().err.strip()


@pytest.fixture(scope="module")
def foreign_adapter(tmp_path_factory):
    """A LoRA adapter for a differently sized model (another base model)."""
    root = tmp_path_factory.mktemp("foreign")
    config = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root / "model")
    return _lora(root / "model", root / "adapter", 0, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])


@pytest.mark.parametrize("case, pattern", [
    ("count", "3 adapters but 2 weights"),
    ("nan", "not a finite number"),
    ("exists", "already exists"),
    ("foreign", "is (32, 32) in one adapter but (48, 48)"),
    ("base_name", "trained on different base models"),
    ("strict", "has no module"),
    ("not_adapter", "not a PEFT adapter"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(adapters, foreign_adapter, tmp_path, capsys, case, pattern):
    _, dirs, _ = adapters
    out = tmp_path / "out"
    args = {
        "count": ["--adapters", *dirs, "--weights", 0.5, 0.5],
        "nan": ["--adapters", *dirs[:2], "--weights", "nan", 0.5],
        "exists": ["--adapters", *dirs[:2], "--weights", 0.5, 0.5],
        "foreign": ["--adapters", dirs[0], foreign_adapter, "--weights", 0.5, 0.5],
        "base_name": ["--adapters", dirs[1], _renamed(dirs[1], tmp_path / "renamed"), "--weights", 0.5, 0.5],
        "strict": ["--adapters", dirs[0], dirs[2], "--weights", 0.5, 0.5, "--require-same-modules"],
        "not_adapter": ["--adapters", dirs[0], tmp_path / "plain", "--weights", 0.5, 0.5],
    }[case]
    (tmp_path / "plain").mkdir()  # a folder that is no adapter (OUT must not lie inside it)
    if case == "exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    before = {p: p.stat().st_mtime_ns for d in dirs for p in d.iterdir()}
    code, err = _cli(capsys, *args, "--out", out)
    assert code == 2
    assert pattern in err and "\n" not in err and err.startswith("safelora-lite fuse: error:")
    if case == "exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]
    assert before == {p: p.stat().st_mtime_ns for d in dirs for p in d.iterdir()}  # inputs untouched


def test_cli_fuse_writes_adapter_and_report(adapters, tmp_path, capsys):
    aligned, dirs, _ = adapters
    code = cli.main(["fuse", "--adapters", str(dirs[0]), str(dirs[1]), "--weights", "0.6", "0.4", "--out", str(tmp_path / "f")])
    assert code == 0 and "fused 2 adapters" in capsys.readouterr().out
    report = json.loads((tmp_path / "f" / REPORT_NAME).read_text())
    assert report["combination"] == "cat" and len(report["modules"]) == 4
    assert all(m["from"] == [0, 1] for m in report["modules"])
    config = json.loads((tmp_path / "f" / "adapter_config.json").read_text())
    first_named = next(b for b in (read_adapter(d).base_model for d in dirs[:2]) if b)
    assert config["use_rslora"] is False and config["base_model_name_or_path"] == first_named


def test_safety_records_and_config():
    from safelora_lite.methods.fusion_safety import SafetyAdapterConfig, safety_records

    world = SimpleNamespace(split=tw.load_split)  # all safety_records asks of a world
    records = safety_records(world, SafetyAdapterConfig(n_examples=40, borderline_fraction=0.25, seed=1))
    kinds = [r["kind"] for r in records]
    assert len(records) == 40 and kinds.count("borderline") == 10 and kinds.count("harmful") == 30
    assert safety_records(world, SafetyAdapterConfig(n_examples=40, seed=1)) == safety_records(world, SafetyAdapterConfig(n_examples=40, seed=1))
    assert len(safety_records(world, SafetyAdapterConfig(n_examples=5000))) == 5000  # more than the split: drawn with replacement
    with pytest.raises(InputError, match="outside"):
        SafetyAdapterConfig(borderline_fraction=1.5)


def test_sweet_spot_rule_and_weights():
    from safelora_lite.methods.fusion_safety import fusion_weights, sweet_spot

    assert fusion_weights(0.4) == (0.6, 0.4) and fusion_weights(0.4, "add") == (1.0, 0.4)
    with pytest.raises(InputError, match="unknown fusion mode"):
        fusion_weights(0.4, "mean")
    pts = [{"weight": w, "refusal_rate": r, "over_refusal_rate": o, "task_accuracy": t}
           for w, r, o, t in [(0.0, 0.1, 0.0, 0.9), (0.4, 0.8, 0.1, 0.85), (0.6, 0.9, 0.1, 0.5), (0.8, 0.8, 0.1, 0.88)]]
    assert sweet_spot(pts, task_floor=0.8)["weight"] == 0.4  # 0.6 refuses more but loses the task; tie 0.4 / 0.8 -> 0.4
    assert sweet_spot(pts, task_floor=0.95) is None


def test_one_base_model_by_hub_id_folder_or_cache_snapshot():
    names = ["meta-llama/Llama-2-7b-hf", "/models/Llama-2-7b-hf/", "Llama-2-7b-hf",
             "/root/.cache/huggingface/hub/models--meta-llama--Llama-2-7b-hf/snapshots/01c7f73d771dfac7d292323805ebc428287df4f9"]
    assert {model_name(n) for n in names} == {"llama-2-7b-hf"}
    assert model_name("meta-llama/Llama-2-7b-chat-hf") != model_name("meta-llama/Llama-2-7b-hf")
