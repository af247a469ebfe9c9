"""Per-tensor weight access: single file, sharded with an index, in memory; dtypes kept; bad folders refused."""

import json

import pytest
import torch
from safetensors.torch import load_file

from safelora_lite.errors import InputError
from safelora_lite.adapters.weights import Checkpoint, StateDictWeights, check_same_architecture, open_weights


def test_single_and_sharded_give_the_same_tensors(tiny_llama_pair, tmp_path):
    from transformers import LlamaForCausalLM

    base_dir = tiny_llama_pair[0]
    single = Checkpoint(base_dir)
    LlamaForCausalLM.from_pretrained(base_dir).save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    sharded = Checkpoint(tmp_path / "sharded")
    reference = load_file(str(base_dir / "model.safetensors"))
    assert set(sharded.keys()) == set(single.keys()) == set(reference)
    for key, tensor in reference.items():
        assert torch.equal(sharded.get(key), tensor) and torch.equal(single.get(key), tensor)
        assert sharded.shape(key) == tuple(tensor.shape)
    assert single.architecture == "LlamaForCausalLM" and single.config["hidden_size"] == 32


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_stored_dtype_is_kept(tiny_llama_pair, tmp_path, dtype):
    from transformers import LlamaForCausalLM

    LlamaForCausalLM.from_pretrained(tiny_llama_pair[0]).to(dtype).save_pretrained(tmp_path / "half")
    assert Checkpoint(tmp_path / "half").get("model.layers.0.self_attn.q_proj.weight").dtype == dtype


def test_bad_folders_and_keys(tiny_llama_pair, tmp_path):
    with pytest.raises(InputError, match="no model.safetensors"):
        Checkpoint(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(InputError, match="pytorch_model.bin"):
        Checkpoint(tmp_path)
    with pytest.raises(InputError, match="has no weight"):
        Checkpoint(tiny_llama_pair[0]).get("model.layers.9.self_attn.q_proj.weight")
    with pytest.raises(InputError, match="not found"):
        open_weights(tmp_path / "missing")
    with pytest.raises(InputError, match="cannot read weights"):
        open_weights(42)


def test_damaged_shards_are_refused_when_the_checkpoint_is_opened(tiny_llama_pair, tmp_path):
    from transformers import LlamaForCausalLM

    LlamaForCausalLM.from_pretrained(tiny_llama_pair[0]).save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shards = sorted((tmp_path / "sharded").glob("*.safetensors"))
    index = tmp_path / "sharded" / "model.safetensors.index.json"
    listed = json.loads(index.read_text())
    key = next(k for k, f in listed["weight_map"].items() if f == shards[0].name)
    index.write_text(json.dumps({**listed, "weight_map": {**listed["weight_map"], key: shards[-1].name}}))
    with pytest.raises(InputError, match=f"{shards[-1].name} lacks {key}"):  # an index from another save
        Checkpoint(tmp_path / "sharded")
    index.write_text(json.dumps(listed))
    last = shards[-1].read_bytes()
    shards[-1].write_bytes(last[: len(last) - 100])  # a download cut short
    with pytest.raises(InputError, match=f"{shards[-1].name} is truncated or damaged"):
        Checkpoint(tmp_path / "sharded")
    shards[-1].unlink()
    with pytest.raises(InputError, match=f"{shards[-1].name}, listed in model.safetensors.index.json, is missing"):
        Checkpoint(tmp_path / "sharded")
    index.write_text(index.read_text()[:-10])
    with pytest.raises(InputError, match="truncated or damaged"):
        Checkpoint(tmp_path / "sharded")


def test_in_memory_weights_match_the_checkpoint(tiny_llama_pair):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(tiny_llama_pair[0])
    checkpoint = open_weights(tiny_llama_pair[0])
    for source in (open_weights(model), open_weights(model.state_dict())):
        assert isinstance(source, StateDictWeights)
        key = "model.layers.1.mlp.down_proj.weight"
        assert key in source and torch.equal(source.get(key), checkpoint.get(key))
        assert source.shape(key) == checkpoint.shape(key)
    assert open_weights(model).architecture == "LlamaForCausalLM"
    check_same_architecture(open_weights(model), checkpoint)


def test_check_same_architecture(tiny_llama_pair, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    base, aligned = Checkpoint(tiny_llama_pair[0]), Checkpoint(tiny_llama_pair[1])
    check_same_architecture(base, aligned)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "deeper")
    with pytest.raises(InputError, match="num_hidden_layers"):
        check_same_architecture(base, Checkpoint(tmp_path / "deeper"))
    other = json.loads((tmp_path / "deeper" / "config.json").read_text())
    (tmp_path / "deeper" / "config.json").write_text(json.dumps({**other, "architectures": ["MistralForCausalLM"]}))
    with pytest.raises(InputError, match="MistralForCausalLM"):
        check_same_architecture(base, Checkpoint(tmp_path / "deeper"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_alignment_changes_are_exact_differences_in_any_block_size(monkeypatch, dtype):
    from safelora_lite.adapters import weights

    monkeypatch.setattr(weights, "BLOCK_ENTRIES", 50)  # several blocks per matrix, and a block of one row
    g = torch.Generator().manual_seed(0)
    shapes = {"big": (24, 12), "small": (5, 7), "wide": (3, 80), "again": (24, 12)}  # the buffer grows, then is reused
    base = {k: torch.randn(s, generator=g).to(dtype) for k, s in shapes.items()}
    aligned = {k: (w.float() + 0.01 * torch.randn(w.shape, generator=g)).to(dtype) for k, w in base.items()}
    threads = torch.get_num_threads()
    seen = []
    for key, v, v_norm in weights.alignment_changes(StateDictWeights(base), StateDictWeights(aligned), list(shapes)):
        expected = aligned[key].float() - base[key].float()  # (d_out, d_in), fp32
        assert v.dtype == torch.float32 and torch.equal(v, expected), key
        assert v_norm == float(torch.linalg.matrix_norm(expected))
        assert torch.get_num_threads() == threads  # one thread inside the pass only
        seen.append(key)
    assert seen == list(shapes)


def test_alignment_changes_name_the_weight_with_nan_or_inf():
    from safelora_lite.adapters.weights import alignment_changes

    good = {"w": torch.ones(4, 4)}
    bad = {"w": torch.ones(4, 4)}
    bad["w"][1, 2] = float("inf")
    with pytest.raises(InputError, match="base weight w contains NaN or Inf"):
        list(alignment_changes(StateDictWeights(bad), StateDictWeights(good), ["w"]))
    with pytest.raises(InputError, match="aligned weight w contains NaN or Inf"):
        list(alignment_changes(StateDictWeights(good), StateDictWeights(bad), ["w"]))
    with pytest.raises(InputError, match="floating-point"):
        list(alignment_changes(StateDictWeights({"w": torch.ones(4, 4, dtype=torch.int8)}), StateDictWeights(good), ["w"]))
