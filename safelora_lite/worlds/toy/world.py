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

import torch

import safelora_lite.worlds.toy.models as toy_models
import safelora_lite.worlds.toy.tokenizer as toy_tokenizer
from safelora_lite.worlds.toy.data import REFUSALS_TEST
from safelora_lite.outputs import cache_entry
from safelora_lite.cache import cache_key
from safelora_lite.device import limit_threads
from safelora_lite.errors import InputError
from safelora_lite.evaluation.evaluator import Evaluator
from safelora_lite.evaluation.generation import evaluate_records
from safelora_lite.paths import cache_dir
from safelora_lite.records import write_json_atomic
from safelora_lite.training.runs import curve_recorder, run_is_cached, save_run
from safelora_lite.training.sft import train
from safelora_lite.worlds.base import LoraRun
from safelora_lite.worlds.toy.attacks import AttackConfig, attack_records
from safelora_lite.worlds.toy.splits import SPLITS, WORLD_VERSION, complies, eval_records, load_split, load_splits


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
class ToyWorld:
    """A built world: checkpoint folders (each with tokenizer files) and the tokenizer."""

    config: WorldConfig
    root: Path  # runs (attacks, SaLoRA, safety adapters, ...) are cached beneath it
    tokenizer: object
    info: dict = field(default_factory=dict)
    base_dir: Path | None = None  # default root / "base"
    aligned_dir: Path | None = None  # default root / "aligned"

    def __post_init__(self):
        self.base_dir = Path(self.base_dir or Path(self.root) / "base")
        self.aligned_dir = Path(self.aligned_dir or Path(self.root) / "aligned")

    def load_model(self, which: str = "aligned", device=None, adapter=None):
        """The base or aligned LlamaForCausalLM in eval mode (fp32) on `device` (default CPU); with `adapter`
        (a PEFT folder), the adapter merged into it by stock peft."""
        from transformers import LlamaForCausalLM

        if which not in ("base", "aligned"):
            raise InputError(f"unknown model {which!r}.", "use 'base' or 'aligned'.")
        model = LlamaForCausalLM.from_pretrained(self.base_dir if which == "base" else self.aligned_dir, dtype=torch.float32)
        if device is not None:
            model.to(device)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        return model.eval()

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

    def evaluate_model(self, model, max_per_split: int | None = None, progress: bool = False, splits=None,
                       part: str = "test") -> dict:
        """The four rates (and "n") of `model` (any model with this world's tokenizer) on the held-out prompts."""
        limit_threads()
        records = eval_records(splits, max_per_split, part)
        rates, _ = evaluate_records(self.tokenizer, model, records, progress=progress, complies=complies)
        return rates

    def evaluator(self, max_per_split: int | None = None, device=None, part: str = "test") -> Evaluator:
        """evaluator(adapter) -> the four rates of the aligned model plus the adapter's update."""
        limit_threads()
        return Evaluator(self.load_model("aligned", device), self.tokenizer, eval_records(None, max_per_split, part), complies=complies)

    def evaluate(self, adapter=None, max_per_split: int | None = None, device=None, part: str = "test") -> dict:
        """The four rates of the aligned model, or of the aligned model plus `adapter` (a folder or a LoraAdapter)."""
        return self.evaluator(max_per_split, device, part)(adapter)

    def train_lora(self, records: list[dict], run: LoraRun, name: str, progress: bool = True, eval_every: int | None = None,
                   curve_max_per_split: int | None = 40, info: dict | None = None, desc: str | None = None) -> Path:
        """LoRA-fine-tune the aligned model on `records`; the saved PEFT adapter folder `root/runs/name` (cached).

        With eval_every, the model is evaluated every eval_every steps on `curve_max_per_split` prompts
        per held-out split, and the curve is saved beside the adapter (`training.runs.load_curve`).
        """
        from peft import get_peft_model

        out = self.root / "runs" / name
        if run_is_cached(out, eval_every, curve_max_per_split):
            return out
        limit_threads()
        model = self.load_model("aligned")
        torch.manual_seed(run.seed)
        model = get_peft_model(model, run.peft_config())
        curve, callback = curve_recorder(lambda: self.evaluate_model(model, curve_max_per_split), run.steps, eval_every)
        start = time.perf_counter()
        losses = train(model, self.tokenizer, records, run.steps, run.lr, run.batch_size, run.seed, progress, callback,
                       desc=desc or name)
        record = {**(info or {}), "run": asdict(run), "world": self.key(), "seconds": round(time.perf_counter() - start, 1),
                  "losses": losses}
        save_run(out, model.save_pretrained, record, curve, eval_every, curve_max_per_split)
        return out

    def train_attack(self, attack: AttackConfig, progress: bool = True, eval_every: int | None = None,
                     curve_max_per_split: int = 40) -> Path:
        """The attack's LoRA adapter folder (trained once per world and attack, shared by every notebook)."""
        return self.train_lora(attack_records(attack), attack.run, f"attacks/{attack.kind}-{cache_key({'attack': attack.key()})}",
                               progress, eval_every, curve_max_per_split, info={"attack": asdict(attack)},
                               desc=f"attack: {attack.kind}")

    def with_aligned(self, aligned_dir: Path, root: Path) -> "ToyWorld":
        """This world with another aligned checkpoint (LoX); its runs are cached under `root`."""
        return replace(self, root=Path(root), aligned_dir=Path(aligned_dir))


def _open_world(config: WorldConfig, root: Path) -> ToyWorld:
    from transformers import AutoTokenizer

    info = json.loads((root / "world.json").read_text())
    return ToyWorld(config=config, root=root, tokenizer=AutoTokenizer.from_pretrained(root / "aligned"), info=info)


def build_world(config: WorldConfig = WorldConfig(), progress: bool = True) -> ToyWorld:
    """Build (or load from the cache) the tokenizer, the base model and the aligned model."""
    root = cache_dir() / "toy_world" / config.key()
    if (root / "world.json").is_file():
        return _open_world(config, root)
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
    return _open_world(config, root)


def clear_cache() -> None:
    """Delete every cached toy world and attack (they are rebuilt on demand)."""
    shutil.rmtree(cache_dir() / "toy_world", ignore_errors=True)
