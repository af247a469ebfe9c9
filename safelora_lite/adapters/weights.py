"""Stream weights one tensor at a time from a transformers checkpoint in safetensors format.

A checkpoint directory holds either `model.safetensors` or shards listed in
`model.safetensors.index.json`. `Checkpoint.get(key)` opens only the shard that holds `key`
and reads only that tensor, so two 7B checkpoints can be paired module by module without
ever holding either in memory. Opening a Checkpoint reads every shard's header (no weights), so
a truncated or damaged file is refused before any work starts. `alignment_changes`
streams V = W_aligned - W_base for the post-hoc methods: each weight read once, converted once,
into one fp32 buffer reused per module.
"""

import json
import math
import os
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError, safe_open

from safelora_lite.device import single_thread
from safelora_lite.errors import InputError
from safelora_lite.maths.projection import as_float32

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
BLOCK_ENTRIES = 1 << 20  # entries per block of a conversion pass (4 MB in fp32: stays in cache)


def damaged(path: Path, error: Exception) -> InputError:
    """The one-line refusal of a file that cannot be parsed (cut short by a failed copy or download)."""
    return InputError(f"{path} is truncated or damaged ({str(error).splitlines()[0]}).",
                      "copy or download it again (compare its size with the source's).")


def read_json(path: Path) -> dict:
    """A JSON file, or an InputError naming it."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise damaged(path, error) from None


def _header_keys(path: Path) -> list[str]:
    """The tensor names in one safetensors file, from its header only."""
    try:
        with safe_open(path, framework="pt") as f:
            return list(f.keys())
    except SafetensorError as error:
        raise damaged(path, error) from None


class Checkpoint:
    """Read-only, per-tensor access to a safetensors checkpoint directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if (self.path / INDEX_FILE).is_file():
            weight_map = read_json(self.path / INDEX_FILE).get("weight_map", {})
            self._file_of = {key: self.path / shard for key, shard in weight_map.items()}
            for shard in sorted(set(self._file_of.values())):
                if not shard.is_file():
                    raise InputError(f"{shard}, listed in {INDEX_FILE}, is missing.", "copy or download the whole checkpoint again.")
                missing = {k for k, f in self._file_of.items() if f == shard} - set(_header_keys(shard))
                if missing:
                    raise InputError(f"{shard} lacks {sorted(missing)[0]}, which {INDEX_FILE} places there.", "copy or download the whole checkpoint again.")
        elif (self.path / SINGLE_FILE).is_file():
            self._file_of = {key: self.path / SINGLE_FILE for key in _header_keys(self.path / SINGLE_FILE)}
        else:
            found = "pytorch_model.bin" if (self.path / "pytorch_model.bin").exists() else "no weights"
            raise InputError(
                f"{self.path} has no {SINGLE_FILE} or {INDEX_FILE} ({found} found).",
                "save the model with save_pretrained(safe_serialization=True).",
            )
        config_file = self.path / "config.json"
        self.config = read_json(config_file) if config_file.is_file() else {}

    def keys(self) -> list[str]:
        return list(self._file_of)

    def __contains__(self, key: str) -> bool:
        return key in self._file_of

    def shape(self, key: str) -> tuple[int, ...]:
        with safe_open(self._require(key), framework="pt") as f:
            return tuple(f.get_slice(key).get_shape())

    def get(self, key: str) -> torch.Tensor:
        """One tensor, in its stored dtype (fp16 / bf16 / fp32)."""
        with safe_open(self._require(key), framework="pt") as f:
            return f.get_tensor(key)

    def _require(self, key: str) -> Path:
        if key not in self._file_of:
            raise InputError(f"{self.path} has no weight {key}.", "check that the adapter was trained on this model family.")
        return self._file_of[key]

    @property
    def architecture(self) -> str | None:
        archs = self.config.get("architectures") or [None]
        return archs[0]


def check_same_architecture(base: Checkpoint, aligned: Checkpoint) -> None:
    """Base and aligned must be the same architecture with the same config shapes."""
    if base.architecture != aligned.architecture:
        raise InputError(
            f"base is {base.architecture} but aligned is {aligned.architecture}.",
            "pair an unaligned model with its own aligned sibling.",
        )
    for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_key_value_heads"):
        if base.config.get(field) != aligned.config.get(field):
            raise InputError(
                f"base and aligned disagree on {field} ({base.config.get(field)} vs {aligned.config.get(field)}).",
                "pair checkpoints of the same size.",
            )


class StateDictWeights:
    """The `Checkpoint` interface over an in-memory model or state dict (toy models, notebooks)."""

    def __init__(self, source, name: str = "in-memory model"):
        self.path = name
        self._state = source.state_dict() if hasattr(source, "state_dict") else dict(source)
        config = getattr(source, "config", None)
        self.config = config.to_dict() if hasattr(config, "to_dict") else {}

    def keys(self) -> list[str]:
        return list(self._state)

    def __contains__(self, key: str) -> bool:
        return key in self._state

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._require(key).shape)

    def get(self, key: str) -> torch.Tensor:
        return self._require(key).detach()

    def _require(self, key: str) -> torch.Tensor:
        if key not in self._state:
            raise InputError(f"{self.path} has no weight {key}.", "check that the adapter was trained on this model family.")
        return self._state[key]

    @property
    def architecture(self) -> str | None:
        archs = self.config.get("architectures") or [None]
        return archs[0]


def open_weights(source) -> "Checkpoint | StateDictWeights":
    """A checkpoint directory (str / Path), a Checkpoint, an nn.Module or a state dict -> per-tensor access."""
    if isinstance(source, (Checkpoint, StateDictWeights)):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_dir():
            raise InputError(f"checkpoint directory {path} not found.", "pass a folder saved with save_pretrained.")
        return Checkpoint(path)
    if hasattr(source, "state_dict") or isinstance(source, dict):
        return StateDictWeights(source)
    raise InputError(f"cannot read weights from a {type(source).__name__}.", "pass a checkpoint directory, a model or a state dict.")


def row_blocks(shape) -> Iterator[slice]:
    """Slices of rows of a (d_out, d_in) matrix, each of at most BLOCK_ENTRIES entries (or one row)."""
    rows = max(1, BLOCK_ENTRIES // max(1, shape[-1]))
    return (slice(start, start + rows) for start in range(0, shape[0], rows))


def block_entries(shape) -> int:
    """The most entries one of `row_blocks(shape)` holds: the size of a scratch buffer for them."""
    return min(math.prod(shape), max(BLOCK_ENTRIES, shape[-1]))


def alignment_changes(base, aligned, keys) -> Iterator[tuple[str, torch.Tensor, float]]:
    """(key, V, ||V||_F) for each key, V = W_aligned - W_base in fp32, shape (d_out, d_in).

    Each stored weight (fp16 / bf16 / fp32) is read once and converted once, a cache-sized block of
    rows at a time, into one buffer that every key reuses: no fresh 64 MB tensor is faulted in per
    module, and V is overwritten by the next item (clone it to keep it). ||V||_F doubles as the
    NaN / Inf check: it is finite only if both weights are, and a non-finite one is named.
    """
    buffer, scratch = torch.empty(0), torch.empty(0)
    for key in keys:
        w_base, w_aligned = base.get(key), aligned.get(key)  # stored dtype, (d_out, d_in)
        if w_base.shape != w_aligned.shape:
            raise InputError(f"{key} is {tuple(w_base.shape)} in base but {tuple(w_aligned.shape)} in aligned.",
                             "pair checkpoints of the same architecture.")
        if not (w_base.is_floating_point() and w_aligned.is_floating_point()):
            _check_pair(key, w_base, w_aligned)
        if buffer.numel() < w_aligned.numel() or buffer.device != w_aligned.device:
            buffer = torch.empty(w_aligned.numel(), device=w_aligned.device)
        if scratch.numel() < block_entries(w_aligned.shape) or scratch.device != w_aligned.device:
            scratch = torch.empty(block_entries(w_aligned.shape), device=w_aligned.device)
        v = buffer[: w_aligned.numel()].view(w_aligned.shape)  # (d_out, d_in)
        with single_thread():  # conversions are memory-bound: one thread is as fast, and never waits for another
            for rows in row_blocks(v.shape):
                block = v[rows].copy_(w_aligned[rows])  # (rows, d_in), W_aligned in fp32
                block.sub_(scratch[: block.numel()].view(block.shape).copy_(w_base[rows]))  # V = W_aligned - W_base
        v_norm = float(torch.linalg.matrix_norm(v))  # ||V||_F
        if not math.isfinite(v_norm):
            _check_pair(key, w_base, w_aligned)
            as_float32(v, f"alignment matrix V of {key}")  # finite weights whose difference overflows fp32
        del w_base, w_aligned
        yield key, v, v_norm


def _check_pair(key: str, w_base: torch.Tensor, w_aligned: torch.Tensor) -> None:
    """The full checks, run only once a fast one failed: they raise, naming the weight at fault."""
    as_float32(w_base, f"base weight {key}")
    as_float32(w_aligned, f"aligned weight {key}")
