"""The safety landscape: points along directions are the models they claim to be, the weights come back, the
cache is keyed by what the rates depend on, and the readings (basin, coordinates, shrink) are right on toys."""

import pytest
import torch

from safelora_lite.adapters.lora_io import LoraAdapter, LoraModule, read_adapter
from safelora_lite.adapters.weights import Checkpoint
from safelora_lite.comparison import landscape as read
from safelora_lite.comparison.geometry import module_geometry
from safelora_lite.errors import InputError
from safelora_lite.evaluation import landscape as ls
from safelora_lite.evaluation.generation import RATES

PER_SPLIT = 4  # prompts per held-out split: enough to tell models apart, quick on the small world


@pytest.fixture(scope="module")
def attack(small_world):
    import safelora_lite.worlds.toy as tw

    folder = small_world.train_attack(tw.AttackConfig(kind="mixed", steps=40, seed=0), progress=False)
    return ls.adapter_direction(read_adapter(folder), "attack")


def rates(r: dict) -> dict:
    return {m: r[m] for m in (*RATES, "n")}


def test_alpha_zero_is_the_aligned_model_and_alpha_one_the_adapter(small_world, attack):
    landscape = ls.Landscape(small_world.evaluator(PER_SPLIT))
    line = landscape.line(attack, [0.0, 1.0], progress=False)
    fresh = small_world.evaluator(PER_SPLIT)  # another model, another cache: nothing shared with the landscape
    assert rates(line[0]) == fresh() == fresh(ls.point_adapter([(attack, 0.0)]))  # a zero update merged: the same model
    assert rates(line[1]) == fresh(attack.adapter)
    assert line[0]["refusal_rate"] != line[1]["refusal_rate"] or line[0]["task_accuracy"] != line[1]["task_accuracy"]


def test_weights_are_restored_exactly(small_world, attack):
    evaluator = small_world.evaluator(PER_SPLIT)
    before = {k: v.clone() for k, v in evaluator.model.state_dict().items()}
    landscape = ls.Landscape(evaluator)
    v = ls.alignment_direction(small_world.base_dir, small_world.aligned_dir, attack.deltas())
    landscape.line(attack, [-1.0, 2.0], progress=False)
    landscape.grid(attack, v, [0.5], [-1.0, 1.0], progress=False)
    after = evaluator.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_point_is_the_sum_of_its_terms(attack):
    random = ls.random_direction(attack, seed=3)
    point = ls.point_adapter([(attack, 0.5), (random, -2.0)])
    attack_deltas, random_deltas = attack.deltas(), random.deltas()
    for m in point.modules.values():
        assert torch.allclose(m.delta(), 0.5 * attack_deltas[m.target] - 2.0 * random_deltas[m.target], atol=1e-6)
    one = ls.point_adapter([(attack, 1.0)])  # alpha = 1: the adapter's own tensors, bit for bit
    assert all(torch.equal(one.modules[n].lora_b, m.lora_b) and one.modules[n].scaling == m.scaling
               for n, m in attack.adapter.modules.items())


def test_alignment_direction_goes_back_to_the_base_weights(small_world, attack):
    keys = list(attack.deltas())
    v = ls.alignment_direction(small_world.base_dir, small_world.aligned_dir, keys)
    base, aligned = Checkpoint(small_world.base_dir), Checkpoint(small_world.aligned_dir)
    back = ls.point_adapter([(v, -1.0)])
    for m in back.modules.values():
        assert torch.allclose(aligned.get(m.target) + m.delta(), base.get(m.target), atol=1e-6)
    assert v.norm() > 0


def test_random_direction_has_the_per_module_norms(attack):
    random = ls.random_direction(attack, seed=0)
    like, got = attack.norms(), random.norms()
    assert got.keys() == like.keys()
    assert all(got[k] == pytest.approx(like[k], rel=1e-5) for k in like)
    assert random.digest == ls.random_direction(attack, seed=0).digest != ls.random_direction(attack, seed=1).digest
    coefs, off = ls.coordinates(random, [attack])
    assert abs(coefs[0]) < 0.5 and off > 0.8  # not the attack's direction: nearly orthogonal to it


def test_coordinates_recover_a_combination():
    g = torch.Generator().manual_seed(0)
    w1, w2, u2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.randn(3, 3, generator=g)
    d1 = ls.dense_direction({"w.weight": w1}, "d1")
    d2 = ls.dense_direction({"w.weight": w2, "u.weight": u2}, "d2")
    combination = ls.dense_direction({"w.weight": 0.3 * w1 - 2.0 * w2, "u.weight": -2.0 * u2}, "0.3 d1 - 2 d2")
    coefs, off = ls.coordinates(combination, [d1, d2])
    assert coefs == pytest.approx([0.3, -2.0], abs=1e-5) and off < 1e-3
    elsewhere = ls.dense_direction({"z.weight": torch.ones(2, 2)}, "elsewhere")  # moves no weight the axes move
    assert ls.coordinates(elsewhere, [d1, d2]) == ([0.0, 0.0], 1.0)


def test_points_are_cached_on_disk_by_evaluation(small_world, attack, tmp_path):
    first = ls.Landscape(small_world.evaluator(PER_SPLIT), tmp_path)
    line = first.line(attack, [0.5], progress=False)
    again_evaluator = small_world.evaluator(PER_SPLIT)
    again = ls.Landscape(again_evaluator, tmp_path)
    assert again.line(attack, [0.5], progress=False) == line
    assert again.cached == 1 and again_evaluator.evaluations == 0
    other = ls.Landscape(small_world.evaluator(PER_SPLIT + 1), tmp_path)  # other prompts: another cache
    assert other.folder != first.folder
    other.line(attack, [0.5], progress=False)
    assert other.cached == 0


def test_bad_directions_are_refused(small_world):
    with pytest.raises(InputError):
        ls.dense_direction({"w.weight": torch.ones(3)}, "a vector")
    with pytest.raises(InputError):
        ls.dense_direction({}, "nothing")
    with pytest.raises(InputError):
        ls.Landscape(small_world.evaluator(1)).point([])


def point(alpha, refusal, n=100, task=0.5):
    return {"alpha": alpha, "refusal_rate": refusal, "task_accuracy": task, "n": {"refusal_rate": n, "task_accuracy": n}}


def test_basin_walks_out_from_zero_to_the_walls():
    aligned = point(0.0, 0.95)  # Wilson interval over 100 prompts: about [0.89, 0.98]
    line = [point(a, r) for a, r in [(-1.0, 0.5), (-0.5, 0.93), (0.0, 0.95), (0.5, 0.9), (1.0, 0.2), (1.5, 0.96)]]
    b = read.basin(line, aligned)
    assert (b["low"], b["high"], b["width"], b["exit_low"], b["exit_high"]) == (-0.5, 0.5, 1.0, -1.0, 1.0)
    flat = read.basin([point(a, 0.95) for a in (-1.0, 0.0, 1.0)], aligned)
    assert flat["exit_low"] is None and flat["exit_high"] is None and flat["width"] == 2.0
    assert "at least 2.00" in read.basin_text("flat", flat)
    with pytest.raises(InputError):
        read.basin([point(0.5, 0.9)], aligned)
    perfect = point(0.0, 1.0, n=4)  # a rate of 1 is inside its own interval, whatever the rounding of its ends
    assert read.basin([perfect], perfect)["low"] == 0.0


def test_same_rates_follows_the_verdict_rule():
    deletion = point(1.0, 0.10, n=240)
    assert read.same_rates(point(1.0, 0.11, n=240), deletion)
    assert not read.same_rates(point(1.0, 0.40, n=240), deletion)


def test_shrink_factors_follow_the_size_of_v(tiny_llama_pair):
    """No shrink factor exceeds C's largest eigenvalue, and a t times larger V keeps t times more of each B."""
    base_dir, aligned_dir, adapter_dir = tiny_llama_pair
    rows = module_geometry(adapter_dir, base_dir, aligned_dir)
    assert all(0 < r["shrink"] <= r["top_eigenvalue"] * (1 + 1e-5) for r in rows)
    assert all(r["sigma_1"] <= r["v_norm"] * (1 + 1e-6) for r in rows)
    base, aligned = Checkpoint(base_dir), Checkpoint(aligned_dir)
    scaled = {k: base.get(k) + 10.0 * (aligned.get(k) - base.get(k)) for k in base.keys()}
    base_sd = {k: base.get(k) for k in base.keys()}
    rows10 = module_geometry(adapter_dir, base_sd, scaled)
    assert [r10["shrink"] for r10 in rows10] == pytest.approx([10.0 * r["shrink"] for r in rows], rel=1e-3)
    at_scale = module_geometry(adapter_dir, base_dir, aligned_dir, scales=(10.0,))
    assert [r["at_scale"][10.0] for r in at_scale] == pytest.approx([r10["shrink"] for r10 in rows10], rel=1e-3)
    prediction = read.shrink_prediction(rows)
    assert prediction["scale_to_keep"] == pytest.approx(1.0 / prediction["median_shrink"])
    assert prediction["min_shrink"] <= prediction["median_shrink"] <= prediction["max_shrink"]


def test_a_lora_module_direction_keeps_its_scaling():
    module = LoraModule("base_model.model.w", torch.ones(2, 3), torch.ones(4, 2), scaling=2.0)
    d = ls.adapter_direction(LoraAdapter(config={}, modules={module.name: module}), "d")
    assert d.norms() == {"w.weight": pytest.approx(float(torch.linalg.matrix_norm(module.delta())))}
    assert ls.module_name("w.weight") == module.name
