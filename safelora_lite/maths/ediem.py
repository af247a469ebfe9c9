"""E-DIEM, the distance SPLoRA scores LoRA modules with, and the public code's degenerate variant.

References:
- Ao, Dong, Hu, Ramchurn, "Safe Pruning LoRA: Robust Distance-Guided Pruning for Safety Alignment
  in Adaptation of LLMs", TACL 2025 (arXiv 2506.18931); public code AoShuang92/SPLoRA
  (`similarity.compute_diem_torch_iqr`, called from `splora.py`).
- "Dimension Insensitive Euclidean Metric (DIEM)", arXiv 2407.08623: a Euclidean distance is only
  comparable across sizes once it is centred and scaled by the distribution it has at that size.

Per LoRA module, with X = C B A (the update projected on the alignment subspace) and Y = B A:
  d       = ||X - Y||_F                                    the distance being judged
  E[d]    = mean of an empirical distribution of distances  what "typical" means
  IQR(d)  = Q3 - Q1 of that distribution                   its spread, robust to outliers
  v_M     = Q3(X) - Q1(X),  v_m = Q1(X) - Q1(Y)            the quantile-range terms (entries of X, Y)
  E-DIEM  = ((d - E[d]) / IQR(d) - v_m) / (v_M - v_m) * (v_M - v_m)
As the public code writes it, the max-min rescaling by (v_M - v_m) cancels, so E-DIEM is
(d - E[d]) / IQR(d) - v_m: a robust z-score of the distance, shifted by v_m.

What "the empirical distribution" is decides whether the score means anything:
- reference: the public code passes 50 identical copies of the same pair, so E[d] = d, IQR = 0 + eps,
  and the score is about 1 - v_m plus float32 rounding noise (`reference_ediem`).
- here (`null_distances`): the distances of random updates of the same size. Each sample keeps A
  and the norm ||s B A||_F but draws the output directions B' at random, so the score says how
  much farther from (positive) or closer to (negative) the alignment subspace this update is than
  a random update of the same shape, rank and norm, in IQRs of that null. The null is computed at the
  module's own dimensions, which is what makes the score dimension-insensitive.
Quantiles are exact at any size (`quantiles`): `torch.quantile` refuses inputs over 2^24 entries.
"""

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Iterator

import numpy as np
import torch

from safelora_lite.device import single_thread
from safelora_lite.errors import InputError
from safelora_lite.maths.projection import Projector, as_float32

REFERENCE_SAMPLES = 50  # how many copies of the same pair the public code passes as "samples"
REFERENCE_EPS = 1e-6  # the epsilon the public code adds to d and to the IQR
_SORT_LIMIT = 1 << 18  # below this many entries a full sort is fastest
_SAMPLE = 1 << 16  # sample size that brackets each rank for the selection above it


@dataclass(frozen=True)
class LowRank:
    """The d_out x d_in matrix left @ right, kept as its factors: its entries are made a block of rows
    at a time, so exact quantiles of a 4096 x 4096 update need no 67 MB dense copy."""

    left: torch.Tensor  # (d_out, r)
    right: torch.Tensor  # (r, d_in)
    rows_per_block: int = 256

    def numel(self) -> int:
        return self.left.shape[0] * self.right.shape[1]

    def starts(self) -> range:
        """The first row of each block."""
        return range(0, self.left.shape[0], self.rows_per_block)

    def block(self, start: int) -> torch.Tensor:
        """The entries of rows start .. start + rows_per_block, flat: (rows * d_in,)."""
        return (self.left[start: start + self.rows_per_block] @ self.right).reshape(-1)

    def blocks(self) -> Iterator[torch.Tensor]:
        return (self.block(start) for start in self.starts())

    def sample(self, m: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(self.left.shape[0], (m,), generator=generator)
        cols = torch.randint(self.right.shape[1], (m,), generator=generator)
        return (self.left[rows] * self.right[:, cols].T).sum(1)  # (m,), entries (rows, cols)


_BLOCK = 1 << 18  # entries per part of a selection pass (cache-sized)


def _pieces(x: "torch.Tensor | LowRank") -> list:
    """Functions that each make one piece of x's entries, flat: a LowRank's block of rows, or a slice."""
    if isinstance(x, LowRank):
        return [partial(x.block, start) for start in x.starts()]
    return [partial(x.__getitem__, slice(start, start + 4 * _BLOCK)) for start in range(0, x.numel(), 4 * _BLOCK)]


def _entries(x: "torch.Tensor | LowRank") -> torch.Tensor:
    """Every entry, flat: the tensor itself, or a LowRank's blocks joined (the slow, exact path)."""
    return torch.cat(list(x.blocks())) if isinstance(x, LowRank) else x


def _order_statistics(x: "torch.Tensor | LowRank", ranks: list[int]) -> dict[int, float]:
    """The values at 0-based sorted positions `ranks` of a flat tensor (or a LowRank), exactly, at any size.

    Small inputs are sorted. Large ones use Floyd-Rivest selection (`_select`). If its sample
    missed a rank (rare), the answer falls back to a full sort: it is always exact.
    """
    n = x.numel()
    if n > _SORT_LIMIT:
        workers = torch.get_num_threads()
        with single_thread():  # short kernels and numpy, one piece per worker: no kernel waits for a second thread
            out = _select(x, ranks, workers)
        if len(out) == len(set(ranks)):
            return out
    ordered = torch.sort(_entries(x)).values
    return {r: float(ordered[r]) for r in ranks}


def _select(x: "torch.Tensor | LowRank", ranks: list[int], workers: int = 1) -> dict[int, float]:
    """Floyd-Rivest: a seeded random sample brackets the wanted ranks in a few intervals [a, b]; one
    pass over the entries, `workers` pieces at a time, counts those below each a and collects the few
    inside; the ranks are selected among those. A rank whose bracket the sample missed is left out."""
    n, m = x.numel(), _SAMPLE
    generator = torch.Generator().manual_seed(0)
    if isinstance(x, LowRank):
        sample = x.sample(m, generator)
    else:
        sample = x[torch.randint(n, (m,), generator=generator)]
    sample = torch.sort(sample).values  # (m,)
    intervals = []  # [lo sample index, hi sample index], merged when they overlap
    for r in sorted(ranks):
        p = r / (n - 1)
        margin = 4.0 * math.sqrt(m * max(p * (1 - p), 1.0 / m)) + 8
        lo, hi = int(math.floor(p * (m - 1) - margin)), int(math.ceil(p * (m - 1) + margin))
        if intervals and lo <= intervals[-1][1]:
            intervals[-1][1] = max(hi, intervals[-1][1])
        else:
            intervals.append([lo, hi])
    bounds = [(float(sample[lo]) if lo >= 0 else -math.inf, float(sample[hi]) if hi < m else math.inf) for lo, hi in intervals]
    with ThreadPoolExecutor(workers) as pool:  # numpy and torch release the GIL: the pieces run side by side
        scans = list(pool.map(partial(_scan, bounds=bounds), _pieces(x)))
    out = {}
    for j in range(len(bounds)):
        first = sum(counts[j] for counts, _ in scans)  # entries below a
        inside = np.concatenate([parts[j] for _, parts in scans])  # entries in [a, b]
        wanted = [r - first for r in sorted(set(ranks)) if first <= r < first + inside.size]
        if wanted:
            inside = np.partition(inside, wanted)  # the wanted positions in sorted order, the rest not sorted
            out.update({first + w: float(inside[w]) for w in wanted})
    return out


def _scan(piece, bounds: list[tuple[float, float]]) -> tuple[list[int], list[np.ndarray]]:
    """For each interval [a, b]: how many entries of one piece lie below a, and those inside."""
    entries = piece().cpu().numpy()  # numpy: its one-thread compares and counts are ~4x faster here than torch's
    counts, insides = [0] * len(bounds), [[] for _ in bounds]
    for start in range(0, entries.size, _BLOCK):  # cache-sized parts
        values = entries[start: start + _BLOCK]
        for j, (a, b) in enumerate(bounds):
            below = values < a  # entries ranked before the interval
            counts[j] += int(np.count_nonzero(below))
            insides[j].append(values[np.logical_and(values <= b, ~below, out=below)])  # a <= x <= b
    return counts, [np.concatenate(parts) for parts in insides]


def quantiles(x: "torch.Tensor | LowRank", qs: list[float], check: bool = True) -> list[float]:
    """Exact quantiles of all entries of `x` (linear interpolation, as torch.quantile), at any size.

    x: a tensor, or a LowRank (its entries made block by block). check=False skips the NaN / Inf
    pass, for tensors the library computed from checked inputs.
    """
    if isinstance(x, LowRank):
        left, right = (as_float32(t, "low-rank factor") if check else t.detach().float() for t in (x.left, x.right))
        x = LowRank(left, right, x.rows_per_block)
    else:
        x = (as_float32(x, "tensor") if check else x.detach().float()).reshape(-1)
    n = x.numel()
    if n == 0:
        raise InputError("cannot take quantiles of an empty tensor.")
    positions = []
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise InputError(f"quantile {q} is outside [0, 1].")
        positions.append(q * (n - 1))
    ranks = sorted({int(math.floor(p)) for p in positions} | {min(int(math.floor(p)) + 1, n - 1) for p in positions})
    values = _order_statistics(x, ranks)
    out = []
    for p in positions:
        lower = int(math.floor(p))
        upper = min(lower + 1, n - 1)
        out.append(values[lower] + (p - lower) * (values[upper] - values[lower]))
    return out


def quantile_range_terms(projected: "torch.Tensor | LowRank", update: "torch.Tensor | LowRank", check: bool = True) -> tuple[float, float]:
    """(v_M, v_m) = (Q3(X) - Q1(X), Q1(X) - Q1(Y)) for X = C B A, Y = B A (dense or LowRank, any size)."""
    q1_x, q3_x = quantiles(projected, [0.25, 0.75], check=check)
    (q1_y,) = quantiles(update, [0.25], check=check)
    return q3_x - q1_x, q1_x - q1_y


def ediem(d: float, distances: torch.Tensor, v_max: float = 0.0, v_min: float = 0.0) -> float:
    """E-DIEM of distance `d` against the empirical `distances`, with the quantile-range terms.

    ((d - E[d]) / IQR - v_m) / (v_M - v_m) * (v_M - v_m), which is (d - E[d]) / IQR - v_m.
    A zero IQR (every sample equal, e.g. a zero update) is defined, never a division by zero:
    the z-part is 0 when d equals the samples and +-1e12 (a very large distance in IQRs) otherwise.
    """
    distances = as_float32(torch.as_tensor(distances), "distances").reshape(-1).double()
    if distances.numel() == 0:
        raise InputError("E-DIEM needs at least one sample distance.")
    expected = float(distances.mean())  # E[d]
    q1, q3 = quantiles(distances, [0.25, 0.75])
    iqr = q3 - q1  # IQR(d)
    gap = d - expected
    scale = max(abs(expected), abs(d), 1.0)
    if iqr > 1e-12 * scale:
        z = gap / iqr
    else:
        z = 0.0 if abs(gap) <= 1e-12 * scale else math.copysign(1e12, gap)
    return z - v_min  # the (v_M - v_m) rescaling cancels, as in the public code


def update_distance(c: Projector, lora_b: torch.Tensor, lora_a: torch.Tensor, scaling: float = 1.0,
                    projected_b: torch.Tensor | None = None) -> float:
    """d = ||s (C B A - B A)||_F in low-rank form: with P = C B - B and G = A A^T, d^2 = s^2 sum((P^T P) * G).

    projected_b: C B if already computed (it is the expensive part).
    """
    lora_b = as_float32(lora_b, "lora_b")  # (d_out, r), B
    lora_a = as_float32(lora_a, "lora_a")  # (r, d_in), A
    projected_b = c @ lora_b if projected_b is None else projected_b  # (d_out, r), C B
    p = (projected_b - lora_b).double()  # (d_out, r), (C - I) B
    gram_a = lora_a.double() @ lora_a.double().T  # (r, r)
    return abs(scaling) * float(((p.T @ p) * gram_a).sum().clamp_min(0.0)) ** 0.5


def null_distances(c: Projector, lora_b: torch.Tensor, lora_a: torch.Tensor, scaling: float = 1.0,
                   samples: int = 32, seed: int = 0) -> torch.Tensor:
    """Distances of `samples` random updates s B' A of the same norm as s B A: the null for E-DIEM.

    B' (d_out, r) is Gaussian (seeded), A is kept, and each B' A is rescaled to ||B A||_F, so the
    null asks "how far would an update of this size and input structure be from the alignment
    subspace if its output directions were random?". All samples go through C in one product.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InputError(f"samples={samples} is too few for an empirical distribution.", "use samples >= 2 (e.g. 32).")
    lora_b = as_float32(lora_b, "lora_b")  # (d_out, r), B
    lora_a = as_float32(lora_a, "lora_a")  # (r, d_in), A
    d_out, r = lora_b.shape
    gram_a = lora_a.double() @ lora_a.double().T  # (r, r), G = A A^T
    norm_ba = float(((lora_b.double().T @ lora_b.double()) * gram_a).sum().clamp_min(0.0)) ** 0.5  # ||B A||_F
    generator = torch.Generator().manual_seed(int(seed))
    rand_b = torch.randn(d_out, samples * r, generator=generator)  # (d_out, n r): n random B' side by side
    moved = (c @ rand_b - rand_b).double().reshape(d_out, samples, r)  # (d_out, n, r), (C - I) B'
    rand_b = rand_b.double().reshape(d_out, samples, r)
    moved_sq = (torch.einsum("dnr,dns->nrs", moved, moved) * gram_a).sum((1, 2))  # (n,), ||(C - I) B' A||^2
    size_sq = (torch.einsum("dnr,dns->nrs", rand_b, rand_b) * gram_a).sum((1, 2))  # (n,), ||B' A||^2
    ratio = (moved_sq.clamp_min(0.0) / size_sq.clamp_min(1e-300)).sqrt()
    return (abs(scaling) * norm_ba * ratio).float()  # (n,)


def reference_ediem(projected: torch.Tensor, update: torch.Tensor, samples: int = REFERENCE_SAMPLES,
                    terms: tuple[float, float] | None = None) -> float:
    """The public code's E-DIEM: `samples` identical copies of (X, Y) as the empirical distribution.

    In float32 as there: d = ||X - Y||_F + eps; E[d] = the mean of `samples` equal distances;
    IQR = 0 + eps; so (d - E[d]) / IQR is about eps / eps = 1 plus rounding noise, and the score is
    about 1 - v_m. Where the public code returns None (X == Y, or v_M == v_m) and then fails when it
    compares None with the threshold, this returns 0.0, a defined score.
    terms: (v_M, v_m) if the caller already has them (`quantile_range_terms` of the same X, Y).
    """
    x = as_float32(projected, "projected update C B A")  # (d_out, d_in), X
    y = as_float32(update, "update B A")  # (d_out, d_in), Y
    if x.shape != y.shape:
        raise InputError(f"C B A {tuple(x.shape)} and B A {tuple(y.shape)} differ in shape.")
    if torch.equal(x, y):
        return 0.0
    eps = REFERENCE_EPS
    distance = torch.linalg.matrix_norm(x - y)  # float32, as torch.norm(A - B, p='fro')
    d = distance + eps
    distances = distance.repeat(samples)  # (samples,): the same distance `samples` times
    expected = distances.mean()
    q1, q3 = (torch.tensor(v, dtype=torch.float32) for v in quantiles(distances, [0.25, 0.75]))
    iqr = q3 - q1 + eps
    v_max, v_min = (torch.tensor(v, dtype=torch.float32) for v in (terms or quantile_range_terms(x, y)))
    unscaled = (d - expected) / iqr
    if float(v_max - v_min) == 0.0:
        return 0.0
    return float(((unscaled - v_min) / (v_max - v_min)) * (v_max - v_min))
