"""A course run's log of its evaluations, so that a test can check that one model reads one way everywhere.

When $SAFELORA_LITE_EVALUATION_LOG names a file (the course runner sets one per notebook), every
evaluation appends a line: a digest of the model's weights as they were answered with (an adapter
merged by peft and the evaluator's W + s B A give the same digest: the same numbers), a digest of the
prompts, and the rates. `disagreements` then lists every (weights, prompts) pair that two evaluations
scored differently. Without the variable nothing is computed or written.
"""

import hashlib
import json
import os
from pathlib import Path

import torch

LOG_VARIABLE = "SAFELORA_LITE_EVALUATION_LOG"


def weights_digest(model) -> str:
    """A digest of the weights a model answers with: a PeftModel's base layers under their plain names, its
    LoRA matrices left out (the evaluator switches them off and merges the update into the base layers)."""
    h = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name:
            continue
        h.update(name.removeprefix("base_model.model.").replace(".base_layer", "").encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def prompts_digest(records: list[dict]) -> str:
    return hashlib.sha1("\n".join(r["prompt"] for r in records).encode()).hexdigest()[:16]


def log_evaluation(model, records: list[dict], rates: dict) -> None:
    """Append one evaluation to the log named by $SAFELORA_LITE_EVALUATION_LOG (nothing when it is unset)."""
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        return
    line = {"weights": weights_digest(model), "prompts": prompts_digest(records), "rates": rates}
    with open(path, "a") as f:  # one short line per write: appends from one process stay whole
        f.write(json.dumps(line, sort_keys=True) + "\n")


def read_logs(folder: Path) -> dict[str, list[dict]]:
    """{notebook stem: its evaluations} from a course run's OUT/results/evaluations/*.jsonl."""
    return {p.stem: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            for p in sorted(Path(folder).glob("*.jsonl"))}


def disagreements(logs: dict[str, list[dict]]) -> tuple[int, list[dict]]:
    """(how many (weights, prompts) pairs were evaluated in two notebooks or more, those whose rates differ)."""
    seen: dict[tuple, dict] = {}
    for stem, entries in logs.items():
        for e in entries:
            seen.setdefault((e["weights"], e["prompts"]), {}).setdefault(stem, json.dumps(e["rates"], sort_keys=True))
    shared = {k: v for k, v in seen.items() if len(v) > 1}
    differ = [{"weights": w, "prompts": p, "rates": {s: json.loads(r) for s, r in by.items()}}
              for (w, p), by in shared.items() if len(set(by.values())) > 1]
    return len(shared), differ
