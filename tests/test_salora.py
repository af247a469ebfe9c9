"""SaLoRA on tiny random Llama models: features, C, task init, training, checkpoint, export, CLI."""

import json

import pytest
import torch

from safelora_lite import InputError
from safelora_lite.cli import main
from safelora_lite.methods.salora.features import collect_module_inputs
from safelora_lite.methods.salora.checkpoint import checkpoint_from_model, load_checkpoint, model_from_checkpoint, save_checkpoint
from safelora_lite.methods.salora.model import (
    SaLoRAConfig, SafetyModule, build_model, feature_directions, lora_layers, prepare, subspace_fraction, task_init,
)
from safelora_lite.methods.salora.export import export_checkpoint

CONFIG = SaLoRAConfig(r=4, lora_alpha=8, safety_rank=6, task_rank=8, target_modules=("q_proj", "v_proj"))


def batches(seed, n=3, batch=4, seq=12):
    """Random token batches; the second half of each row is the 'response' (labels != -100)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, 64, (batch, seq), generator=g)
        labels = ids.clone()
        labels[:, : seq // 2] = -100
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return out


def load(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def aligned_dir(tiny_llama_pair):
    return tiny_llama_pair[1]


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def train(model, steps=5, lr=5e-2, seed=0):
    """A few Adam steps with weight decay on random data: anything that could leave range(C)."""
    torch.manual_seed(seed)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.1)
    for batch in batches(100 + seed, n=steps):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def trained(aligned_dir):
    model = build_model(load(aligned_dir), prepare(load(aligned_dir), batches(1), batches(2), CONFIG), CONFIG)
    return train(model)


def test_features_only_response_tokens(aligned_dir):
    model = load(aligned_dir)
    x = collect_module_inputs(model, batches(1, n=2), ["q_proj"])
    assert set(x) == {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"}
    assert x["model.layers.0.self_attn.q_proj"].shape == (2 * 4 * 6, 32)  # 6 response tokens per row
    # the same rows computed by hand: the input of layer 0's q_proj is input_layernorm(embeddings)
    b = batches(1, n=1)[0]
    h = model.model.layers[0].input_layernorm(model.model.embed_tokens(b["input_ids"]))
    expect = h[b["labels"] != -100]
    torch.testing.assert_close(x["model.layers.0.self_attn.q_proj"][: expect.shape[0]], expect)


def test_feature_directions_match_svd_and_are_deterministic():
    torch.manual_seed(0)
    x, w = torch.randn(50, 16), torch.randn(12, 16)
    v = feature_directions(x, w, 3)
    _, _, vh = torch.linalg.svd(x @ w.T)
    proj = v @ v.T
    torch.testing.assert_close(proj, vh[:3].T @ vh[:3], atol=1e-5, rtol=0)
    assert torch.equal(v, feature_directions(x, w, 3))
    with pytest.raises(InputError, match="exceeds"):
        feature_directions(x, w, 13)


def test_safety_module_is_the_projector_without_identity():
    torch.manual_seed(0)
    v_s, _ = torch.linalg.qr(torch.randn(20, 5))
    c = SafetyModule(v_s)
    b = torch.randn(20, 3)
    torch.testing.assert_close(c(b), c.dense() @ b)
    torch.testing.assert_close(c(c(b)), c(b), atol=1e-6, rtol=0)  # idempotent
    assert (v_s.T @ c(b)).abs().max() < 1e-5  # nothing left in the safety subspace


def test_task_init_formula():
    torch.manual_seed(0)
    w = torch.randn(10, 8)
    v_t, _ = torch.linalg.qr(torch.randn(10, 4))
    b0, a0 = task_init(w, v_t, 3)
    u, s, vh = torch.linalg.svd(w)
    torch.testing.assert_close(b0 @ a0, v_t @ v_t.T @ u[:, :3] @ torch.diag(s[:3]) @ vh[:3], atol=1e-5, rtol=0)


def test_zero_change_at_init(aligned_dir):
    model = build_model(load(aligned_dir), prepare(load(aligned_dir), batches(1), batches(2), CONFIG), CONFIG)
    b = batches(7, n=1)[0]
    torch.testing.assert_close(logits(model, b), logits(load(aligned_dir), b), atol=1e-5, rtol=0)
    # but the pieces moved: W_res differs from W, B0 is not zero
    layer = next(iter(lora_layers(model).values()))
    assert layer.lora_B["default"].weight.abs().max() > 0


def test_update_stays_out_of_the_safety_subspace(trained, aligned_dir):
    aligned = load(aligned_dir)
    weights = dict(aligned.named_parameters())
    for name, layer in lora_layers(trained).items():
        v_s = trained.salora_inits[name[len("base_model.model."):]].v_s
        lora_b, lora_a = layer.lora_B["default"].weight, layer.lora_A["default"].weight
        raw = layer.lora_B["default"].parametrizations.weight.original
        assert subspace_fraction(v_s, raw, lora_a) > 1e-3  # Adam + weight decay pushed raw B out of range(C) ...
        assert subspace_fraction(v_s, lora_b, lora_a) < 1e-5  # ... but the update the model uses never is
        w = weights[name[len("base_model.model."):] + ".weight"]
        net = layer.get_base_layer().weight + layer.scaling["default"] * lora_b @ lora_a - w  # (d_out, d_in)
        assert (v_s.T @ net).abs().max() < 1e-5 * max(1.0, net.abs().max().item())
        assert net.abs().max() > 1e-3  # it did train


def test_lora_update_has_a_safety_component(aligned_dir):
    """The control: plain LoRA with the same training does put part of its update in the subspace."""
    from peft import LoraConfig, get_peft_model

    inits = prepare(load(aligned_dir), batches(1), batches(2), CONFIG)
    model = get_peft_model(load(aligned_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    train(model)
    fractions = [subspace_fraction(inits[n[len("base_model.model."):]].v_s, l.lora_B["default"].weight, l.lora_A["default"].weight)
                 for n, l in lora_layers(model).items()]
    assert min(fractions) > 0.05


def test_checkpoint_round_trip_and_export_logits(trained, aligned_dir, tmp_path):
    from peft import PeftModel

    ckpt_dir = save_checkpoint(checkpoint_from_model(trained, info={"step": 5}), tmp_path / "ckpt")
    ckpt = load_checkpoint(ckpt_dir)
    assert ckpt.info["step"] == 5 and ckpt.config == CONFIG
    b = batches(9, n=1)[0]
    expect = logits(trained, b)
    rebuilt = model_from_checkpoint(ckpt, load(aligned_dir)).eval()
    torch.testing.assert_close(logits(rebuilt, b), expect, atol=1e-5, rtol=0)

    out = export_checkpoint(ckpt_dir, tmp_path / "exported")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 2 * CONFIG.r and config["lora_alpha"] / config["r"] == CONFIG.scaling
    served = PeftModel.from_pretrained(load(aligned_dir), str(out)).eval()  # stock peft, unmodified aligned model
    torch.testing.assert_close(logits(served, b), expect, atol=1e-5, rtol=0)
    report = json.loads((out / "salora_export_report.json").read_text())
    assert max(m["safety_fraction"] for m in report["modules"]) < 1e-5
    # and it is not the aligned model itself
    assert (logits(load(aligned_dir), b) - expect).abs().max() > 1e-3


def test_cli_export_and_bad_input(trained, tmp_path, capsys):
    ckpt_dir = save_checkpoint(checkpoint_from_model(trained), tmp_path / "ckpt")
    assert main(["salora-export", "--checkpoint", str(ckpt_dir), "--out", str(tmp_path / "a")]) == 0
    # an existing OUT is an error; nothing is touched
    before = (tmp_path / "a" / "adapter_model.safetensors").read_bytes()
    assert main(["salora-export", "--checkpoint", str(ckpt_dir), "--out", str(tmp_path / "a")]) == 2
    assert (tmp_path / "a" / "adapter_model.safetensors").read_bytes() == before
    assert "already exists" in capsys.readouterr().err
    # an exported adapter (or any other folder) is not a checkpoint
    assert main(["salora-export", "--checkpoint", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "not a SaLoRA checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_bad_checkpoint_values(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    ckpt_dir = save_checkpoint(checkpoint_from_model(trained), tmp_path / "ckpt")
    tensors = load_file(str(ckpt_dir / "salora_state.safetensors"))
    key = next(k for k in tensors if k.endswith(".lora_B0"))
    clean = tensors[key].clone()
    tensors[key][0, 0] = float("nan")
    save_file(tensors, str(ckpt_dir / "salora_state.safetensors"))
    with pytest.raises(InputError, match="NaN"):
        load_checkpoint(ckpt_dir)
    tensors[key] = clean[:, :2].contiguous()
    save_file(tensors, str(ckpt_dir / "salora_state.safetensors"))
    with pytest.raises(InputError, match="shape"):
        load_checkpoint(ckpt_dir)


def test_bad_config_and_modules(aligned_dir):
    model = load(aligned_dir)
    with pytest.raises(InputError, match="no Linear module named 'qq_proj'"):
        prepare(model, batches(1), batches(2), SaLoRAConfig(r=4, safety_rank=2, task_rank=2, target_modules=("qq_proj",)))
    with pytest.raises(InputError, match="r=0"):
        prepare(model, batches(1), batches(2), SaLoRAConfig(r=0))
    no_response = [{**b, "labels": torch.full_like(b["labels"], -100)} for b in batches(1)]
    with pytest.raises(InputError, match="no response tokens"):
        prepare(model, no_response, batches(2), CONFIG)
    with pytest.raises(InputError, match="exceeds"):  # r_s larger than q_proj's 32 outputs
        prepare(model, batches(1), batches(2), SaLoRAConfig(r=4, safety_rank=40, task_rank=4))
