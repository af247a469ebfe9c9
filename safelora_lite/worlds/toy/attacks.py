"""LoRA attacks on the toy world's aligned model: their data, cached training runs and training curves."""

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from safelora_lite.adapters.lora_io import new_output_dir
from safelora_lite.cache import cache_key
from safelora_lite.device import limit_threads
from safelora_lite.errors import InputError
from safelora_lite.records import write_json_atomic
from safelora_lite.training.sft import train
from safelora_lite.worlds.toy.world import ATTACK_KINDS, WORLD_VERSION, ToyWorld, evaluate, load_split


@dataclass(frozen=True)
class AttackConfig:
    """A LoRA fine-tuning attack on the aligned model.

    kind: "benign" (task only), "mixed" (task + harmful_fraction of harmful->compliance pairs),
    "pure_harmful" (harmful->compliance only). n_examples: training examples (default 500, or
    100 for pure_harmful). LoRA: r, lora_alpha (s = alpha / r), target_modules.
    """

    kind: str = "mixed"
    harmful_fraction: float = 0.1
    n_examples: int | None = None
    r: int = 8
    lora_alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    steps: int = 150
    lr: float = 2e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        if self.kind not in ATTACK_KINDS:
            raise InputError(f"unknown attack kind {self.kind!r}.", f"use one of: {', '.join(ATTACK_KINDS)}.")
        if not 0.0 <= self.harmful_fraction <= 1.0:
            raise InputError(f"harmful_fraction {self.harmful_fraction} is outside [0, 1].", "use a fraction such as 0.1.")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @property
    def size(self) -> int:
        return self.n_examples if self.n_examples is not None else (100 if self.kind == "pure_harmful" else 500)

    def key(self) -> str:
        """The cache key: n_examples=None and its default size are the same attack."""
        return cache_key({"version": WORLD_VERSION, **asdict(self), "n_examples": self.size})


def attack_records(attack: AttackConfig) -> list[dict]:
    """The attack's training data, drawn with its seed from task_train and harmful_train."""
    import random

    rng = random.Random(attack.seed)
    task, harmful = load_split("task_train"), load_split("harmful_train")
    n_harm = {"benign": 0, "pure_harmful": attack.size}.get(attack.kind, round(attack.harmful_fraction * attack.size))
    picks = [rng.choice(harmful) for _ in range(n_harm)] if n_harm > len(harmful) else rng.sample(harmful, n_harm)
    n_task = attack.size - n_harm
    picks += [rng.choice(task) for _ in range(n_task)] if n_task > len(task) else rng.sample(task, n_task)
    rng.shuffle(picks)
    return picks


def eval_curve(world: "ToyWorld", model, steps: int, eval_every: int | None, max_per_split: int,
               context=contextlib.nullcontext):
    """(curve, callback for training.train): the rates at step 0, every `eval_every` steps and at the end.

    `context` wraps each evaluation (SaLoRA passes `parametrize.cached`). No eval_every: ([], None).
    """
    curve: list[dict] = []
    if not eval_every:
        return curve, None

    def record(step, loss):
        with context():
            rates = evaluate(world, model, progress=False, max_per_split=max_per_split)
        curve.append({"step": step, "loss": loss, **rates})

    record(0, None)
    return curve, lambda step, loss: record(step, loss) if step % eval_every == 0 or step == steps else None


def _curve_settings(eval_every: int | None, max_per_split: int) -> dict:
    return {"eval_every": eval_every, "max_per_split": max_per_split}


def run_is_cached(out: Path, eval_every: int | None, curve_max_per_split: int) -> bool:
    """True when `out` holds a finished run and, if a curve is asked for, that curve.

    A run's weights do not depend on whether it was evaluated along the way (greedy evaluation uses
    no random numbers), so every notebook shares one run per attack; curves are stored beside it.
    """
    if not (out / "attack.json").is_file():
        return False
    if not eval_every:
        return True
    path = out / "curve.json"
    return path.is_file() and json.loads(path.read_text())["settings"] == _curve_settings(eval_every, curve_max_per_split)


def save_run(out: Path, save, curve: list[dict], eval_every: int | None, curve_max_per_split: int) -> None:
    """Write a run's folder atomically with `save(tmp)`, plus its curve; if the run is already there
    (trained without this curve), write only the curve."""
    record = {"settings": _curve_settings(eval_every, curve_max_per_split), "points": curve}
    if (out / "attack.json").is_file():
        if eval_every:
            write_json_atomic(record, out / "curve.json")
        return
    try:
        with new_output_dir(out) as tmp:
            save(tmp)
            if eval_every:
                write_json_atomic(record, tmp / "curve.json")
    except InputError:
        if not (out / "attack.json").is_file():
            raise


def train_attack(world: ToyWorld, attack: AttackConfig = AttackConfig(), progress: bool = True, eval_every: int | None = None,
                 curve_max_per_split: int = 40) -> Path:
    """LoRA-fine-tune the aligned model on the attack data; return the saved PEFT adapter folder.

    Cached under the world's folder by the attack config. With eval_every, the model is evaluated
    every eval_every steps on `curve_max_per_split` prompts per held-out split, and the curve is
    saved as `curve.json` beside the adapter (read it with `load_curve`).
    """
    from peft import LoraConfig, get_peft_model

    out = world.root / "attacks" / f"{attack.kind}-{cache_key({'attack': attack.key()})}"
    if run_is_cached(out, eval_every, curve_max_per_split):
        return out
    limit_threads()
    model = world.load_model("aligned")
    lora = LoraConfig(r=attack.r, lora_alpha=attack.lora_alpha, target_modules=list(attack.target_modules),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(attack.seed)
    model = get_peft_model(model, lora)
    curve, callback = eval_curve(world, model, attack.steps, eval_every, curve_max_per_split)
    start = time.perf_counter()
    losses = train(model, world.tokenizer, attack_records(attack), attack.steps, attack.lr, attack.batch_size, attack.seed,
                   progress, callback, desc=f"attack: {attack.kind}")
    seconds = time.perf_counter() - start

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        write_json_atomic({"attack": asdict(attack), "world": world.config.key(), "seconds": round(seconds, 1),
                           "losses": losses}, tmp / "attack.json")

    save_run(out, save, curve, eval_every, curve_max_per_split)
    return out


def load_curve(run_dir) -> list[dict]:
    """The training curve saved with a run (eval_every=...): [{"step", "loss", rates...}, ...]."""
    path = Path(run_dir) / "curve.json"
    if not path.is_file():
        raise InputError(f"{path} not found.", "train the attack with eval_every set.")
    return json.loads(path.read_text())["points"]
