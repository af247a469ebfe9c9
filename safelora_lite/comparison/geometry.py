"""Safe LoRA's geometry on a model pair: per module, how much the paper's projector keeps of an update, and why.

For every LoRA module of an attacked adapter (V = W_aligned - W_base of the weight it adapts):
  v_norm          ||V||_F, the size of the alignment change
  top_eigenvalue  sigma_1(V)^2 / ||V||_F, the largest eigenvalue of the paper's C = V V^T / ||V||_F: no
                  update keeps more than this share of its norm when projected
  shrink          ||C B||_F / ||B||_F, the share of this update's B that projecting keeps
  score           the Safe LoRA score, cos(vec(C B A), vec(B A))
A shrink far below 1 means that projecting deletes the update (docs/architecture.md section 2).
"""

import statistics

import torch

from safelora_lite.adapters.weights import alignment_changes, open_weights
from safelora_lite.maths.projection import (
    largest_singular_value,
    safe_lora_projector,
    similarity_of_projected,
)
from safelora_lite.methods.safelora import check_inputs, open_adapter

QUANTITIES = ("v_norm", "top_eigenvalue", "shrink", "score")


def module_geometry(adapter, base, aligned, scales=()) -> list[dict]:
    """One row per module of `adapter`: {"name", "kind" (q_proj, v_proj, ...), "v_norm", "sigma_1", "top_eigenvalue",
    "shrink", "score", "at_scale"}, in one streaming pass over the two checkpoints (a module at a time).
    "at_scale" is {t: ||C(t V) B||_F / ||B||_F} for t in {1} and `scales`: the shrink factor an alignment change
    t times larger would give (C(t V) is built and applied; nothing is assumed)."""
    adapter = open_adapter(adapter)
    base, aligned = open_weights(base), open_weights(aligned)
    keys = check_inputs(adapter, base, aligned)  # {module name: weight key}
    scales = sorted({1.0, *scales})
    rows = []
    for (name, m), (_, v, v_norm) in zip(adapter.modules.items(), alignment_changes(base, aligned, [keys[n] for n in adapter.modules])):
        lora_b = m.lora_b.float()  # (d_out, r), B
        b_norm = float(torch.linalg.matrix_norm(lora_b))
        projected_b = safe_lora_projector(v, "paper", v_norm=v_norm) @ lora_b  # (d_out, r), C B
        at_scale = {t: (float(torch.linalg.matrix_norm(projected_b)) if t == 1.0 else
                        float(torch.linalg.matrix_norm(safe_lora_projector(t * v, "paper") @ lora_b))) / b_norm for t in scales}
        sigma_1 = largest_singular_value(v)  # the largest singular value of V
        rows.append({"name": name, "kind": name.rsplit(".", 1)[-1], "v_norm": v_norm, "sigma_1": sigma_1,
                     "top_eigenvalue": sigma_1 ** 2 / v_norm if v_norm > 0 else 0.0, "shrink": at_scale[1.0],
                     "score": similarity_of_projected(projected_b, lora_b, m.lora_a), "at_scale": at_scale})
    return rows


def summary(rows: list[dict]) -> dict:
    """{quantity: {"median", "min", "max"}} over the modules, for each of QUANTITIES."""
    return {q: {"median": statistics.median(r[q] for r in rows), "min": min(r[q] for r in rows), "max": max(r[q] for r in rows)}
            for q in QUANTITIES}


def lowest_scoring(rows: list[dict], k: int) -> dict:
    """How many of the k lowest-scoring modules are of each kind ({"v_proj": 14, "q_proj": 1})."""
    counts: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: r["score"])[:k]:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    return counts
