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

from safelora_lite.adapters.weights import alignment_changes, open_weights
from safelora_lite.maths.projection import largest_singular_value
from safelora_lite.methods.safelora import check_inputs, open_adapter, score_adapter

QUANTITIES = ("v_norm", "top_eigenvalue", "shrink", "score")


def module_geometry(adapter, base, aligned) -> list[dict]:
    """One row per module of `adapter`: {"name", "kind" (q_proj, v_proj, ...), "v_norm", "sigma_1", "top_eigenvalue",
    "shrink", "score"}, streaming the two checkpoints one module at a time."""
    adapter = open_adapter(adapter)
    base, aligned = open_weights(base), open_weights(aligned)
    projections = score_adapter(adapter, base, aligned, projector="paper")
    keys = check_inputs(adapter, base, aligned)
    rows = []
    for name, (_, v, v_norm) in zip(adapter.modules, alignment_changes(base, aligned, [keys[n] for n in adapter.modules])):
        sigma_1 = largest_singular_value(v)  # largest singular value of V
        rows.append({"name": name, "kind": name.rsplit(".", 1)[-1], "v_norm": v_norm, "sigma_1": sigma_1,
                     "top_eigenvalue": sigma_1 ** 2 / v_norm if v_norm > 0 else 0.0,
                     "shrink": projections[name].shrink, "score": projections[name].score})
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
