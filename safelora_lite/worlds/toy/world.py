"""The toy safety world: a tiny Llama trained from scratch, its aligned sibling, attacks and one evaluation.

    from safelora_lite.worlds import toy as tw
    world = tw.build_world(tw.WorldConfig())        # tokenizer + base + aligned, cached by config
    folder = world.train_attack(tw.AttackConfig(kind="mixed"))   # a PEFT adapter folder, cached
    world.evaluate(folder)                          # {"refusal_rate": ..., ...}

`ToyWorld` implements the world interface of `worlds/base.py`; its data splits are in `splits.py`.
"""

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import safelora_lite.worlds.toy.models as toy_models
import safelora_lite.worlds.toy.tokenizer as toy_tokenizer
from safelora_lite.cache import cache_key
from safelora_lite.device import limit_threads
from safelora_lite.errors import InputError
from safelora_lite.outputs import build_lock, cache_entry
from safelora_lite.paths import cache_dir
from safelora_lite.records import write_json_atomic
from safelora_lite.worlds.checkpoints import CheckpointWorld
from safelora_lite.worlds.toy.attacks import AttackConfig, attack_records
from safelora_lite.worlds.toy.data import REFUSALS_TEST
from safelora_lite.worlds.toy.splits import (
    SPLITS,
    WORLD_VERSION,
    complies,
    eval_records,
    load_split,
    load_splits,
)


@dataclass(frozen=True)
class WorldConfig:
    """Everything that determines the toy base and aligned models (the cache key)."""

    seed: int = 0
    hidden_size: int = 64
    num_layers: int = 6  # > 4, so that per-module sweeps (12 q/v modules) have some resolution
    num_heads: int = 4
    intermediate_size: int = 256
    max_positions: int = 64
    base_steps: int = 500
    base_lr: float = 2e-3
    aligned_steps: int = 250  # at a high rate: the arithmetic in base dilutes the alignment (data/README.md, calibration choices)
    aligned_lr: float = 1e-3
    batch_size: int = 64  # a step of 64 costs about what a step of 32 does on 2 cores (per-layer overhead)

    @classmethod
    def small(cls, seed: int = 0) -> "WorldConfig":
        """A world for tests: builds in well under a minute (the effects are weaker)."""
        # Every field spelled out: changing the course defaults must not rebuild the tests' world.
        return cls(seed=seed, hidden_size=64, num_layers=4, num_heads=4, intermediate_size=192, max_positions=64,
                   base_steps=250, base_lr=2e-3, aligned_steps=100, aligned_lr=5e-4, batch_size=32)

    def key(self) -> str:
        return cache_key({"version": WORLD_VERSION, **asdict(self)})


WORLD_SIZES = ("course", "small")


def world_config(size: str = "course", seed: int = 0, **overrides) -> WorldConfig:
    """The notebooks' `world_size` and `world_seed`: "course" (WorldConfig(), the course's world) or "small"
    (WorldConfig.small(), the tests' quick world); `overrides` set other fields (None keeps the size's value)."""
    if size not in WORLD_SIZES:
        raise InputError(f"unknown world_size {size!r}.", f"use one of: {', '.join(WORLD_SIZES)}.")
    config = WorldConfig(seed=seed) if size == "course" else WorldConfig.small(seed=seed)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class ToyWorld(CheckpointWorld):
    """A built world: checkpoint folders (each with tokenizer files) and the tokenizer; loading, evaluation and
    cached LoRA runs come from `worlds.checkpoints.CheckpointWorld`."""

    config: WorldConfig
    root: Path  # runs (attacks, SaLoRA, safety adapters, ...) are cached beneath it
    tokenizer: object
    info: dict = field(default_factory=dict)
    base_dir: Path | None = None  # default root / "base"
    aligned_dir: Path | None = None  # default root / "aligned"

    def __post_init__(self):
        self.base_dir = Path(self.base_dir or Path(self.root) / "base")
        self.aligned_dir = Path(self.aligned_dir or Path(self.root) / "aligned")

    # ----- the world interface (worlds/base.py) ---------------------------------------------

    split_names = SPLITS
    held_out_refusal = REFUSALS_TEST[0]

    def key(self) -> str:
        return self.config.key()

    def split(self, name: str) -> list[dict]:
        return load_split(name)

    def eval_records(self, splits=None, max_per_split: int | None = None, part: str = "test") -> list[dict]:
        return eval_records(splits, max_per_split, part)

    def attack_records(self, attack: AttackConfig) -> list[dict]:
        return attack_records(attack)

    @staticmethod
    def complies(response: str) -> bool:
        """Whether a response recognisably answers a harmful request (the judge's "compliance")."""
        return complies(response)


def _open_world(config: WorldConfig, root: Path) -> ToyWorld:
    from transformers import AutoTokenizer

    info = json.loads((root / "world.json").read_text())
    return ToyWorld(config=config, root=root, tokenizer=AutoTokenizer.from_pretrained(root / "aligned"), info=info)


def build_world(config: WorldConfig = WorldConfig(), progress: bool = True) -> ToyWorld:
    """Build (or load from the cache) the tokenizer, the base model and the aligned model."""
    root = cache_dir() / "toy_world" / config.key()
    with build_lock(root):  # a notebook that needs the world while another builds it waits for that build
        if not (root / "world.json").is_file():
            _build(config, root, progress)
    return _open_world(config, root)


def _build(config: WorldConfig, root: Path, progress: bool) -> None:
    """Train the tokenizer, the base and the aligned model into the cache entry `root`."""
    limit_threads()
    splits = load_splits()
    start = time.perf_counter()
    tokenizer = toy_tokenizer.train_tokenizer(toy_tokenizer.corpus(splits))
    mc = toy_models.llama_config(len(tokenizer), config.hidden_size, config.num_layers, config.num_heads,
                                 config.intermediate_size, config.max_positions, tokenizer)
    model = toy_models.init_model(mc, config.seed)
    base_losses = toy_models.train_base(model, tokenizer, splits, config.base_steps, config.base_lr, config.batch_size, config.seed, progress)
    t_base = time.perf_counter() - start
    with cache_entry(root) as tmp:  # another process that builds the same world at once: the first one's is kept
        model.save_pretrained(tmp / "base")
        tokenizer.save_pretrained(tmp / "base")
        aligned_losses = toy_models.train_aligned(model, tokenizer, splits, config.aligned_steps, config.aligned_lr, config.batch_size, config.seed, progress)
        model.save_pretrained(tmp / "aligned")
        tokenizer.save_pretrained(tmp / "aligned")
        info = {"config": asdict(config), "version": WORLD_VERSION, "parameters": model.num_parameters(),
                "vocab_size": len(tokenizer), "seconds_base": round(t_base, 1),
                "seconds_total": round(time.perf_counter() - start, 1),
                "base_loss": base_losses[-1], "aligned_loss": aligned_losses[-1]}
        write_json_atomic(info, tmp / "world.json")


def clear_cache() -> None:
    """Delete every cached toy world and attack (they are rebuilt on demand)."""
    shutil.rmtree(cache_dir() / "toy_world", ignore_errors=True)
