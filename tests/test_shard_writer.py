"""ShardWriter: a safetensors file written one tensor at a time reads back like save_file's."""

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from safelora_lite.adapters.shard_writer import ShardWriter, shard_layout


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"w16": torch.randn(3, 5, generator=g).half(), "wbf": torch.randn(7, generator=g).bfloat16(),
            "w32": torch.randn(2, 2, 2, generator=g), "ids": torch.arange(5), "mask": torch.tensor([True, False, True]),
            "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4)}


def test_streamed_file_reads_back_like_save_file(tmp_path):
    tensors = _tensors()
    save_file(tensors, str(tmp_path / "reference.safetensors"), metadata={"format": "pt"})
    layout = shard_layout(tmp_path / "reference.safetensors")
    assert layout["w16"] == ("F16", (3, 5)) and layout["scalar"] == ("F32", ())
    with ShardWriter(tmp_path / "streamed.safetensors", layout, metadata={"format": "pt"}) as out:
        for key in layout:
            out.write(key, tensors[key])
    back = load_file(str(tmp_path / "streamed.safetensors"))
    assert set(back) == set(tensors)
    for key, tensor in tensors.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key
    with safe_open(str(tmp_path / "streamed.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_wrong_order_size_or_a_missing_tensor_is_refused(tmp_path):
    layout = {"a": ("F32", (2, 3)), "b": ("F16", (4,))}
    with pytest.raises(ValueError, match="expected a"):
        with ShardWriter(tmp_path / "order.safetensors", layout) as out:
            out.write("b", torch.zeros(4).half())
    with pytest.raises(ValueError, match="expected a"):
        with ShardWriter(tmp_path / "size.safetensors", layout) as out:
            out.write("a", torch.zeros(3, 3))
    out = ShardWriter(tmp_path / "short.safetensors", layout)
    out.write("a", torch.zeros(2, 3))
    with pytest.raises(ValueError, match="b was never written"):
        out.close()
