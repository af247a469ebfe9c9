"""LoRA fine-tuning that survives a disconnect: transformers' Trainer with checkpoints and resume.

    python -m safelora_lite.scale.finetune --model TinyLlama/TinyLlama-1.1B-Chat-v1.0 --model-source stand-in \
        --data toy:task_train --out runs/tiny --steps 20 --save-steps 5
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml -m safelora_lite.scale.finetune ...  (same flags)

OUT/checkpoints/checkpoint-N   Trainer checkpoints (adapter, optimizer, scheduler, RNG states)
OUT/adapter/                   the final PEFT adapter, written once the run completes
OUT/finetune.json              settings, losses, whether and from where the run resumed

Run the same command again after a crash (a Colab session dies mid-run): it resumes from the
last checkpoint. The data encoding (loss on response tokens only) is `training.encode_conversation`.
"""

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch

from safelora_lite.errors import InputError
from safelora_lite.records import write_json_atomic
from safelora_lite.training.sft import collate, encode_records


@dataclass
class FinetuneConfig:
    """Every knob of a run. `model` is a hub id (or family name) for hub / stand-in / random-real-shapes."""

    model: str
    out: str
    data: str = "toy:task_train"
    model_source: str = "stand-in"
    local_dir: str | None = None
    r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    steps: int = 20
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 0
    max_length: int = 256
    max_examples: int | None = None
    save_steps: int = 10
    save_total_limit: int = 2
    seed: int = 0
    dtype: str = "auto"
    quantization: str | None = None
    gradient_checkpointing: bool = False
    device: str = "auto"
    extra: dict = field(default_factory=dict)


class SimulatedDisconnect(RuntimeError):
    """Raised by InterruptAfter: stands for a Colab session dying mid-run."""


def interrupt_after(step: int):
    """A TrainerCallback that stops the run right after the checkpoint of `step` is saved."""
    from transformers import TrainerCallback

    class InterruptAfter(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= step:
                raise SimulatedDisconnect(f"simulated disconnect after the checkpoint of step {state.global_step}")

    return InterruptAfter()


def load_records(data: str) -> list[dict]:
    """`toy:<split>` (a toy-world split) or a JSONL file of {prompt, response} or chat {messages: [...]}."""
    if data.startswith("toy:"):
        from safelora_lite.worlds.toy import load_split

        return load_split(data[4:])
    path = Path(data)
    if not path.is_file():
        raise InputError(f"data file {path} not found.", "pass a JSONL file or toy:<split> (e.g. toy:task_train).")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "messages" in row:
            users = [m["content"] for m in row["messages"] if m["role"] == "user"]
            answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
            if not users or not answers:
                raise InputError(f"{path}:{n} has no user + assistant turn.", "each chat record needs both.")
            row = {"prompt": users[0], "response": answers[0]}
        if "prompt" not in row or "response" not in row:
            raise InputError(f"{path}:{n} has neither prompt/response nor messages.", "use one of the two formats.")
        records.append(row)
    if not records:
        raise InputError(f"{path} holds no records.", "add at least one record.")
    return records


class _Encoded(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def last_checkpoint(out: str | os.PathLike) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(out) / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def build_trainer(config: FinetuneConfig, records: list[dict] | None = None, model=None, tokenizer=None, callbacks=()):
    """The peft model, tokenizer and a Trainer wired for checkpoints every `save_steps`."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import Trainer, TrainingArguments

    from safelora_lite.adapters.model_loading import load_model

    records = records if records is not None else load_records(config.data)  # bad data fails before any model loads
    if model is None:
        loaded = load_model(config.model, config.model_source, local_dir=config.local_dir, dtype=config.dtype,
                            quantization=config.quantization, gradient_checkpointing=config.gradient_checkpointing,
                            device=config.device, seed=config.seed)
        model, tokenizer = loaded.model, loaded.tokenizer
        if loaded.quantization:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    if tokenizer is None:
        raise InputError("fine-tuning needs a tokenizer.", "use model_source hub, local or stand-in (random-real-shapes has none).")
    if config.max_examples:
        records = records[: config.max_examples]
    lora = LoraConfig(r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(config.seed)
    model = get_peft_model(model, lora)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    dataset = _Encoded(encode_records(tokenizer, records, config.max_length))
    on_cpu = next(model.parameters()).device.type == "cpu"
    args = TrainingArguments(
        output_dir=str(Path(config.out) / "checkpoints"), max_steps=config.steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr, lr_scheduler_type="cosine", warmup_steps=config.warmup_steps,
        logging_steps=1, save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        seed=config.seed, data_seed=config.seed, report_to=[], remove_unused_columns=False,
        dataloader_num_workers=0, use_cpu=on_cpu, disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=partial(collate, pad_token_id=pad),
                      callbacks=list(callbacks))
    return trainer, tokenizer


def finetune(config: FinetuneConfig, records: list[dict] | None = None, model=None, tokenizer=None, callbacks=()) -> dict:
    """Train (resuming from OUT/checkpoints if a checkpoint is there), write OUT/adapter and OUT/finetune.json."""
    out = Path(config.out)
    if (out / "adapter").exists():
        raise InputError(f"{out} holds a finished run ({out / 'adapter'} exists).", "choose a new --out.")
    resume = last_checkpoint(out)
    trainer, tokenizer = build_trainer(config, records, model, tokenizer, callbacks)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"config": {**asdict(config), "target_modules": list(config.target_modules)}, "resumed_from": resume,
               "global_step": trainer.state.global_step, "losses": losses, "seconds": round(seconds, 2),
               "world_size": trainer.args.world_size, "adapter": str(out / "adapter")}
    if trainer.is_world_process_zero():
        from safelora_lite.outputs import new_output_dir

        with new_output_dir(out / "adapter") as tmp:
            trainer.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        write_json_atomic(summary, out / "finetune.json")
    trainer.accelerator.wait_for_everyone()
    return {**summary, "model": trainer.model}


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="python -m safelora_lite.scale.finetune", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="hub id, or a family name for stand-in / random-real-shapes")
    p.add_argument("--model-source", default="stand-in", choices=["hub", "local", "stand-in", "random-real-shapes"])
    p.add_argument("--local-dir", default=None)
    p.add_argument("--data", default="toy:task_train", help="JSONL ({prompt, response} or {messages}) or toy:<split>")
    p.add_argument("--out", required=True, help="run folder; rerun the same command to resume")
    for name, kind in (("r", int), ("lora-alpha", int), ("lora-dropout", float), ("steps", int), ("batch-size", int),
                       ("grad-accum", int), ("lr", float), ("warmup-steps", int), ("max-length", int), ("max-examples", int),
                       ("save-steps", int), ("save-total-limit", int), ("seed", int)):
        p.add_argument(f"--{name}", type=kind, default=getattr(FinetuneConfig, name.replace("-", "_")))
    p.add_argument("--target-modules", nargs="+", default=list(FinetuneConfig.target_modules))
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--quantization", default=None, choices=["8bit", "4bit"])
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_run)
    return p


def _run(args) -> int:
    fields = {f: getattr(args, f) for f in FinetuneConfig.__dataclass_fields__ if hasattr(args, f) and f != "extra"}
    fields["target_modules"] = tuple(fields["target_modules"])
    result = finetune(FinetuneConfig(**fields))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"step {result['global_step']}, last loss {result['losses'][-1] if result['losses'] else float('nan'):.4f}, "
              f"world size {result['world_size']}, resumed from {result['resumed_from']}; adapter in {result['adapter']}")
    return 0


def add_command(subparsers) -> None:
    build_parser(subparsers.add_parser("finetune", help="LoRA fine-tuning with checkpoints and resume (Trainer)"))


def main(argv: list[str] | None = None) -> int:
    import sys

    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except InputError as error:
        print(f"finetune: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
