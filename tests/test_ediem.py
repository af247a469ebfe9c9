"""E-DIEM against direct computations: exact quantiles at any size, the formula, the null, the reference."""

import numpy as np
import pytest
import torch

from safelora_lite import InputError, alignment_matrix, safe_lora_projector
from safelora_lite.maths.ediem import (
    REFERENCE_EPS, LowRank, ediem, null_distances, quantile_range_terms, quantiles, reference_ediem, update_distance,
)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 300_001])
def test_quantiles_match_torch_quantile(n):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n))
    qs = [0.0, 0.1, 0.25, 0.5, 0.75, 0.99, 1.0]
    expected = torch.quantile(x.double(), torch.tensor(qs, dtype=torch.float64)).tolist()
    assert np.allclose(quantiles(x, qs), expected, rtol=0, atol=1e-12)


def test_quantiles_beyond_torch_quantile_limit():
    """torch.quantile refuses more than 2^24 entries (an 11008 x 4096 MLP update has 45M)."""
    n = (1 << 24) + 3
    x = torch.randn(n, generator=torch.Generator().manual_seed(1))
    x[::5] = 0.0  # many ties
    with pytest.raises(RuntimeError):
        torch.quantile(x, 0.25)
    qs = [0.0, 0.25, 0.75, 1.0]
    assert np.allclose(quantiles(x, qs), np.quantile(x.numpy().astype(np.float64), qs), rtol=0, atol=0)


def test_quantiles_with_heavy_ties_and_outliers():
    x = torch.zeros(600, 700)
    x[3, 4] = 1e4
    x[5, :50] = -2.0
    qs = [0.0, 1e-4, 0.25, 0.9999, 1.0]
    assert np.allclose(quantiles(x, qs), np.quantile(x.numpy().astype(np.float64), qs))


@pytest.mark.parametrize("shape", [(40, 30), (700, 500)])  # below and above the full-sort limit (2^18 entries)
def test_low_rank_quantiles_equal_those_of_its_entries(shape):
    """Quantiles of B A kept as factors (entries made block by block) are the exact quantiles of those entries."""
    g = torch.Generator().manual_seed(3)
    low = LowRank(torch.randn(shape[0], 3, generator=g), torch.randn(3, shape[1], generator=g), rows_per_block=64)
    entries = torch.cat(list(low.blocks())).numpy().astype(np.float64)  # what the blocks make
    assert entries.size == shape[0] * shape[1]
    qs = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert np.allclose(quantiles(low, qs), np.quantile(entries, qs), rtol=0, atol=0)
    dense = (low.left @ low.right).reshape(-1).numpy().astype(np.float64)  # one product: the same up to rounding
    assert np.allclose(quantiles(low, qs), np.quantile(dense, qs), rtol=1e-5, atol=1e-6)
    assert quantile_range_terms(LowRank(2 * low.left, low.right), low) == pytest.approx(
        quantile_range_terms(2 * low.left @ low.right, low.left @ low.right), rel=1e-5, abs=1e-6)


def test_quantiles_refuse_bad_input():
    with pytest.raises(InputError):
        quantiles(torch.tensor([1.0, float("nan")]), [0.5])
    with pytest.raises(InputError):
        quantiles(torch.randn(5), [1.5])


def test_ediem_is_the_published_formula():
    g = torch.Generator().manual_seed(0)
    dist = 3.0 + torch.rand(40, generator=g)
    d, v_max, v_min = 3.9, 0.02, 0.005
    q1, q3 = np.quantile(dist.double().numpy(), [0.25, 0.75])
    z = (d - float(dist.double().mean())) / (q3 - q1)
    published = ((z - v_min) / (v_max - v_min)) * (v_max - v_min)  # as the public code writes it
    assert ediem(d, dist, v_max, v_min) == pytest.approx(published, rel=1e-6)
    assert ediem(d, dist) == pytest.approx(z, rel=1e-6)


def test_ediem_with_zero_spread_is_defined():
    same = torch.full((10,), 2.0)
    assert ediem(2.0, same) == 0.0
    assert ediem(2.5, same) > 1e6 and ediem(1.5, same) < -1e6
    assert ediem(0.0, torch.zeros(8)) == 0.0  # a zero update against its (zero) null


@pytest.fixture
def module():
    g = torch.Generator().manual_seed(0)
    w_base = torch.randn(48, 40, generator=g)
    w_aligned = w_base + 0.3 * torch.randn(48, 3, generator=g) @ torch.randn(3, 40, generator=g)
    v = alignment_matrix(w_base, w_aligned)
    return v, torch.randn(48, 4, generator=g), torch.randn(4, 40, generator=g)


@pytest.mark.parametrize("kind", ["paper", "exact"])
def test_update_distance_matches_dense(module, kind):
    v, b, a = module
    c = safe_lora_projector(v, kind=kind, rank=3 if kind == "exact" else None)
    dense = float(torch.linalg.matrix_norm(2.0 * (c.dense() @ b @ a - b @ a)))
    assert update_distance(c, b, a, scaling=2.0) == pytest.approx(dense, rel=1e-5)


def test_null_distances_are_seeded_and_scale_with_the_update(module):
    v, b, a = module
    c = safe_lora_projector(v)
    first = null_distances(c, b, a, samples=16, seed=3)
    assert first.shape == (16,)
    assert torch.equal(first, null_distances(c, b, a, samples=16, seed=3))
    assert not torch.equal(first, null_distances(c, b, a, samples=16, seed=4))
    assert torch.allclose(null_distances(c, 5 * b, a, scaling=2.0, samples=16, seed=3), 10 * first, rtol=1e-4)
    # the null keeps ||s B A||: with C = 0 every distance would be exactly that norm
    exact = safe_lora_projector(v, kind="exact", rank=3)
    assert (null_distances(exact, b, a, samples=16, seed=3) <= torch.linalg.matrix_norm(b @ a) * (1 + 1e-5)).all()


def test_score_tells_inside_from_outside_the_alignment_subspace(module):
    v, _, a = module
    c = safe_lora_projector(v, kind="exact", rank=3)
    u = torch.linalg.svd(v).U  # (48, 48)
    inside = u[:, :3] @ torch.randn(3, 4, generator=torch.Generator().manual_seed(1))  # B in col(V)
    outside = u[:, 10:14]  # B orthogonal to col(V)
    scores = {}
    for name, b in (("inside", inside), ("outside", outside)):
        d = update_distance(c, b, a)
        scores[name] = ediem(d, null_distances(c, b, a, samples=64, seed=0))
    assert update_distance(c, inside, a) == pytest.approx(0.0, abs=1e-4)
    assert scores["inside"] < -1.0 < 1.0 < scores["outside"]


def test_ediem_is_dimension_insensitive_where_raw_distance_is_not():
    """Random updates of different sizes: d grows with the dimension, E-DIEM of a random update stays O(1)."""
    raw, scores = [], []
    for dim in (16, 256):
        g = torch.Generator().manual_seed(dim)
        v = torch.randn(dim, 4, generator=g) @ torch.randn(4, dim, generator=g)  # a rank-4 alignment
        c = safe_lora_projector(v, kind="exact", rank=4)
        b, a = torch.randn(dim, 4, generator=g), torch.randn(4, dim, generator=g)
        d = update_distance(c, b, a)
        raw.append(d)
        scores.append(ediem(d, null_distances(c, b, a, samples=64, seed=1)))
    assert raw[1] > 10 * raw[0]
    assert all(abs(s) < 4.0 for s in scores)


def test_reference_degenerates_to_one_minus_v_min():
    """50 identical samples: E[d] = d and IQR = eps, so the score is about eps / eps - v_m."""
    g = torch.Generator().manual_seed(0)
    y = 1e-3 * torch.randn(64, 32, generator=g)  # B A, small like a LoRA update
    x = 0.1 * y + 1e-4 * torch.randn(64, 32, generator=g)  # C B A, shrunk
    v_max, v_min = quantile_range_terms(x, y)
    score = reference_ediem(x, y)
    assert score == pytest.approx(1.0 - v_min, abs=0.05)
    assert reference_ediem(x, y, terms=(v_max, v_min)) == score  # given terms: the same score, one quantile pass less
    # the distance itself barely matters: a 3x larger gap moves the score by rounding noise only
    assert reference_ediem(x, 3 * y) == pytest.approx(1.0 - quantile_range_terms(x, 3 * y)[1], abs=0.05)
    assert REFERENCE_EPS == 1e-6


def test_reference_zero_update_is_defined_not_a_crash():
    zeros = torch.zeros(8, 6)
    assert reference_ediem(zeros, zeros) == 0.0


def test_reference_works_beyond_torch_quantile_limit():
    g = torch.Generator().manual_seed(0)
    b, a = 1e-2 * torch.randn(4500, 2, generator=g), torch.randn(2, 3800, generator=g)  # 17.1M entries > 2^24
    y = b @ a
    score = reference_ediem(0.2 * y, y)
    assert np.isfinite(score)
