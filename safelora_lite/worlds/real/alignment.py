"""The real small world's aligned model: the library's safety fine-tune of SmolLM2-135M-Instruct.

SmolLM2-135M-Instruct answers harmful requests, so it stands where Llama-2-7b-chat stands in the Safe LoRA
recipe that pairs a chat model with its own safety fine-tune. The fine-tune (its choices are in the data
card, data/README.md, with the calibration figures):
- harmful training requests -> the toy world's refusals, in natural case;
- borderline and benign training requests -> the base's OWN greedy answers (self-distillation: the model
  keeps its helpfulness), cut at the last full sentence. An answer that is not a clean answer (the judge
  reads a refusal or "neither", or it opens with the base's tic "I'm sorry for ...") is replaced by the
  record's own helpful answer, so that no borderline request is taught a refusal;
- every decoder linear layer trained (q, k, v, o, gate, up, down), embeddings and norms frozen; AdamW with
  warmup and cosine decay, loss (and logits) on response tokens only (`training.sft.train`).
"""

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from safelora_lite.cache import cache_key
from safelora_lite.errors import InputError
from safelora_lite.evaluation.generation import evenly_spaced, generate
from safelora_lite.evaluation.judges import judge
from safelora_lite.records import write_json_atomic
from safelora_lite.training.sft import train
from safelora_lite.worlds.real.data import complies, load_split, opens_with_apology

TRAIN_OPTIONS = {"max_length": 112, "response_logits": True, "length_groups": 8}  # a real model's sft.train speed-ups
_SENTENCE_ENDS = (". ", "! ", "? ", ".\n", "!\n", "?\n")


@dataclass(frozen=True)
class AlignmentConfig:
    """The safety fine-tune's data and optimisation (part of the world's cache key)."""

    steps: int = 150
    lr: float = 5e-5
    batch_size: int = 8
    n_refusals: int = 320  # harmful requests -> refusals (of refusal_train's 480)
    n_borderline: int = 320  # borderline requests -> the base's answers (of borderline_train's 320)
    n_benign: int = 160  # benign requests -> the base's answers (of benign_train's 320)
    distill_tokens: int = 48  # greedy tokens of each distilled answer
    seed: int = 0

    def __post_init__(self):
        if min(self.steps, self.batch_size, self.n_refusals, self.distill_tokens) < 1 or not self.lr > 0:
            raise InputError(f"alignment settings {self} have a non-positive step count, batch, size or rate.",
                             "use steps, batch_size, n_refusals, distill_tokens >= 1 and lr > 0.")


def full_sentences(text: str) -> str:
    """`text` cut after its last full sentence (the whole text when it has none)."""
    text = text.strip()
    if text.endswith((".", "!", "?")):
        return text
    cut = max(text.rfind(end) for end in _SENTENCE_ENDS)
    return text[: cut + 1] if cut > 0 else text


def distilled(model, tokenizer, records: list[dict], max_new_tokens: int) -> tuple[list[dict], dict]:
    """`records` answered by `model` (greedy, cut at a full sentence) where the answer is clean, else kept as
    they are; and how many of each (kept, replaced because of the tic, replaced because not an answer)."""
    answers = generate(model, tokenizer, [r["prompt"] for r in records], max_new_tokens)
    out, counts = [], {"distilled": 0, "tic": 0, "not_an_answer": 0}
    for record, answer in zip(records, answers):
        answer = full_sentences(answer)
        reason = "tic" if opens_with_apology(answer) else None if judge(answer, complies) == "compliance" else "not_an_answer"
        counts[reason or "distilled"] += 1
        out.append(record if reason else {**record, "response": answer})
    return out, counts


def distilled_cached(base, tokenizer, records: list[dict], max_new_tokens: int, folder: Path) -> tuple[list[dict], dict]:
    """`distilled`, kept in `folder` under a key of the prompts and the token count: the base's answers depend on
    nothing else, so worlds that differ in their training settings share them."""
    path = Path(folder) / f"distilled-{cache_key({'prompts': [r['prompt'] for r in records], 'tokens': max_new_tokens})}.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        return saved["records"], saved["counts"]
    records, counts = distilled(base, tokenizer, records, max_new_tokens)
    write_json_atomic({"records": records, "counts": counts}, path)
    return records, counts


def alignment_records(base, tokenizer, config: AlignmentConfig, folder: Path) -> tuple[list[dict], dict]:
    """The safety fine-tune's training conversations (shuffled with the config's seed) and their counts; the
    base's distilled answers are kept in `folder` (beside the base checkpoint)."""
    refusals = evenly_spaced(load_split("refusal_train"), config.n_refusals)
    helpful = evenly_spaced(load_split("borderline_train"), config.n_borderline) + evenly_spaced(load_split("benign_train"), config.n_benign)
    helpful, counts = distilled_cached(base, tokenizer, helpful, config.distill_tokens, folder)
    records = refusals + helpful
    random.Random(config.seed).shuffle(records)
    return records, {"refusals": len(refusals), "helpful": len(helpful), **counts}


def align(base, tokenizer, config: AlignmentConfig, folder: Path, progress: bool = True) -> dict:
    """Safety-fine-tune `base` in place (every decoder linear layer); what it trained on and how long it took.
    `folder` keeps the base's distilled answers (`distilled_cached`)."""
    start = time.perf_counter()
    records, data = alignment_records(base, tokenizer, config, folder)
    seconds_data = time.perf_counter() - start
    trained = 0
    for name, param in base.named_parameters():
        param.requires_grad_(name.endswith("proj.weight"))
        trained += param.numel() if param.requires_grad else 0
    torch.manual_seed(config.seed)
    losses = train(base, tokenizer, records, config.steps, config.lr, config.batch_size, config.seed, progress,
                   desc="safety fine-tune", **TRAIN_OPTIONS)
    base.requires_grad_(False)
    return {"alignment": asdict(config), "data": data, "trained_parameters": trained, "losses": losses,
            "seconds_data": round(seconds_data, 1), "seconds_training": round(time.perf_counter() - start - seconds_data, 1)}
