"""Safe LoRA's geometry table against a direct computation on a tiny pair."""

import torch

from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.adapters.weights import Checkpoint
from safelora_lite.comparison.geometry import QUANTITIES, lowest_scoring, module_geometry, summary
from safelora_lite.methods.safelora import score_adapter


def test_geometry_rows_match_a_direct_computation(tiny_llama_pair):
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    rows = module_geometry(adapter_dir, base_dir, aligned_dir)
    adapter, base, aligned = read_adapter(adapter_dir), Checkpoint(base_dir), Checkpoint(aligned_dir)
    assert [r["name"] for r in rows] == list(adapter.modules)
    scores = score_adapter(adapter_dir, base_dir, aligned_dir)
    for row, module in zip(rows, adapter.modules.values()):
        v = aligned.get(module.target).float() - base.get(module.target).float()  # (d_out, d_in)
        c = v @ v.T / torch.linalg.norm(v)  # the paper's C, formed densely here only
        b = module.lora_b.float()
        assert abs(row["v_norm"] - float(torch.linalg.norm(v))) < 1e-5
        assert abs(row["top_eigenvalue"] - float(torch.linalg.eigvalsh(c).max())) < 1e-5
        assert abs(row["shrink"] - float(torch.linalg.norm(c @ b) / torch.linalg.norm(b))) < 1e-5
        assert row["shrink"] <= row["top_eigenvalue"] + 1e-6  # no update keeps more than C's largest eigenvalue
        assert row["score"] == scores[row["name"]].score  # Safe LoRA's own score
    stats = summary(rows)
    assert set(stats) == set(QUANTITIES) and all(s["min"] <= s["median"] <= s["max"] for s in stats.values())
    assert sum(lowest_scoring(rows, 3).values()) == 3
