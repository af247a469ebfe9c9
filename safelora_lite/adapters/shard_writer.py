"""Write a safetensors file one tensor at a time, so that no whole shard is ever held in memory.

`safetensors.torch.save_file` needs every tensor of a file at once: LoX on a hub checkpoint (shards
of up to 10 GB) would hold a whole shard. The format is a little-endian u64 header length, a JSON
header (per tensor: dtype, shape, byte offsets; padded with spaces to 8 bytes), then the raw bytes
in offset order. When every tensor's dtype and shape are known first, as they are for an output
that mirrors an input checkpoint's layout, the header goes first and each tensor follows as it is made.

    layout = shard_layout(path_of_the_input_shard)          # {key: (dtype name, shape)}
    with ShardWriter(out_path, layout) as out:
        for key in layout: out.write(key, tensor)           # in layout order
"""

import json
import math
import struct
from pathlib import Path

import torch
from safetensors import safe_open

_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}  # bytes per element, by safetensors dtype name


def shard_layout(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{key: (safetensors dtype name, shape)} of every tensor in a safetensors file, from its header."""
    with safe_open(str(path), framework="pt") as f:
        return {key: (f.get_slice(key).get_dtype(), tuple(f.get_slice(key).get_shape())) for key in f.keys()}


class ShardWriter:
    """A safetensors file written in `layout` order; `close` (or the `with` block) checks it is complete."""

    def __init__(self, path: str | Path, layout: dict[str, tuple[str, tuple[int, ...]]], metadata: dict | None = None):
        self._sizes = {}  # key: byte count
        header, offset = ({"__metadata__": metadata} if metadata else {}), 0
        for key, (dtype, shape) in layout.items():
            size = math.prod(shape) * _ITEM_BYTES[dtype]
            header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
            self._sizes[key] = size
            offset += size
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        self._order = iter(layout)
        self._file = open(path, "wb")
        self._file.write(struct.pack("<Q", len(text)) + text)

    def write(self, key: str, tensor: torch.Tensor) -> None:
        """The next tensor of the layout, in its declared dtype and shape."""
        expected = next(self._order, None)
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # its bytes, no copy when contiguous
        if key != expected or raw.numel() != self._sizes[key]:
            raise ValueError(f"shard writer: got {key} ({raw.numel()} bytes), expected {expected} in layout order.")
        self._file.write(raw.numpy())

    def close(self) -> None:
        missing = next(self._order, None)
        self._file.close()
        if missing is not None:
            raise ValueError(f"shard writer: {missing} was never written.")

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()

