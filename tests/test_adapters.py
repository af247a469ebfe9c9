"""PEFT adapter I/O: names, scalings (rank_pattern / alpha_pattern / rsLoRA), peft agreement, refusals."""

import json
import shutil

import pytest
import torch

from safelora_lite.adapters.lora_io import (
    LoraModule, adapter_from_peft_model, load_adapter_into_peft_model, module_target, read_adapter, write_adapter,
)
from safelora_lite.errors import InputError


def _peft(aligned_dir, **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(5)
    return get_peft_model(LlamaForCausalLM.from_pretrained(aligned_dir), LoraConfig(init_lora_weights=False, **lora))


def test_names_and_targets(tiny_llama_pair):
    adapter = read_adapter(tiny_llama_pair[2])
    assert list(adapter.modules) == [f"base_model.model.model.layers.{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")]
    m = adapter.modules["base_model.model.model.layers.1.self_attn.v_proj"]
    assert m.target == "model.layers.1.self_attn.v_proj.weight" == module_target(m.name)
    assert m.lora_a.shape == (4, 32) and m.lora_b.shape == (16, 4) and m.scaling == 2.0


@pytest.mark.parametrize("rslora", [False, True])
def test_scalings_match_peft_with_patterns(tiny_llama_pair, tmp_path, rslora):
    model = _peft(tiny_llama_pair[1], r=4, lora_alpha=8, use_rslora=rslora, target_modules=["q_proj", "v_proj", "down_proj"],
                  rank_pattern={"down_proj": 2, "layers.1.self_attn.q_proj": 6}, alpha_pattern={"v_proj": 3})
    model.save_pretrained(tmp_path / "a")
    adapter = read_adapter(tmp_path / "a")
    for name, m in adapter.modules.items():
        layer = model.get_submodule(name)
        assert m.rank == layer.r["default"]
        assert m.scaling == pytest.approx(layer.scaling["default"])
        assert torch.allclose(m.delta(), layer.get_delta_weight("default"), atol=1e-6)


def test_roundtrip_and_in_memory_agree(tiny_llama_pair, tmp_path):
    adapter = read_adapter(tiny_llama_pair[2])
    write_adapter(adapter, tmp_path / "copy")
    again = read_adapter(tmp_path / "copy")
    assert again.config == adapter.config
    for name, m in adapter.modules.items():
        assert torch.equal(again.modules[name].lora_a, m.lora_a) and torch.equal(again.modules[name].lora_b, m.lora_b)
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama_pair[1]), tiny_llama_pair[2])
    in_memory = adapter_from_peft_model(model)
    assert list(in_memory.modules) == list(adapter.modules)
    for name, m in adapter.modules.items():
        assert torch.equal(in_memory.modules[name].lora_b, m.lora_b)
        assert in_memory.modules[name].scaling == m.scaling


def test_load_into_peft_model_and_rewrite_config(tiny_llama_pair, tmp_path):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    adapter = read_adapter(tiny_llama_pair[2])
    name = next(iter(adapter.modules))
    m = adapter.modules[name]
    doubled = adapter.with_modules({name: LoraModule(name, m.lora_a, 2 * m.lora_b, m.scaling)})
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama_pair[1]), tiny_llama_pair[2])
    load_adapter_into_peft_model(doubled, model)
    assert torch.allclose(model.get_submodule(name).get_delta_weight("default"), 2 * m.delta(), atol=1e-6)
    # a module with another rank and scaling: rewrite_config makes peft rebuild it faithfully
    wider = LoraModule(name, torch.cat([m.lora_a, m.lora_a]), torch.cat([m.lora_b, m.lora_b], dim=1) / 2, m.scaling * 3)
    changed = adapter.with_modules({name: wider})
    write_adapter(changed, tmp_path / "wider", rewrite_config=True)
    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(tiny_llama_pair[1]), tmp_path / "wider")
    for n, mod in changed.modules.items():
        assert torch.allclose(model.get_submodule(n).get_delta_weight("default"), mod.delta(), atol=1e-6)
    with pytest.raises(InputError, match="unknown module"):
        adapter.with_modules({"nope": m})


def test_read_adapter_refuses_what_it_cannot_handle(tiny_llama_pair, tmp_path):
    with pytest.raises(InputError, match="not a PEFT adapter"):
        read_adapter(tmp_path)
    bin_only = tmp_path / "bin"
    shutil.copytree(tiny_llama_pair[2], bin_only)
    (bin_only / "adapter_model.safetensors").rename(bin_only / "adapter_model.bin")
    with pytest.raises(InputError, match="adapter_model.bin"):
        read_adapter(bin_only)
    dora = tmp_path / "dora"
    shutil.copytree(tiny_llama_pair[2], dora)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(InputError, match="DoRA"):
        read_adapter(dora)
    ia3 = tmp_path / "ia3"
    shutil.copytree(tiny_llama_pair[2], ia3)
    (ia3 / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "IA3"}))
    with pytest.raises(InputError, match="not LoRA"):
        read_adapter(ia3)
