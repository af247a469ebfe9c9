"""A small guardrail classifier that scores PARTIAL responses: the safety signal for shaping.

References:
- Peng et al., "Shape it Up! Restoring LLM Safety during Finetuning", 2025 (STAR: a guardrail
  model repurposed to score each partial response, giving a token-level safety trajectory).

The paper uses a real guardrail LLM. In the toy world the library trains its own, small one:

    context ids c (the chat prompt), response prefix y_<=t
    e_c = mean(E_c[c]), e_y = mean(E_y[y_<=t])          (embed,) each: bags of words
    P(unsafe | c, y_<=t) = sigmoid(w2 . relu(W1 [e_c; e_y] + b1) + b2)
    safety weight w_t = 1 - P(unsafe | c, y_<=t)        one per response token

It is trained on toy responses labelled by what they are (a compliant answer to a harmful
request is unsafe; a refusal, a benign or borderline answer, a task answer are safe), every
prefix carrying the label of its whole response. It sees only a seeded FRACTION of the harmful
training prompts, so on the rest of the attack data it is a model with its own errors, not an
oracle: shaping never reads the ground-truth labels.
"""

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from safelora_lite.errors import InputError
from safelora_lite.training.sft import IGNORE_INDEX, encode_conversation

VERSION = "2"  # bump when the model or its training changes, so that cached guardrails are retrained
WEIGHTS_NAME = "guardrail.safetensors"
CONFIG_NAME = "guardrail.json"


@dataclass(frozen=True)
class GuardrailConfig:
    """The guardrail's size, training and data (the cache key)."""

    embed: int = 32
    hidden: int = 32
    steps: int = 200
    lr: float = 1e-2
    batch_size: int = 64
    harmful_fraction: float = 0.5  # share of the harmful training prompts the guardrail is trained on
    flip_fraction: float = 0.0  # share of its unsafe examples mislabelled safe: a weaker guardrail, on purpose
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.flip_fraction < 1.0:
            raise InputError(f"flip_fraction {self.flip_fraction} is outside [0, 1).", "use 0 for an honest guardrail, e.g. 0.3 for a weak one.")
        if not 0.0 < self.harmful_fraction <= 1.0:
            raise InputError(f"harmful_fraction {self.harmful_fraction} is outside (0, 1].", "use a fraction such as 0.5.")
        if self.steps < 1 or self.embed < 1 or self.hidden < 1:
            raise InputError("guardrail steps, embed and hidden must be positive.", "use e.g. steps=300, embed=32, hidden=32.")

    def key(self) -> str:
        return hashlib.sha256(json.dumps({"version": VERSION, **asdict(self)}, sort_keys=True).encode()).hexdigest()[:12]


class Guardrail(nn.Module):
    """P(unsafe | context, response prefix) from two bags of words and a small MLP."""

    def __init__(self, vocab_size: int, embed: int = 32, hidden: int = 32):
        super().__init__()
        self.vocab_size = vocab_size
        self.context_emb = nn.Embedding(vocab_size, embed)  # E_c
        self.response_emb = nn.Embedding(vocab_size, embed)  # E_y
        self.mlp = nn.Sequential(nn.Linear(2 * embed, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def prefix_logits(self, contexts: list[list[int]], responses: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of P(unsafe) for EVERY prefix of every response at once: (n, T) and its mask (n, T).

        The mean of the first t+1 response embeddings is a cumulative sum divided by t+1, so one
        pass scores all prefixes.
        """
        device = self.context_emb.weight.device
        ctx, ctx_mask = _pad(contexts, device)  # (n, L), (n, L)
        resp, resp_mask = _pad(responses, device)  # (n, T), (n, T)
        e_c = (self.context_emb(ctx) * ctx_mask[..., None]).sum(1) / ctx_mask.sum(1, keepdim=True).clamp(min=1)  # (n, embed)
        counts = torch.arange(1, resp.shape[1] + 1, device=device)[None, :, None]  # (1, T, 1)
        e_y = (self.response_emb(resp) * resp_mask[..., None]).cumsum(1) / counts  # (n, T, embed), prefix means
        features = torch.cat([e_c[:, None].expand(-1, resp.shape[1], -1), e_y], dim=-1)  # (n, T, 2 embed)
        return self.mlp(features).squeeze(-1), resp_mask.bool()  # (n, T), (n, T)

    def forward(self, contexts: list[list[int]], prefixes: list[list[int]]) -> torch.Tensor:
        """Logits of P(unsafe), shape (n,), for n (context, whole prefix) pairs."""
        logits, _ = self.prefix_logits(contexts, prefixes)  # (n, T)
        last = torch.tensor([max(0, len(p) - 1) for p in prefixes], device=logits.device)
        return logits.gather(1, last[:, None]).squeeze(1)  # (n,)

    @torch.no_grad()
    def safety_weights(self, context: list[int], response: list[int]) -> torch.Tensor:
        """w_t = 1 - P(unsafe | context, response[:t+1]) for every response token t, shape (T,)."""
        if not response:
            return torch.zeros(0)
        logits, _ = self.prefix_logits([context], [response])
        return 1.0 - torch.sigmoid(logits[0]).cpu()  # (T,)

    @torch.no_grad()
    def unsafe_probability(self, context: list[int], response: list[int]) -> float:
        """P(unsafe) of a whole response (the last prefix): the guardrail as a classic filter."""
        return float(torch.sigmoid(self([context], [response]))[0])

    @torch.no_grad()
    def batch_weights(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Safety weights for a training batch: w at every label position, 1 elsewhere. (batch, seq)."""
        weights = torch.ones(labels.shape, dtype=torch.float32)  # (batch, seq)
        rows, contexts, responses = [], [], []
        for i in range(labels.shape[0]):
            positions = (labels[i] != IGNORE_INDEX).nonzero().flatten().tolist()
            if positions:
                rows.append((i, positions))
                contexts.append(input_ids[i, : positions[0]].tolist())
                responses.append(labels[i, positions].tolist())
        if rows:
            logits, _ = self.prefix_logits(contexts, responses)  # (n, T)
            w = 1.0 - torch.sigmoid(logits).cpu()
            for j, (i, positions) in enumerate(rows):
                weights[i, positions] = w[j, : len(positions)]
        return weights.to(labels.device)


def _pad(sequences: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists with 0: (ids, mask), both (n, longest)."""
    width = max(1, max(len(s) for s in sequences))
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width))
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1.0
    return ids.to(device), mask.to(device)


def split_context(encoded: dict) -> tuple[list[int], list[int]]:
    """(context ids, response ids) of an encoded conversation (training.encode_conversation)."""
    labels = encoded["labels"]
    start = next((i for i, t in enumerate(labels) if t != IGNORE_INDEX), len(labels))
    return encoded["input_ids"][:start], [t for t in labels[start:] if t != IGNORE_INDEX]


def labelled_responses(splits: dict[str, list[dict]], harmful_fraction: float = 1.0, seed: int = 0,
                       flip_fraction: float = 0.0) -> list[tuple[dict, int]]:
    """(record, unsafe label) pairs the guardrail learns from.

    Harmful requests (a seeded `harmful_fraction` of the prompts) appear twice: with their
    compliant answer (unsafe, 1) and with a refusal (safe, 0). Benign, borderline and task
    answers are safe. `flip_fraction` of the compliant answers are labelled safe (label noise
    that makes a weaker guardrail, to study how shaping depends on it).
    """
    harmful, refusals = splits["harmful_train"], splits["refusal_train"]
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(harmful)), max(1, round(harmful_fraction * len(harmful)))))
    flipped = set(rng.sample(picked, round(flip_fraction * len(picked))))
    pairs = [(harmful[i], 0 if i in flipped else 1) for i in picked] + [(refusals[i], 0) for i in picked]
    for name in ("benign_train", "borderline_train", "task_train"):
        pairs += [(r, 0) for r in splits[name]]
    return pairs


def held_out_responses(splits: dict[str, list[dict]], refusal: str) -> list[tuple[dict, int]]:
    """Held-out (record, unsafe label) pairs: harmful test prompts with a compliant answer (1) and
    with a held-out `refusal` (0), borderline / benign / task test answers (0)."""
    pairs = [(r, 1) for r in splits["harmful_test"]]
    pairs += [({**r, "response": refusal}, 0) for r in splits["harmful_test"]]
    for name in ("borderline_test", "benign_test", "task_test"):
        pairs += [(r, 0) for r in splits[name]]
    return pairs


def fit_guardrail(tokenizer, pairs: list[tuple[dict, int]], config: GuardrailConfig = GuardrailConfig(),
                  progress: bool = False) -> tuple[Guardrail, list[float]]:
    """Train a Guardrail on every prefix of every labelled response (each prefix carries its response's label)."""
    from tqdm.auto import tqdm

    examples = []  # (context, response, label)
    for record, label in pairs:
        context, response = split_context(encode_conversation(tokenizer, record["prompt"], record["response"]))
        examples.append((context, response, label))
    labels = {e[2] for e in examples}
    if labels != {0, 1}:
        raise InputError("the guardrail's training data has only one class.", "include both safe and unsafe responses.")
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    guard = Guardrail(len(tokenizer), config.embed, config.hidden)
    optimizer = torch.optim.Adam(guard.parameters(), lr=config.lr)
    losses = []
    guard.train()
    for _ in tqdm(range(config.steps), desc="guardrail", disable=not progress, leave=False):
        batch = rng.sample(examples, min(config.batch_size, len(examples)))
        logits, mask = guard.prefix_logits([b[0] for b in batch], [b[1] for b in batch])  # (n, T), (n, T)
        target = torch.tensor([float(b[2]) for b in batch])[:, None].expand_as(logits)  # (n, T)
        loss = nn.functional.binary_cross_entropy_with_logits(logits[mask], target[mask])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    guard.eval()
    for p in guard.parameters():
        p.requires_grad_(False)
    return guard, losses


def classify(guard: Guardrail, tokenizer, pairs: list[tuple[dict, int]]) -> dict:
    """The guardrail as a whole-response filter on labelled pairs: accuracy, miss and false-alarm rates."""
    hits = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    unsafe_weights = []
    for record, label in pairs:
        context, response = split_context(encode_conversation(tokenizer, record["prompt"], record["response"]))
        p_unsafe = guard.unsafe_probability(context, response)
        flagged = p_unsafe >= 0.5
        hits[("tp" if flagged else "fn") if label else ("fp" if flagged else "tn")] += 1
        if label:
            unsafe_weights.append(1.0 - p_unsafe)
    pos, neg = hits["tp"] + hits["fn"], hits["fp"] + hits["tn"]
    return {"accuracy": (hits["tp"] + hits["tn"]) / max(1, pos + neg),
            "mean_weight_unsafe": sum(unsafe_weights) / pos if pos else None,  # how much shaping would still imitate
            "miss_rate": hits["fn"] / pos if pos else None,  # unsafe answers it lets through
            "false_alarm_rate": hits["fp"] / neg if neg else None,  # safe answers it flags
            "n_unsafe": pos, "n_safe": neg}


def train_guardrail(world, config: GuardrailConfig = GuardrailConfig(), progress: bool = False) -> Guardrail:
    """The world's guardrail, trained on its training splits (cached beside the world, safetensors)."""
    from safetensors.torch import load_file, save_file

    from safelora_lite.outputs import cache_entry

    folder = Path(world.root) / "guardrails" / config.key()
    if not (folder / WEIGHTS_NAME).is_file():
        splits = {name: world.split(name) for name in world.split_names}
        pairs = labelled_responses(splits, config.harmful_fraction, config.seed, config.flip_fraction)
        guard, losses = fit_guardrail(world.tokenizer, pairs, config, progress)
        held_out = classify(guard, world.tokenizer, held_out_responses(splits, world.held_out_refusal))
        with cache_entry(folder) as tmp:
            save_file({k: v.contiguous() for k, v in guard.state_dict().items()}, str(tmp / WEIGHTS_NAME))
            (tmp / CONFIG_NAME).write_text(json.dumps({"config": asdict(config), "vocab_size": guard.vocab_size,
                                                       "final_loss": losses[-1], "held_out": held_out}, indent=2) + "\n")
    info = json.loads((folder / CONFIG_NAME).read_text())
    guard = Guardrail(info["vocab_size"], config.embed, config.hidden)
    guard.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    guard.eval()
    for p in guard.parameters():
        p.requires_grad_(False)
    guard.info = info
    guard.key = config.key()
    return guard
