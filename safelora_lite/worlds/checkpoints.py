"""What every world with safetensors checkpoints shares: loading its models, the one evaluation, cached LoRA runs.

A world (the toy world, the real small world) subclasses `CheckpointWorld` and supplies its data: its
`eval_records`, `attack_records`, `complies` (the judge's recogniser of an answer), `key()`, and the
attributes `root`, `tokenizer`, `base_dir`, `aligned_dir`. The class attributes `max_new_tokens` (how long an
evaluated answer may be) and `train_options` (passed to `training.sft.train`: a real model's speed-ups)
are the only settings that differ between worlds here.
"""

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import ClassVar

import torch

from safelora_lite.cache import cache_key
from safelora_lite.device import limit_threads
from safelora_lite.errors import InputError
from safelora_lite.evaluation.evaluator import Evaluator
from safelora_lite.evaluation.generation import evaluate_records
from safelora_lite.training.runs import curve_recorder, run_is_cached, save_run
from safelora_lite.training.sft import train
from safelora_lite.worlds.base import LoraRun


class CheckpointWorld:
    """The world interface (worlds/base.py) on two safetensors folders; subclasses are dataclasses with the data."""

    max_new_tokens: ClassVar[int] = 24  # greedy tokens per evaluated answer
    train_options: ClassVar[dict] = {}  # extra keyword arguments of training.sft.train

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

    def evaluate_model(self, model, max_per_split: int | None = None, progress: bool = False, splits=None,
                       part: str = "test") -> dict:
        """The four rates (and "n") of `model` (any model with this world's tokenizer) on the held-out prompts."""
        limit_threads()
        records = self.eval_records(splits, max_per_split, part)
        rates, _ = evaluate_records(self.tokenizer, model, records, self.max_new_tokens, progress, complies=self.complies)
        return rates

    def evaluator(self, max_per_split: int | None = None, device=None, part: str = "test") -> Evaluator:
        """evaluator(adapter) -> the four rates of the aligned model plus the adapter's update."""
        limit_threads()
        return Evaluator(self.load_model("aligned", device), self.tokenizer, self.eval_records(None, max_per_split, part),
                         self.max_new_tokens, complies=self.complies)

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

        out = Path(self.root) / "runs" / name
        if run_is_cached(out, eval_every, curve_max_per_split):
            return out
        limit_threads()
        model = self.load_model("aligned")
        torch.manual_seed(run.seed)
        model = get_peft_model(model, run.peft_config())
        curve, callback = curve_recorder(lambda: self.evaluate_model(model, curve_max_per_split), run.steps, eval_every)
        start = time.perf_counter()
        losses = train(model, self.tokenizer, records, run.steps, run.lr, run.batch_size, run.seed, progress, callback,
                       desc=desc or name, **self.train_options)
        record = {**(info or {}), "run": asdict(run), "world": self.key(), "seconds": round(time.perf_counter() - start, 1),
                  "losses": losses}
        save_run(out, model.save_pretrained, record, curve, eval_every, curve_max_per_split)
        return out

    def train_attack(self, attack, progress: bool = True, eval_every: int | None = None, curve_max_per_split: int = 40) -> Path:
        """The attack's LoRA adapter folder (trained once per world and attack, shared by every notebook)."""
        return self.train_lora(self.attack_records(attack), attack.run, f"attacks/{attack.kind}-{cache_key({'attack': attack.key()})}",
                               progress, eval_every, curve_max_per_split, info={"attack": asdict(attack)},
                               desc=f"attack: {attack.kind}")

    def with_aligned(self, aligned_dir: Path, root: Path):
        """This world with another aligned checkpoint (LoX); its runs are cached under `root`."""
        return replace(self, root=Path(root), aligned_dir=Path(aligned_dir))
