"""The projection maths against brute-force dense computations and their defining properties."""

import pytest
import torch
import torch.nn.functional as F

from safelora_lite import InputError, alignment_matrix, projection_similarity, safe_lora_projector, select_modules


def dense_cosine(c_dense, b, a):
    return float(F.cosine_similarity((c_dense @ b @ a).flatten(), (b @ a).flatten(), dim=0))


@pytest.fixture
def mats():
    g = torch.Generator().manual_seed(0)
    w_base = torch.randn(12, 10, generator=g)
    w_aligned = w_base + torch.randn(12, 3, generator=g) @ torch.randn(3, 10, generator=g)  # rank-3 alignment
    b = torch.randn(12, 4, generator=g)
    a = torch.randn(4, 10, generator=g)
    return w_base, w_aligned, b, a


def test_alignment_matrix_is_difference(mats):
    w_base, w_aligned, _, _ = mats
    assert torch.equal(alignment_matrix(w_base, w_aligned), w_aligned - w_base)


def test_half_precision_inputs_computed_in_fp32(mats):
    w_base, w_aligned, _, _ = mats
    v = alignment_matrix(w_base.half(), w_aligned.bfloat16())
    assert v.dtype == torch.float32


def test_paper_projector_matches_formula(mats):
    w_base, w_aligned, b, _ = mats
    v = alignment_matrix(w_base, w_aligned)
    c = safe_lora_projector(v)
    expected = v @ v.T / torch.linalg.matrix_norm(v)
    assert torch.allclose(c.dense(), expected, atol=1e-5)
    assert torch.allclose(c @ b, expected @ b, atol=1e-4)


def test_paper_projector_is_not_idempotent_and_scales_with_v(mats):
    w_base, w_aligned, _, _ = mats
    v = alignment_matrix(w_base, w_aligned)
    c = safe_lora_projector(v).dense()
    assert not torch.allclose(c @ c, c, atol=1e-3)
    eig = torch.linalg.eigvalsh(c).flip(0)[:3]
    assert torch.allclose(eig, safe_lora_projector(v).eigenvalues()[:3], rtol=1e-4)
    # doubling V doubles C: the "projection" rescales the update by an amount that depends on V's scale
    assert torch.allclose(safe_lora_projector(2 * v).dense(), 2 * c, rtol=1e-5, atol=1e-5)


def test_exact_projector_is_symmetric_idempotent(mats):
    w_base, w_aligned, _, _ = mats
    c = safe_lora_projector(alignment_matrix(w_base, w_aligned), kind="exact", rank=2).dense()
    assert torch.allclose(c, c.T, atol=1e-6)
    assert torch.allclose(c @ c, c, atol=1e-5)
    assert torch.linalg.matrix_rank(c) == 2


def test_exact_projector_default_rank_is_numerical_rank(mats):
    w_base, w_aligned, _, _ = mats
    assert safe_lora_projector(alignment_matrix(w_base, w_aligned), kind="exact").rank == 3


def test_update_inside_col_v_is_unchanged_by_exact_projector(mats):
    w_base, w_aligned, _, a = mats
    v = alignment_matrix(w_base, w_aligned)
    b_inside = v @ torch.randn(10, 4)  # columns in col(V)
    c = safe_lora_projector(v, kind="exact")
    assert torch.allclose(c @ b_inside, b_inside, atol=1e-4)
    assert projection_similarity(c, b_inside, a) == pytest.approx(1.0, abs=1e-6)


def test_randomized_svd_path_matches_full_svd():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(600, 4, generator=g) @ torch.randn(4, 700, generator=g) + 1e-3 * torch.randn(600, 700, generator=g)
    fast = safe_lora_projector(v, kind="exact", rank=4).dense()  # 4 * 8 < 600: randomized
    u = torch.linalg.svd(v, full_matrices=False)[0][:, :4]
    assert torch.allclose(fast, u @ u.T, atol=1e-4)


@pytest.mark.parametrize("kind,rank", [("paper", None), ("exact", 2), ("exact", None)])
def test_low_rank_similarity_equals_dense(mats, kind, rank):
    w_base, w_aligned, b, a = mats
    c = safe_lora_projector(alignment_matrix(w_base, w_aligned), kind=kind, rank=rank)
    assert projection_similarity(c, b, a) == pytest.approx(dense_cosine(c.dense(), b, a), abs=1e-5)


def test_score_invariant_to_scale_of_b(mats):
    w_base, w_aligned, b, a = mats
    c = safe_lora_projector(alignment_matrix(w_base, w_aligned))
    assert projection_similarity(c, 7.5 * b, a) == pytest.approx(projection_similarity(c, b, a), abs=1e-6)


def test_zero_update_scores_one(mats):
    w_base, w_aligned, b, a = mats
    c = safe_lora_projector(alignment_matrix(w_base, w_aligned))
    assert projection_similarity(c, torch.zeros_like(b), a) == 1.0


def test_bad_inputs_raise_one_line_errors(mats):
    w_base, w_aligned, b, a = mats
    v = alignment_matrix(w_base, w_aligned)
    with pytest.raises(InputError, match="differ in shape"):
        alignment_matrix(w_base, w_aligned[:, :5])
    bad = w_base.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        alignment_matrix(bad, w_aligned)
    with pytest.raises(InputError, match="out of range"):
        safe_lora_projector(v, kind="exact", rank=11)
    with pytest.raises(InputError, match="exact"):
        safe_lora_projector(v, kind="paper", rank=2)
    with pytest.raises(InputError, match="all zeros"):
        safe_lora_projector(torch.zeros(3, 3))
    with pytest.raises(InputError, match="rows"):
        safe_lora_projector(v) @ torch.randn(5, 2)
    with pytest.raises(InputError, match="B @ A"):
        projection_similarity(safe_lora_projector(v), b, a[:2])
    with pytest.raises(InputError) as info:
        safe_lora_projector(v, kind="bogus")
    assert "\n" not in str(info.value)


def test_select_by_number_takes_k_lowest_with_stable_ties():
    scores = {"q0": 0.9, "v0": 0.1, "q1": 0.5, "v1": 0.1}
    assert select_modules(scores, "number", k=2) == ["v0", "v1"]
    assert select_modules(scores, "number", k=3) == ["v0", "q1", "v1"]
    assert select_modules(scores, "number", k=0) == []


def test_select_by_threshold_is_inclusive():
    scores = {"a": 0.2, "b": 0.35, "c": 0.5}
    assert select_modules(scores, "threshold", threshold=0.35) == ["a", "b"]


@pytest.mark.parametrize("kwargs", [dict(select="number", k=5), dict(select="number", k=-1), dict(select="number", k=None),
                                    dict(select="threshold", threshold=1.5), dict(select="threshold", threshold=None),
                                    dict(select="nope")])
def test_select_rejects_out_of_range(kwargs):
    with pytest.raises(InputError):
        select_modules({"a": 0.1, "b": 0.2}, **kwargs)
