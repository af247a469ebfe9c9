"""`safelora-lite safe-lora`: a new, loadable adapter on success; one bad input, one line, exit 2, nothing written."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.cli import main


def _cli(capsys, adapter, base, aligned, out, *extra) -> tuple[int, str]:
    capsys.readouterr()  # drop what building the fixtures printed
    if "--select" not in extra and "--num-proj-layers" not in extra:
        extra = (*extra, "--num-proj-layers", "1")
    code = main(["safe-lora", "--adapter", str(adapter), "--base", str(base), "--aligned", str(aligned), "--out", str(out), *extra])
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, out: Path, *words: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("safelora-lite safe-lora: error:"), err
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))  # no half-written sibling


def _tiny(hidden: int = 32, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(3)
    return LlamaForCausalLM(config)


def _lora_on(model, folder: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).save_pretrained(folder)
    return folder


def _copy_with(folder: Path, target: Path, change) -> Path:
    """A copy of a checkpoint folder whose weights were changed by `change(tensors)`."""
    shutil.copytree(folder, target)
    tensors = load_file(str(target / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_output_loads_with_stock_peft_and_update_is_cba(tiny_llama_pair, tmp_path, capsys):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "projected"
    code, _ = _cli(capsys, adapter_dir, base_dir, aligned_dir, out, "--select", "number", "--num-proj-layers", "2")
    assert code == 0
    report = json.loads((out / "safelora_report.json").read_text())
    assert [set(m) >= {"name", "score", "projected"} for m in report["modules"]] == [True] * 4
    selected = {m["name"] for m in report["modules"] if m["projected"]}
    assert len(selected) == 2
    original = read_adapter(adapter_dir)
    base, aligned = load_file(str(base_dir / "model.safetensors")), load_file(str(aligned_dir / "model.safetensors"))
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(aligned_dir), out)
    for name, m in original.modules.items():
        delta = model.get_submodule(name).get_delta_weight("default").double()  # what peft will add to W
        v = aligned[m.target].double() - base[m.target].double()
        c = v @ v.T / torch.linalg.matrix_norm(v)  # paper's C, dense
        ba = m.scaling * m.lora_b.double() @ m.lora_a.double()
        assert torch.allclose(delta, c @ ba if name in selected else ba, atol=1e-5), name


def test_threshold_and_exact_from_the_command_line(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "exact"
    code, _ = _cli(capsys, adapter_dir, base_dir, aligned_dir, out, "--select", "threshold", "--threshold", "0.99",
                   "--projector", "exact", "--rank", "2")
    assert code == 0
    report = json.loads((out / "safelora_report.json").read_text())
    assert report["projector"] == "exact" and report["rank"] == 2
    assert all(m["projected"] == (m["score"] <= 0.99) for m in report["modules"])


def test_different_architectures(tiny_llama_pair, tmp_path, capsys):
    base_dir, _, adapter_dir = tiny_llama_pair
    other = tmp_path / "wider"
    _tiny(hidden=48).save_pretrained(other)
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter_dir, base_dir, other, out), out, "hidden_size")


def test_different_shapes(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    key = "model.layers.1.self_attn.q_proj.weight"

    def shrink(tensors):
        tensors[key] = tensors[key][:16].contiguous()

    bad = _copy_with(aligned_dir, tmp_path / "aligned_bad", shrink)
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter_dir, base_dir, bad, out), out, key)


def test_target_modules_missing_from_base(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, _ = tiny_llama_pair
    adapter = _lora_on(_tiny(layers=3), tmp_path / "three_layer_adapter")
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter, base_dir, aligned_dir, out), out, "layers.2", "does not have")


def test_adapter_for_another_model(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, _ = tiny_llama_pair
    adapter = _lora_on(_tiny(hidden=48), tmp_path / "wide_adapter")
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter, base_dir, aligned_dir, out), out, "another model")


def test_nan_in_adapter(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    bad = tmp_path / "nan_adapter"
    shutil.copytree(adapter_dir, bad)
    tensors = load_file(str(bad / "adapter_model.safetensors"))
    key = sorted(k for k in tensors if "lora_B" in k)[-1]
    tensors[key][0, 0] = float("nan")
    save_file(tensors, str(bad / "adapter_model.safetensors"))
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, bad, base_dir, aligned_dir, out), out, "NaN or Inf", "lora_B")


def test_inf_in_aligned_checkpoint(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    key = "model.layers.1.self_attn.v_proj.weight"

    def poison(tensors):
        tensors[key][3, 3] = float("inf")

    bad = _copy_with(aligned_dir, tmp_path / "aligned_inf", poison)
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter_dir, base_dir, bad, out), out, "NaN or Inf", key)


def test_k_larger_than_number_of_modules(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "out"
    _assert_refused(*_cli(capsys, adapter_dir, base_dir, aligned_dir, out, "--num-proj-layers", "5"), out, "K=5", "4 LoRA modules")


@pytest.mark.parametrize("threshold", ["1.5", "-1.01"])
def test_threshold_outside_range(tiny_llama_pair, tmp_path, capsys, threshold):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "out"
    code, err = _cli(capsys, adapter_dir, base_dir, aligned_dir, out, "--select", "threshold", "--threshold", threshold)
    _assert_refused(code, err, out, "outside [-1, 1]")


def test_out_already_exists_is_left_alone(tiny_llama_pair, tmp_path, capsys):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _cli(capsys, adapter_dir, base_dir, aligned_dir, out, "--num-proj-layers", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "already exists" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_real_process_exit_status(tiny_llama_pair, tmp_path):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "safelora_lite", "safe-lora", "--adapter", str(adapter_dir), "--base", str(base_dir),
                           "--aligned", str(aligned_dir), "--out", str(out), "--num-proj-layers", "9"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len([line for line in proc.stderr.splitlines() if "error" in line]) == 1
    assert not out.exists()
