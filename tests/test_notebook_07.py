"""Notebook 07 runs the whole protocol (small world, one attack, two seeds) and records every method."""

from safelora_lite.comparison.protocol import RATES, load_protocol


def test_notebook_07_records_every_method(run_notebook):
    results = run_notebook("07_comparison", attacks=["mixed"], seeds=[0, 1], steps=30, world_size="small", max_per_split=12)
    expected = set(load_protocol()["methods"])
    assert set(results["methods"]) == expected
    for name, rates in results["methods"].items():
        assert set(rates) == set(RATES)
        assert all(0.0 <= rates[r] <= 1.0 for r in RATES), name
    assert results["default_attack"] == "mixed"
    assert len(results["rows"]) == 2 * len(expected)
    assert results["pareto_front"]["mixed"]
