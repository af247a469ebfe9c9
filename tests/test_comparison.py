"""The comparison protocol: frozen files, one method interface, summaries and the Pareto front."""

import json

import pytest

from safelora_lite import InputError
from safelora_lite.comparison.protocol import METHODS, PROTOCOL_DIR, load_protocol, markdown_table, pareto_front, summarize
from safelora_lite.comparison.verdicts import verdicts


def test_every_protocol_method_is_registered_and_controls_follow_their_method():
    for path in PROTOCOL_DIR.glob("*.json"):
        protocol = json.loads(path.read_text())
        assert protocol["name"] == path.stem and protocol["frozen"]
        names = list(protocol["methods"])
        assert names[0] == "lora"
        for i, name in enumerate(names):
            assert name in METHODS, name
            of = protocol["methods"][name].get("of")
            assert of is None or of in names[:i], f"{name} needs {of} earlier in {path.name}"


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(InputError, match="comparison_v1"):
        load_protocol("nope")


def _rows():
    rows = []
    for seed, (lora_ref, fix_ref, fix_task) in enumerate([(0.1, 0.8, 0.9), (0.2, 0.9, 0.95), (0.0, 0.7, 0.85)]):
        rows.append({"attack": "mixed", "seed": seed, "method": "lora", "refusal_rate": lora_ref, "harmful_compliance_rate": 1 - lora_ref,
                     "over_refusal_rate": 0.0, "task_accuracy": 0.9, "seconds": 0.0})
        rows.append({"attack": "mixed", "seed": seed, "method": "fix", "refusal_rate": fix_ref, "harmful_compliance_rate": 1 - fix_ref,
                     "over_refusal_rate": 0.1, "task_accuracy": fix_task, "seconds": 2.0})
        rows.append({"attack": "mixed", "seed": seed, "method": "break", "refusal_rate": 1.0, "harmful_compliance_rate": 0.0,
                     "over_refusal_rate": 1.0, "task_accuracy": 0.0, "seconds": 1.0})
    return rows


def test_summarize_mean_and_spread():
    s = summarize(_rows())["mixed"]
    assert s["lora"]["refusal_rate"]["mean"] == pytest.approx(0.1)
    assert s["fix"]["refusal_rate"]["min"] == 0.7 and s["fix"]["refusal_rate"]["n"] == 3
    assert s["fix"]["seconds"] == 2.0
    assert "| fix | 0.80 ±" in markdown_table(summarize(_rows()), "mixed")


def test_verdicts_need_refusal_gain_beyond_spread_and_task_kept():
    v = verdicts(summarize(_rows()), "mixed")
    assert v["fix"]["helps"] is True
    assert v["break"]["helps"] is False  # all refusal, no task: not a fix
    assert v["lora"]["helps"] is False


def test_pareto_front():
    assert sorted(pareto_front({"a": (0.9, 0.1), "b": (0.5, 0.9), "c": (0.4, 0.5), "d": (0.9, 0.1)})) == ["a", "b", "d"]
