"""Model loading: the real shapes written in code, stand-ins of the same family, dtype and quantization choices."""

import pytest
import torch

from safelora_lite import InputError
from safelora_lite.adapters.model_loading import (LLAMA2_BASE, LLAMA2_CHAT, TINYLLAMA_BASE, TINYLLAMA_CHAT, family_of, load_model,
                                         quantization_available, real_config, resolve_dtype, weights_dir)


def meta_model(config):
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(config)


@pytest.mark.parametrize("model_id, n_params", [(TINYLLAMA_BASE, 1_100_048_384), (LLAMA2_CHAT, 6_738_415_616)])
def test_real_shapes_give_the_published_parameter_counts(model_id, n_params):
    model = meta_model(real_config(model_id))
    assert sum(p.numel() for p in model.parameters()) == n_params


def test_tinyllama_has_grouped_query_attention_and_llama2_does_not():
    tiny = meta_model(real_config(TINYLLAMA_CHAT, num_hidden_layers=1)).model.layers[0].self_attn
    assert tuple(tiny.k_proj.weight.shape) == (256, 2048) and tuple(tiny.q_proj.weight.shape) == (2048, 2048)
    big = meta_model(real_config(LLAMA2_BASE, num_hidden_layers=1)).model.layers[0].self_attn
    assert tuple(big.v_proj.weight.shape) == (4096, 4096)


def test_family_names_and_unknown_ids():
    assert family_of("TinyLlama/TinyLlama-1.1B-Chat-v1.0") == "tinyllama-1.1b"
    assert family_of("meta-llama/Llama-2-7b-chat-hf") == "llama-2-7b"
    with pytest.raises(InputError, match="no known shapes"):
        family_of("gpt2")


def test_stand_in_is_a_small_model_of_the_same_family(tmp_path):
    base = load_model(TINYLLAMA_BASE, "stand-in", device="cpu")
    chat = load_model(TINYLLAMA_CHAT, "stand-in", device="cpu")
    cfg = base.model.config
    assert type(base.model).__name__ == "LlamaForCausalLM"
    assert cfg.num_attention_heads // cfg.num_key_value_heads == 8  # TinyLlama's 32 / 4
    assert sum(p.numel() for p in base.model.parameters()) < 1_000_000
    text = "How many apples? #### 7"
    ids = base.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert base.tokenizer.decode(ids) == text
    b, c = base.model.state_dict(), chat.model.state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert b[key].shape == c[key].shape and not torch.equal(b[key], c[key])  # aligned stand-in = base + a small change
    assert torch.equal(b["model.embed_tokens.weight"], c["model.embed_tokens.weight"])
    assert (weights_dir(TINYLLAMA_BASE, "stand-in") / "model.safetensors").is_file()


def test_llama2_stand_in_uses_full_multi_head_attention():
    cfg = load_model(LLAMA2_BASE, "stand-in", device="cpu").model.config
    assert cfg.num_attention_heads == cfg.num_key_value_heads


def test_random_real_shapes_with_fewer_layers_and_a_chosen_dtype():
    loaded = load_model(TINYLLAMA_BASE, "random-real-shapes", dtype="bf16", device="cpu", num_hidden_layers=1)
    attn = loaded.model.model.layers[0].self_attn
    assert loaded.tokenizer is None and loaded.dtype == torch.bfloat16
    assert attn.k_proj.weight.dtype == torch.bfloat16 and tuple(attn.k_proj.weight.shape) == (256, 2048)
    assert loaded.model.lm_head.weight.shape == (32000, 2048)


def test_dtype_choice():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("fp16", cpu) == torch.float16 and resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(InputError, match="unknown dtype"):
        resolve_dtype("int3", cpu)


def test_gradient_checkpointing_is_switched_on():
    loaded = load_model(LLAMA2_CHAT, "stand-in", device="cpu", gradient_checkpointing=True)
    model = loaded.model
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    assert model.config.use_cache is False


def test_quantization_is_skipped_cleanly_without_bitsandbytes_or_gpu():
    ok, why = quantization_available()
    if ok:
        pytest.skip("bitsandbytes and a GPU are here")
    assert "\n" not in why
    with pytest.raises(InputError, match="4bit quantization is unavailable"):
        load_model(TINYLLAMA_CHAT, "stand-in", quantization="4bit", device="cpu")


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="unknown model_source"):
        load_model(TINYLLAMA_CHAT, "s3")
    with pytest.raises(InputError, match="is not a folder"):
        load_model(TINYLLAMA_CHAT, "local", local_dir=tmp_path / "missing")
    with pytest.raises(InputError, match="cannot load") as error:  # offline: no hub here
        load_model("nobody/no-such-model-xyz", "hub", device="cpu")
    assert "\n" not in str(error.value)


def test_hub_ids_resolve_through_the_local_cache_and_folders_stay_folders(fake_hub, tiny_llama_pair, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(fake_hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    base = tiny_llama_pair[0]
    folder = weights_dir("org/tiny-base", "hub")
    assert (folder / "model.safetensors").read_bytes() == (base / "model.safetensors").read_bytes()
    assert weights_dir(str(base), "hub") == base  # a local folder is used as is
    with pytest.raises(InputError, match="not in the local Hugging Face cache"):
        weights_dir("org/absent", "hub")
    with pytest.raises(InputError, match="no safetensors weights"):
        weights_dir("org/pickled", "hub")
