"""SaLoRA fine-tuning on a world: features from the clean aligned model, then the attack's own training run."""

import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from safelora_lite.cache import cache_key
from safelora_lite.device import limit_threads
from safelora_lite.errors import InputError
from safelora_lite.methods.salora.checkpoint import checkpoint_from_model, save_checkpoint
from safelora_lite.methods.salora.export import export_checkpoint
from safelora_lite.methods.salora.model import SaLoRAConfig, build_model, prepare
from safelora_lite.training.runs import curve_recorder, run_is_cached, save_run
from safelora_lite.training.sft import collate, encode_records, train


def feature_batches(tokenizer, records: list[dict], n_samples: int = 128, batch_size: int = 32) -> list[dict]:
    """The first `n_samples` (prompt, response) records as padded batches with response-only labels."""
    if not records or n_samples < 1:
        raise InputError("no feature samples.", "pass at least one (prompt, response) record and n_samples >= 1.")
    encoded = encode_records(tokenizer, records[:n_samples])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return [collate(encoded[i: i + batch_size], pad) for i in range(0, len(encoded), batch_size)]


def train_on_world(world, attack, safety_rank: int = 32, task_rank: int = 32, task_init: bool = True,
                   n_feature_samples: int = 128, progress: bool = True, eval_every: int | None = None,
                   curve_max_per_split: int = 40) -> Path:
    """SaLoRA fine-tuning of a world's aligned model on the attack's data, with the attack's own rank,
    alpha, modules, steps, lr, batch and seed, and the same trainer as the world's `train_attack`.

    Safety features: the first `n_feature_samples` harmful->refusal records (refusal_train). Task
    features: the first ones of the fine-tuning data itself (what a user fine-tuning has; for a
    mixed attack it includes its harmful examples). Cached; returns a folder with `checkpoint/`
    (SaLoRA training state), `adapter/` (its rank-2r PEFT export), `run.json` and, with
    eval_every, `curve.json` (the training-time model evaluated along the way).
    """
    config = SaLoRAConfig(r=attack.r, lora_alpha=attack.lora_alpha, safety_rank=safety_rank, task_rank=task_rank,
                          target_modules=tuple(attack.target_modules), task_init=task_init)
    config.check()
    key = cache_key({"attack": attack.key(), "salora": asdict(config), "n": n_feature_samples})
    out = world.root / "runs" / "salora" / f"{attack.kind}-{key}"
    if run_is_cached(out, eval_every, curve_max_per_split):
        return out
    limit_threads()
    records = world.attack_records(attack)
    safety = feature_batches(world.tokenizer, world.split("refusal_train"), n_feature_samples)
    task = feature_batches(world.tokenizer, records, n_feature_samples)
    clean = world.load_model("aligned")
    start = time.perf_counter()
    inits = prepare(clean, safety, task, config, max_tokens=None)
    torch.manual_seed(attack.seed)
    model = build_model(clean, inits, config)
    seconds_setup = time.perf_counter() - start
    curve, callback = curve_recorder(lambda: world.evaluate_model(model, curve_max_per_split), attack.steps, eval_every,
                                     context=parametrize.cached)
    start = time.perf_counter()
    losses = train(model, world.tokenizer, records, attack.steps, attack.lr, attack.batch_size, attack.seed, progress,
                   callback, desc=f"SaLoRA: {attack.kind}", **world.train_options)
    seconds = time.perf_counter() - start

    def save(tmp):
        save_checkpoint(checkpoint_from_model(model, info={"step": attack.steps, "attack": asdict(attack)}), tmp / "checkpoint")
        export_checkpoint(tmp / "checkpoint", tmp / "adapter")

    info = {"attack": asdict(attack), "salora": asdict(config), "world": world.key(), "n_feature_samples": n_feature_samples,
            "seconds_setup": round(seconds_setup, 1), "seconds": round(seconds, 1), "losses": losses}
    save_run(out, save, info, curve, eval_every, curve_max_per_split)
    return out
