"""Notebooks 00 and 01 run under papermill and record what they computed."""

import math


def test_notebook_00_smoke_test(run_notebook):
    results = run_notebook("00_start_here")
    assert results["all_passed"] is True
    assert set(results["checks"]) == {"forward pass", "LoRA modules", "Safe LoRA score in [-1, 1]"}


def test_notebook_01_projection_maths(run_notebook):
    results = run_notebook("01_projection_maths", n_layers=6, k=2, threshold=0.6, timing_dims=[32, 64], timing_repeats=1,
                           interactive=False)
    assert results["exact_idempotence_error"] < 1e-5
    assert results["paper_idempotence_error"] > 0.1
    # the paper C's effect on ||B|| is linear in the scale of V; the exact projector's is constant
    paper = list(results["paper_shrink_by_scale"].values())
    exact = list(results["exact_shrink_by_scale"].values())
    assert math.isclose(paper[-1] / paper[0], 1e4, rel_tol=1e-3)
    assert max(exact) - min(exact) < 1e-5
    assert len(results["scores"]) == 6 and len(results["selected_number"]) == 2
    assert all(results["scores"][n] <= 0.6 for n in results["selected_threshold"])
    assert results["low_rank_max_error"] < 1e-5
    assert [t["d"] for t in results["timing"]] == [32, 64]
