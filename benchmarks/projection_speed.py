"""Low-rank Safe LoRA score vs the dense computation at Llama-2-7B's attention shape.

Dense: form C = V V^T / ||V||_F (d x d), then C B A and B A (d x d each), then their cosine.
Low-rank: `projection_similarity(c, B, A)`, which never forms a d x d matrix.
Each runs in its own process so that its peak resident memory (above the shared inputs) is its own.

    python benchmarks/projection_speed.py [--d 4096] [--r 8] [--repeats 3]
"""

import argparse
import json
import resource
import subprocess
import sys
import time


def make_inputs(d: int, r: int):
    import torch

    g = torch.Generator().manual_seed(0)
    v = torch.randn(d, d, generator=g) * 1e-3  # V = W_aligned - W_base
    b = torch.randn(d, r, generator=g)  # B
    a = torch.randn(r, d, generator=g)  # A
    return v, b, a


def dense_score(v, b, a) -> float:
    from safelora_lite.maths.projection import dense_similarity

    return dense_similarity(v, b, a)


def low_rank_score(v, b, a) -> float:
    """The projector (one pass over V for its norm) is built per module anyway; included here."""
    from safelora_lite import projection_similarity, safe_lora_projector

    return projection_similarity(safe_lora_projector(v), b, a)


def call_only_score(v, b, a):
    """A closure timing `projection_similarity` alone, on a projector built beforehand (per module, once)."""
    from safelora_lite import projection_similarity, safe_lora_projector

    c = safe_lora_projector(v)
    return lambda: projection_similarity(c, b, a)


def float64_score(v, b, a) -> float:
    """The same cosine in float64 (low-rank form), as the ground truth both are compared with."""
    import torch

    v, b, a = v.double(), b.double(), a.double()
    p = v @ (v.T @ b) / torch.linalg.matrix_norm(v)  # (d, r), C B
    g = a @ a.T  # (r, r)
    return float(((p.T @ b) * g).sum() / (((p.T @ p) * g).sum().sqrt() * ((b.T @ b) * g).sum().sqrt()))


def child(method: str, d: int, r: int, repeats: int) -> None:
    """Run one method; print seconds (best of repeats), score and peak RSS above the inputs."""
    import torch

    torch.manual_seed(0)
    v, b, a = make_inputs(d, r)
    fn = {"dense": lambda: dense_score(v, b, a), "low_rank": lambda: low_rank_score(v, b, a),
          "call_only": call_only_score(v, b, a)}[method]
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        score = fn()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": min(times), "score": score, "extra_mib": (peak - rss_inputs) / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=4096)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["dense", "low_rank", "call_only"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.d, args.r, args.repeats)
    results = {}
    for method in ("dense", "low_rank", "call_only"):
        out = subprocess.run([sys.executable, __file__, "--child", method, "--d", str(args.d), "--r", str(args.r),
                              "--repeats", str(args.repeats)], check=True, capture_output=True, text=True).stdout
        results[method] = json.loads(out.strip().splitlines()[-1])
    dense, fast = results["dense"], results["low_rank"]
    truth = float64_score(*make_inputs(args.d, args.r))
    rel = abs(dense["score"] - fast["score"]) / abs(dense["score"])
    print(f"d_out = d_in = {args.d}, r = {args.r}, paper projector, best of {args.repeats}")
    print(f"  dense    : {dense['seconds']:.3f} s, score {dense['score']:.6f}, peak memory above inputs {dense['extra_mib']:.0f} MiB")
    print(f"  low-rank : {fast['seconds']:.4f} s, score {fast['score']:.6f}, peak memory above inputs {fast['extra_mib']:.0f} MiB")
    print(f"  float64  : score {truth:.9f} (ground truth)")
    call = results["call_only"]
    print(f"  speed-up : {dense['seconds'] / fast['seconds']:.0f}x with the projector's construction (||V||_F) included, "
          f"{dense['seconds'] / call['seconds']:.0f}x for the projection_similarity call alone ({call['seconds']:.4f} s)")
    print(f"  agreement: low-rank vs float64 {abs(fast['score'] - truth) / abs(truth):.1e} relative; "
          f"dense fp32 vs float64 {abs(dense['score'] - truth) / abs(truth):.1e}; low-rank vs dense fp32 {rel:.1e}")
    print(f"  memory   : low-rank peak is {fast['extra_mib'] / max(dense['extra_mib'], 1e-9):.3f} of the dense peak")


if __name__ == "__main__":
    main()
