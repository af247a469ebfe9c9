"""Notebook 07 runs comparison_v2 on the small world (one attack, one seed, a tiny evaluation): every method
with its chosen setting, interval and computed verdict; comparison_v1 stays reachable through `protocol`."""

from safelora_lite.comparison.protocol import RATES, load_protocol
from safelora_lite.comparison.selection import knob_of


def test_notebook_07_chooses_on_validation_and_records_every_method(run_notebook):
    results = run_notebook("07_comparison", attacks=["mixed"], seeds=[0], steps=20, world_size="small", max_per_split=6)
    v2 = load_protocol("comparison_v2")
    assert results["protocol"] == "comparison_v2" and results["selection_rule"] == v2["selection"]["rule"]
    assert results["run_note"] == "this run: 1 attack of 3 (mixed), 1 seed of 3 (0): fewer than protocol comparison_v2 runs"
    per = results["per_attack"]["mixed"]
    assert list(per) == list(v2["methods"]) and set(results["methods"]) == set(v2["methods"])
    for name, entry in per.items():
        for rate in RATES:
            low, high = entry[rate]["interval"]
            assert 0.0 <= low <= entry[rate]["mean"] <= high <= 1.0, (name, rate)
        assert isinstance(entry["verdict"]["helps"], bool)
        knob = knob_of(v2["methods"][name])
        assert [c["seed"] for c in entry["chosen"]] == [0]
        assert all(knob in c for c in entry["chosen"]) if knob else not any(set(c) - {"seed", "k"} for c in entry["chosen"])
    for control in ("zero_control", "random_control"):  # at the K Safe LoRA (paper) chose, seed by seed
        assert [c["k"] for c in per[control]["chosen"]] == [c["k"] for c in per["safe_lora_paper"]["chosen"]]
    lines = results["conclusions"]["mixed"]
    assert len(lines) == len(per) - 1 + 2 + 1 and lines[-1].startswith("Under the mixed attack, ")
    assert len(results["rows"]) == len(v2["methods"])
    assert results["pareto_front"]["mixed"]


def test_notebook_07_still_runs_v1(run_notebook):
    methods = ["lora", "safe_lora_paper", "zero_control", "splora"]
    results = run_notebook("07_comparison", protocol="comparison_v1", attacks=["mixed"], seeds=[0], steps=20, world_size="small",
                           max_per_split=6, methods=methods)
    assert results["protocol"] == "comparison_v1" and results["selection_rule"] is None
    assert [r["method"] for r in results["rows"]] == methods and not any("selection" in r for r in results["rows"])
    assert results["per_attack"]["mixed"]["safe_lora_paper"]["setting"] == "K=1"  # v1's 16% of the small world's 8 modules
