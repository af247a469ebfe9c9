"""Stream weights one tensor at a time from a transformers checkpoint in safetensors format.

A checkpoint directory holds either `model.safetensors` or shards listed in
`model.safetensors.index.json`. `Checkpoint.get(key)` opens only the shard that holds `key`
and reads only that tensor, so two 7B checkpoints can be paired module by module without
ever holding either in memory.
"""

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open

from safelora_lite.errors import InputError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class Checkpoint:
    """Read-only, per-tensor access to a safetensors checkpoint directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if (self.path / INDEX_FILE).is_file():
            weight_map = json.loads((self.path / INDEX_FILE).read_text())["weight_map"]
            self._file_of = {key: self.path / shard for key, shard in weight_map.items()}
        elif (self.path / SINGLE_FILE).is_file():
            with safe_open(self.path / SINGLE_FILE, framework="pt") as f:
                self._file_of = {key: self.path / SINGLE_FILE for key in f.keys()}
        else:
            found = "pytorch_model.bin" if (self.path / "pytorch_model.bin").exists() else "no weights"
            raise InputError(
                f"{self.path} has no {SINGLE_FILE} or {INDEX_FILE} ({found} found).",
                "save the model with save_pretrained(safe_serialization=True).",
            )
        config_file = self.path / "config.json"
        self.config = json.loads(config_file.read_text()) if config_file.is_file() else {}

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
