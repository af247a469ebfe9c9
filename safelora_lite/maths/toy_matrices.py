"""Small random "models" for notebook 01: per-layer alignment matrices and LoRA updates that drift from them."""

import time

import torch

from safelora_lite.maths.projection import dense_similarity, projection_similarity, safe_lora_projector


def toy_layers(n_layers: int = 8, d: int = 32, r: int = 2, alignment_rank: int = 2, seed: int = 0) -> dict:
    """name -> {"v": (d, d), "lora_b": (d, r), "lora_a": (r, d), "drift": float}.

    Layer i's B is a mix of a direction inside col(V) and a random one; `drift` (0 ... 1) is the
    weight of the random part, growing with depth, so later layers should score lower.
    """
    g = torch.Generator().manual_seed(seed)
    layers = {}
    for i in range(n_layers):
        v = torch.randn(d, alignment_rank, generator=g) @ torch.randn(alignment_rank, d, generator=g) / d  # (d, d)
        inside = v @ torch.randn(d, r, generator=g)  # (d, r), columns in col(V)
        outside = torch.randn(d, r, generator=g)  # (d, r)
        drift = i / max(n_layers - 1, 1)
        lora_b = (1 - drift) * inside / inside.norm() + drift * outside / outside.norm()
        layers[f"layer{i}"] = {"v": v, "lora_b": lora_b, "lora_a": torch.randn(r, d, generator=g), "drift": drift}
    return layers


def time_dense_vs_low_rank(d: int, r: int = 8, repeats: int = 3, seed: int = 0) -> dict:
    """Seconds (best of `repeats`) for the dense and the low-rank score at size d, and both scores."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, d, generator=g)
    b, a = torch.randn(d, r, generator=g), torch.randn(r, d, generator=g)

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            score = fn()
            times.append(time.perf_counter() - start)
        return min(times), score

    dense_s, dense_score = best(lambda: dense_similarity(v, b, a))
    low_s, low_score = best(lambda: projection_similarity(safe_lora_projector(v), b, a))
    return {"d": d, "dense_seconds": dense_s, "low_rank_seconds": low_s, "dense_score": dense_score, "low_rank_score": low_score}
