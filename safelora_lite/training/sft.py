"""Supervised fine-tuning on chat records, with the loss on response tokens only.

`encode_conversation` and `collate` are independent of the loop, so a transformers Trainer can
reuse them; `train` is a small, seeded AdamW loop that trains whatever parameters have
`requires_grad` (all weights of a toy model, a peft LoRA adapter, a custom parametrisation).
"""

import math
import random
from typing import Callable

import torch

IGNORE_INDEX = -100  # labels the loss skips (prompt and padding tokens)


def token_ids(out) -> list[int]:
    """apply_chat_template(tokenize=True) returns a dict in transformers 5 and a list before."""
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The chat-formatted prompt, ending where the assistant's answer begins."""
    return token_ids(tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True))


def encode_conversation(tokenizer, prompt: str, response: str, max_length: int | None = None) -> dict:
    """input_ids and labels for one (prompt, response) turn; labels are -100 except on the response and its eos."""
    head = prompt_ids(tokenizer, prompt)
    full = token_ids(tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=True))
    if full[: len(head)] != head:  # a template that renders the prompt differently once answered
        full = head + tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if tokenizer.eos_token_id is not None and full[-1] != tokenizer.eos_token_id and tokenizer.eos_token_id not in full[len(head):]:
        full = full + [tokenizer.eos_token_id]
    labels = [IGNORE_INDEX] * len(head) + full[len(head):]
    if max_length is not None:
        full, labels = full[:max_length], labels[:max_length]
    return {"input_ids": full, "labels": labels}


def collate(features: list[dict], pad_token_id: int) -> dict:
    """Right-pad a list of encoded conversations into tensors (input_ids, attention_mask, labels)."""
    width = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), width), pad_token_id, dtype=torch.long)  # (batch, seq)
    labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)  # (batch, seq)
    mask = torch.zeros((len(features), width), dtype=torch.long)  # (batch, seq)
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        input_ids[i, :n] = torch.tensor(f["input_ids"])
        labels[i, :n] = torch.tensor(f["labels"])
        mask[i, :n] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def encode_records(tokenizer, records: list[dict], max_length: int | None = None) -> list[dict]:
    """encode_conversation for each record dict (`prompt`, `response`)."""
    return [encode_conversation(tokenizer, r["prompt"], r["response"], max_length) for r in records]


def cosine_lr(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 10% of lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def response_loss(model, batch: dict) -> torch.Tensor:
    """Mean cross-entropy on the response tokens, with the LM head applied only where a response token is
    predicted: the same loss as `model(**batch).loss`, without the (batch, seq, vocab) logits of the prompt
    and the padding (most of a real vocabulary's cost). Needs a transformers causal LM (`logits_to_keep`)."""
    targets = batch["labels"][:, 1:]  # (batch, seq-1): position t predicts token t+1
    keep = torch.zeros_like(batch["labels"], dtype=torch.bool)  # (batch, seq)
    keep[:, :-1] = targets != IGNORE_INDEX
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits  # (kept, vocab)
    return torch.nn.functional.cross_entropy(logits.float(), targets[targets != IGNORE_INDEX])


def optimizer_step(model, batch: dict, optimizer, params: list, response_logits: bool = False) -> float:
    """One step: forward, loss on the labels (`response_loss` when response_logits), backward, clip the
    gradient norm to 1, AdamW update; the loss."""
    loss = response_loss(model, batch) if response_logits else model(**batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return loss.item()


def batch_indices(n: int, batch_size: int, rng: random.Random, lengths: list[int] | None = None, length_groups: int = 1):
    """Endless batches of example indices, epoch after epoch in a seeded shuffle. With length_groups > 1,
    that many batches are drawn at once, sorted by length (`lengths`) and cut, then served in a random order:
    a batch pads its examples to similar lengths, and every example is still seen once per epoch."""
    order: list[int] = []
    pending: list[list[int]] = []
    size = min(batch_size, n)
    while True:
        if not pending:
            drawn = []
            while len(drawn) < size * max(1, length_groups):
                if not order:
                    order = list(range(n))
                    rng.shuffle(order)
                drawn.append(order.pop())
            if length_groups > 1:
                drawn.sort(key=lambda i: lengths[i])
            pending = [drawn[j: j + size] for j in range(0, len(drawn), size)]
            if length_groups > 1:
                rng.shuffle(pending)
        yield pending.pop(0)


def train(model, tokenizer, records: list[dict], steps: int, lr: float, batch_size: int = 32, seed: int = 0,
          progress: bool = True, callback: Callable[[int, float], None] | None = None, weight_decay: float = 0.0,
          warmup: int | None = None, desc: str = "training", max_length: int | None = None, response_logits: bool = False,
          length_groups: int = 1) -> list[float]:
    """Train the parameters of `model` that have requires_grad; return the loss of each step.

    Batches are drawn by a seeded shuffler (epoch after epoch; `batch_indices`), the loss is cross-entropy
    on response tokens only, AdamW with warmup + cosine decay. `callback(step, loss)` runs after each
    step (step counts from 1), e.g. to evaluate along the way; it may switch to eval mode, train()
    switches back. For a real model: `max_length` cuts long conversations, `response_logits` computes the
    logits of response tokens only (`response_loss`), `length_groups` batches examples of similar length. Training
    keeps the thread count it starts with, whatever a course run grants (`device.GrantedThreads`): a
    LoRA update can differ in its last bits between one and two threads, and an update must not depend
    on when a notebook beside it finished.
    """
    from tqdm.auto import tqdm

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter has requires_grad: nothing to train")
    device = next(model.parameters()).device
    encoded = encode_records(tokenizer, records, max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    warmup = max(1, steps // 20) if warmup is None else warmup
    draws = batch_indices(len(encoded), batch_size, rng, [len(e["input_ids"]) for e in encoded], length_groups)
    losses = []
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in next(draws)], pad).items()}
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup)
        losses.append(optimizer_step(model, batch, optimizer, params, response_logits))
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if callback is not None:
            callback(step + 1, losses[-1])
            model.train()
    model.eval()
    return losses
