"""The Safe LoRA projection maths: alignment matrix, projectors, low-rank cosine, module selection.

References:
- Hsu et al., "Safe LoRA: the Silver Lining of Reducing Safety Risks when Fine-tuning
  Large Language Models", NeurIPS 2024. Projector C = V V^T / ||V||_F (paper and code).

Notation (docs/architecture.md section 2): a LoRA module adds dW = s * B @ A with B (d_out, r), A (r, d_in);
V = W_aligned - W_base (d_out, d_in).

Two projectors are offered:
- "paper": C = V V^T / ||V||_F, exactly as the paper and its code. It is NOT idempotent:
  its eigenvalues are sigma_i^2 / ||V||_F, so it also rescales the update.
- "exact": C = U_k U_k^T, the orthogonal projector onto the top-k left singular vectors of V.

Neither is ever formed as a d_out x d_out matrix unless you ask for `.dense()`.
"""

from dataclasses import dataclass

import torch

from safelora_lite.device import one_thread_if_small
from safelora_lite.errors import InputError


def as_float32(t: torch.Tensor, what: str) -> torch.Tensor:
    """fp16 / bf16 / fp32 in, fp32 out; NaN or Inf is an InputError naming `what`."""
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(t).__name__}.")
    if not t.is_floating_point():
        raise InputError(f"{what} must be a floating-point tensor, got {t.dtype}.")
    t = t.detach().to(torch.float32)
    # A NaN or Inf anywhere makes the sum non-finite; the sum is 20x cheaper than isfinite().all().
    if not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
        raise InputError(f"{what} contains NaN or Inf values.", "check the checkpoint or adapter it came from.")
    return t


def _check_matrix(t: torch.Tensor, what: str) -> torch.Tensor:
    t = as_float32(t, what)
    if t.dim() != 2:
        raise InputError(f"{what} must be a 2-D matrix, got shape {tuple(t.shape)}.")
    return t


def alignment_matrix(w_base: torch.Tensor, w_aligned: torch.Tensor) -> torch.Tensor:
    """V = W_aligned - W_base in fp32, shape (d_out, d_in): the direction alignment moved the weights."""
    w_base = _check_matrix(w_base, "w_base")
    w_aligned = _check_matrix(w_aligned, "w_aligned")
    if w_base.shape != w_aligned.shape:
        raise InputError(
            f"base weight {tuple(w_base.shape)} and aligned weight {tuple(w_aligned.shape)} differ in shape.",
            "pair the base and aligned checkpoints of the same architecture.",
        )
    return w_aligned - w_base


@dataclass(frozen=True)
class PaperProjector:
    """C = V V^T / ||V||_F (Safe LoRA paper and code); `c @ b` costs O(d_out * d_in * r)."""

    v: torch.Tensor  # (d_out, d_in), V
    v_norm: float  # ||V||_F
    kind: str = "paper"

    @property
    def d_out(self) -> int:
        return self.v.shape[0]

    def __matmul__(self, b: torch.Tensor) -> torch.Tensor:
        b = _check_rows(b, self.d_out)
        vt_b = (b.T @ self.v).T  # (d_in, r), V^T B; row-major access to V is the fast way round
        return self.v @ vt_b / self.v_norm  # (d_out, r)

    def dense(self) -> torch.Tensor:
        """The d_out x d_out matrix C, for teaching and tests only."""
        return self.v @ self.v.T / self.v_norm

    def eigenvalues(self) -> torch.Tensor:
        """sigma_i^2 / ||V||_F, largest first: not all 0 or 1, so C is not a projector in the strict sense."""
        with one_thread_if_small(self.v):
            return torch.linalg.svdvals(self.v) ** 2 / self.v_norm


@dataclass(frozen=True)
class ExactProjector:
    """C = U_k U_k^T, the orthogonal projector onto the top-k left singular directions of V."""

    u: torch.Tensor  # (d_out, k), orthonormal columns
    kind: str = "exact"

    @property
    def d_out(self) -> int:
        return self.u.shape[0]

    @property
    def rank(self) -> int:
        return self.u.shape[1]

    def __matmul__(self, b: torch.Tensor) -> torch.Tensor:
        b = _check_rows(b, self.d_out)
        return self.u @ (b.T @ self.u).T  # (d_out, r)

    def dense(self) -> torch.Tensor:
        return self.u @ self.u.T

    def eigenvalues(self) -> torch.Tensor:
        return torch.cat([torch.ones(self.rank), torch.zeros(self.d_out - self.rank)])


Projector = PaperProjector | ExactProjector


def _check_rows(b: torch.Tensor, d_out: int) -> torch.Tensor:
    b = as_float32(b, "lora_b")
    if b.dim() != 2 or b.shape[0] != d_out:
        raise InputError(f"lora_b has shape {tuple(b.shape)} but the projector acts on {d_out} rows.")
    return b


def largest_singular_value(v: torch.Tensor) -> float:
    """sigma_1(V), a small V's in one math thread (`one_thread_if_small`; measured on 576 x 576 alignment
    changes at load 3.4: 0.20 s with two threads, 0.03 s with one)."""
    with one_thread_if_small(v):
        return float(torch.linalg.matrix_norm(v, ord=2))


def top_left_singular_vectors(v: torch.Tensor, rank: int) -> torch.Tensor:
    """U_k (d_out, k) of V. Full SVD for small matrices, a seeded randomized SVD for a small k of a big V."""
    d_out, d_in = v.shape
    if rank * 8 < min(d_out, d_in) and min(d_out, d_in) > 512:
        with torch.random.fork_rng(devices=[]), one_thread_if_small(v):
            torch.manual_seed(0)
            u, _, _ = torch.svd_lowrank(v, q=min(rank + 16, min(d_out, d_in)), niter=6)
        return u[:, :rank].contiguous()
    with one_thread_if_small(v):
        u, _, _ = torch.linalg.svd(v, full_matrices=False)
    return u[:, :rank].contiguous()


def safe_lora_projector(v: torch.Tensor, kind: str = "paper", rank: int | None = None, v_norm: float | None = None) -> Projector:
    """The projector onto the alignment subspace of V.

    kind="paper": C = V V^T / ||V||_F (rank must be None).
    kind="exact": C = U_k U_k^T with k = `rank` (default: the numerical rank of V).
    v_norm: ||V||_F from a caller that streamed V already checked (fp32, finite, 2-D), as
    `weights.alignment_changes` does: two passes over V saved.
    """
    if v_norm is None:
        v = _check_matrix(v, "alignment matrix V")
        v_norm = float(torch.linalg.matrix_norm(v))
    if v_norm == 0.0:
        raise InputError(
            "the alignment matrix V is all zeros (base and aligned weights are identical).",
            "check that the base and aligned checkpoints are different models.",
        )
    if kind == "paper":
        if rank is not None:
            raise InputError("rank applies to kind='exact' only.", "drop rank, or use kind='exact'.")
        return PaperProjector(v=v, v_norm=v_norm)
    if kind == "exact":
        max_rank = min(v.shape)
        if rank is None:
            with one_thread_if_small(v):
                sv = torch.linalg.svdvals(v)
            rank = int((sv > sv[0] * max(v.shape) * torch.finfo(torch.float32).eps).sum())
        if not isinstance(rank, int) or not 1 <= rank <= max_rank:
            raise InputError(f"rank={rank} is out of range for V of shape {tuple(v.shape)}.", f"use 1 <= rank <= {max_rank}.")
        return ExactProjector(u=top_left_singular_vectors(v, rank))
    raise InputError(f"unknown projector kind {kind!r}.", "use 'paper' or 'exact'.")


def projection_similarity(c: Projector, lora_b: torch.Tensor, lora_a: torch.Tensor) -> float:
    """Safe LoRA score: cosine of vec(C B A) and vec(B A), in low-rank form (never a d x d matrix).

    With P = C B (d_out, r) and G = A A^T (r, r):
      <P A, B A>_F = sum((P^T B) * G),  ||P A||^2 = sum((P^T P) * G),  ||B A||^2 = sum((B^T B) * G).
    The LoRA scaling s cancels in a cosine. A zero update scores 1.0: projection leaves it unchanged.
    """
    lora_b = as_float32(lora_b, "lora_b")  # (d_out, r), B
    lora_a = as_float32(lora_a, "lora_a")  # (r, d_in), A
    if lora_b.dim() != 2 or lora_a.dim() != 2 or lora_b.shape[1] != lora_a.shape[0]:
        raise InputError(f"lora_b {tuple(lora_b.shape)} and lora_a {tuple(lora_a.shape)} do not form B @ A.")
    return similarity_of_projected(c @ lora_b, lora_b, lora_a)


def similarity_of_projected(projected_b: torch.Tensor, lora_b: torch.Tensor, lora_a: torch.Tensor) -> float:
    """The Safe LoRA cosine from C B already computed (callers that also need C B compute it once)."""
    p = projected_b.double()  # (d_out, r), C B
    b = lora_b.double()
    gram_a = lora_a.double() @ lora_a.double().T  # (r, r)
    inner = float(((p.T @ b) * gram_a).sum())
    norm_pa = float(((p.T @ p) * gram_a).sum()) ** 0.5
    norm_ba = float(((b.T @ b) * gram_a).sum()) ** 0.5
    if norm_ba == 0.0:
        return 1.0
    if norm_pa == 0.0:
        return 0.0
    return inner / (norm_pa * norm_ba)


K_RULE = "round(10/64 x the adapter's LoRA modules), at least 1"  # the reference's 10 of Llama-2-7B's 64 q/v modules


def default_k(num_modules: int) -> int:
    """The default K of Safe LoRA and SPLoRA: the reference's share, 10 of Llama-2-7B's 64 q/v modules."""
    return max(1, round(num_modules * 10 / 64))


def select_modules(
    scores: dict[str, float],
    select: str = "number",
    k: int | None = None,
    threshold: float | None = None,
) -> list[str]:
    """Which modules to act on, in the input order.

    select="number": the K modules with the LOWEST score (K counts LoRA modules: the q and v of one
    block are two, as in the Safe LoRA reference code). Ties are broken by input order.
    select="threshold": every module whose score is <= threshold, threshold in [-1, 1].
    """
    names = list(scores)
    if select == "number":
        if k is None or isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(names):
            raise InputError(f"K={k} is out of range: the adapter has {len(names)} LoRA modules.", f"use 0 <= K <= {len(names)}.")
        chosen = set(sorted(names, key=lambda n: (scores[n], names.index(n)))[:k])
    elif select == "threshold":
        if threshold is None or not -1.0 <= float(threshold) <= 1.0:
            raise InputError(f"threshold={threshold} is outside [-1, 1].", "a cosine score lies in [-1, 1]; pick a threshold there.")
        chosen = {n for n in names if scores[n] <= threshold}
    else:
        raise InputError(f"unknown selection {select!r}.", "use 'number' or 'threshold'.")
    return [n for n in names if n in chosen]


def dense_similarity(v: torch.Tensor, lora_b: torch.Tensor, lora_a: torch.Tensor) -> float:
    """The brute-force Safe LoRA score, for teaching and benchmarks: forms C, C B A and B A (three d x d)."""
    c = v @ v.T / torch.linalg.matrix_norm(v)  # (d_out, d_out), C
    ba = lora_b @ lora_a  # (d_out, d_in)
    cba = c @ ba  # (d_out, d_in)
    return float(torch.nn.functional.cosine_similarity(cba.flatten(), ba.flatten(), dim=0))
