"""LoX: extrapolate the alignment along its top singular directions BEFORE fine-tuning.

References:
- Perin et al., "LoX: Low-Rank Extrapolation Robustifies LLM Safety Against Fine-tuning", 2025.

Per weight matrix (docs/architecture.md section 2):

    dW_align = W_aligned - W_base                       (d_out, d_in), the alignment
    rank_k(dW_align) = U_k S_k V_k^T                    truncated SVD; k = 0 means all of dW_align
    W_lox = W_aligned + alpha * rank_k(dW_align)

The idea: fine-tuning erodes safety most easily where the alignment lives in few, weak
directions; pushing the model further along the alignment's top directions puts it deeper in a
safe region, so an attack has further to travel. alpha = 0 gives back the aligned model.

`extrapolate_checkpoint` streams one matrix at a time through `weights.Checkpoint` and writes a
NEW checkpoint folder with the aligned model's shard layout (one tensor in memory at a time),
config and tokenizer files copied, and `lox_report.json`. Only the matrices named in `modules`
(by default every attention and MLP projection) are extrapolated; embeddings, norms and the
output head are the aligned model's.

Python:  `extrapolate_checkpoint(base_dir, aligned_dir, out_dir, alpha=0.5, k=4)`;
         `extrapolated_world(world, alpha, k)` for the toy world (cached, attackable).
CLI:     `safelora-lite lox --base DIR|ID --aligned DIR|ID --out DIR --alpha A --k K`
"""

import json
import math
import shutil
import time
from pathlib import Path

import torch

from safelora_lite.adapters.hub import resolve_pair
from safelora_lite.outputs import new_output_dir
from safelora_lite.errors import InputError
from safelora_lite.options import add_pair_arguments
from safelora_lite.adapters.shard_writer import ShardWriter, shard_layout
from safelora_lite.adapters.weights import (INDEX_FILE, SINGLE_FILE, Checkpoint, alignment_changes, block_entries,
                                            check_same_architecture, row_blocks)
from safelora_lite.device import one_thread_if_small, single_thread

REPORT_NAME = "lox_report.json"
DEFAULT_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
WEIGHT_FILES = (SINGLE_FILE, INDEX_FILE)


def rank_k(delta: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    """The best rank-k approximation U_k S_k V_k^T of `delta` (k = 0: delta itself), and the
    fraction of ||delta||_F^2 it keeps."""
    delta = delta.float()  # (d_out, d_in)
    if k == 0 or k >= min(delta.shape):
        return delta, 1.0
    with one_thread_if_small(delta):
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)  # (d_out, m), (m,), (m, d_in)
    total = float((s**2).sum())
    kept = float((s[:k] ** 2).sum()) / total if total > 0 else 1.0
    return (u[:, :k] * s[:k]) @ vh[:k], kept  # (d_out, d_in)


def extrapolate(w_base: torch.Tensor, w_aligned: torch.Tensor, alpha: float, k: int) -> tuple[torch.Tensor, float]:
    """W_aligned + alpha * rank_k(W_aligned - W_base) in fp32, and the energy fraction kept."""
    if w_base.shape != w_aligned.shape:
        raise InputError(f"base weight {tuple(w_base.shape)} and aligned weight {tuple(w_aligned.shape)} differ.",
                         "pair an unaligned model with its own aligned sibling.")
    low_rank, kept = rank_k(w_aligned.float() - w_base.float(), k)  # (d_out, d_in)
    return w_aligned.float() + alpha * low_rank, kept


def _add_scaled(w_aligned: torch.Tensor, alpha: float, low_rank: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = W_aligned + alpha * low_rank, rounded to out's dtype, a cache-sized block of rows at a time
    in fp32 (as `extrapolate` computes it); low_rank (d_out, d_in) is overwritten."""
    scratch = torch.empty(block_entries(w_aligned.shape))
    with single_thread():  # memory-bound: one thread is as fast, and never waits for another
        for rows in row_blocks(w_aligned.shape):
            block = low_rank[rows].mul_(alpha)  # (rows, d_in), alpha * rank_k(V)
            out[rows].copy_(block.add_(scratch[: block.numel()].view(block.shape).copy_(w_aligned[rows])))
    return out


def is_target(key: str, modules) -> bool:
    """A 2-D projection weight such as `model.layers.0.self_attn.q_proj.weight` whose module is in `modules`."""
    parts = key.split(".")
    return len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in modules


def _check_args(alpha: float, k: int) -> None:
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise InputError(f"alpha {alpha!r} is not a finite number.", "use an extrapolation factor such as 0.5.")
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise InputError(f"k {k!r} is not a non-negative integer.", "use k = 0 (the full difference) or a rank such as 4.")


def _shards(aligned: Checkpoint) -> dict[str, list[str]]:
    """The aligned checkpoint's layout: {shard file name: [keys]}, so the output mirrors it."""
    index = aligned.path / INDEX_FILE
    if index.is_file():
        layout: dict[str, list[str]] = {}
        for key, shard in json.loads(index.read_text())["weight_map"].items():
            layout.setdefault(shard, []).append(key)
        return layout
    return {SINGLE_FILE: aligned.keys()}


def extrapolate_checkpoint(base_dir, aligned_dir, out_dir, alpha: float, k: int, modules=DEFAULT_MODULES,
                           progress: bool = False, revision: str | None = None) -> dict:
    """Write the LoX model W_aligned + alpha * rank_k(W_aligned - W_base) to the NEW folder `out_dir`.

    base_dir / aligned_dir are folders or hub ids (at `revision`); `out_dir` is checked before any weight is read.

    Streams one matrix at a time, written as it is made (`ShardWriter`); returns the report (also saved
    as `out_dir/lox_report.json`): per matrix its ||dW_align||_F, the energy fraction rank k keeps
    and ||W_lox - W_aligned||_F.
    """
    from tqdm.auto import tqdm

    _check_args(alpha, k)
    modules = tuple(modules)
    base, aligned = (Checkpoint(folder) for folder in resolve_pair(base_dir, aligned_dir, revision, out=out_dir))
    check_same_architecture(base, aligned)
    targets = [key for key in aligned.keys() if is_target(key, modules)]
    if not targets:
        raise InputError(f"{aligned.path} has no weight of modules {list(modules)}.",
                         f"name modules that exist, e.g. {', '.join(DEFAULT_MODULES[:3])}.")
    for key in targets:  # check everything before writing anything
        if key not in base:
            raise InputError(f"base checkpoint {base.path} has no weight {key}.", "pair checkpoints of the same architecture.")
        if base.shape(key) != aligned.shape(key) or len(aligned.shape(key)) != 2:
            raise InputError(f"{key}: base {base.shape(key)} vs aligned {aligned.shape(key)}.", "pair checkpoints of the same size.")
    start = time.perf_counter()
    rows = []
    target_set = set(targets)
    layout = _shards(aligned)
    changes = alignment_changes(base, aligned, [key for keys in layout.values() for key in keys if key in target_set])
    stored = torch.empty(0)  # W_lox in the checkpoint's dtype, reused per matrix
    with new_output_dir(out_dir) as tmp:
        bar = tqdm(total=len(targets), desc="LoX", disable=not progress, leave=False)
        for shard, keys in layout.items():
            specs = shard_layout(aligned.path / shard)  # the output mirrors the aligned shard's dtypes and shapes
            with ShardWriter(tmp / shard, {key: specs[key] for key in keys}, metadata={"format": "pt"}) as out:
                for key in keys:
                    w_aligned = aligned.get(key)
                    if key not in target_set:
                        out.write(key, w_aligned)
                        continue
                    _, v, delta_norm = next(changes)  # (d_out, d_in), V = W_aligned - W_base in fp32
                    low_rank, kept = rank_k(v, k)  # (d_out, d_in); k = 0: V itself, in its reused buffer
                    if stored.numel() < w_aligned.numel() or stored.dtype != w_aligned.dtype:
                        stored = torch.empty(w_aligned.numel(), dtype=w_aligned.dtype)
                    w_lox = _add_scaled(w_aligned, float(alpha), low_rank, stored[: w_aligned.numel()].view(w_aligned.shape))
                    rows.append({"name": key, "shape": list(w_aligned.shape), "delta_norm": delta_norm, "energy_kept": kept,
                                 "change_norm": abs(float(alpha)) * delta_norm * math.sqrt(kept)})  # ||alpha rank_k(V)||_F
                    out.write(key, w_lox)
                    bar.update(1)
        bar.close()
        for item in aligned.path.iterdir():  # config, generation config, tokenizer files, index
            if item.is_file() and not item.name.endswith(".safetensors") and item.name != REPORT_NAME:
                shutil.copy2(item, tmp / item.name)
        report = {"method": "lox", "alpha": float(alpha), "k": k, "modules": list(modules),
                  "base": str(base_dir), "aligned": str(aligned_dir), "revision": revision, "num_matrices": len(rows),
                  "seconds": round(time.perf_counter() - start, 3), "matrices": rows}
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


def extrapolated_world(world, alpha: float, k: int, modules=DEFAULT_MODULES, progress: bool = False):
    """The world with the LoX model as its aligned model: its `train_attack` and `evaluate` then attack and
    evaluate the LoX model exactly as they do the aligned one. Cached under the world's folder."""
    _check_args(alpha, k)
    tag = f"alpha{float(alpha):g}-k{k}" + ("" if tuple(modules) == DEFAULT_MODULES else "-" + "+".join(modules))
    root = Path(world.root) / "lox" / tag
    if not (root / "aligned" / REPORT_NAME).is_file():
        root.mkdir(parents=True, exist_ok=True)
        try:  # a cache entry: another process that finished it first wins (new_output_dir refuses the second)
            extrapolate_checkpoint(world.base_dir, world.aligned_dir, root / "aligned", alpha, k, modules, progress)
        except InputError:
            if not (root / "aligned" / REPORT_NAME).is_file():  # not someone else's finished copy
                raise
    return world.with_aligned(root / "aligned", root)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "lox", help="LoX: extrapolate the alignment (W_aligned + alpha * rank_k(W_aligned - W_base)) before fine-tuning.",
        description="Writes a NEW checkpoint directory OUT (weights, config, tokenizer, lox_report.json); inputs are never touched.",
    )
    add_pair_arguments(parser)
    parser.add_argument("--alpha", type=float, default=0.5, help="extrapolation factor alpha (0 = the aligned model). Default 0.5")
    parser.add_argument("--k", type=int, default=0, help="rank of the extrapolated alignment; 0 = the full difference. Default 0")
    parser.add_argument("--modules", nargs="+", default=list(DEFAULT_MODULES), metavar="NAME",
                        help=f"projection modules to extrapolate. Default: {' '.join(DEFAULT_MODULES)}")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    report = extrapolate_checkpoint(args.base, args.aligned, args.out, args.alpha, args.k, args.modules, revision=args.revision)
    print(f"extrapolated {report['num_matrices']} matrices (alpha={args.alpha:g}, k={args.k}) in {report['seconds']:.1f} s "
          f"-> {Path(args.out) / REPORT_NAME}")
    return 0


def attack_lox(world, attack, alpha: float, k: int, modules=DEFAULT_MODULES, progress: bool = False):
    """LoX then the attack: (the LoX world, the attacked adapter folder). Evaluate with
    `lox_world.evaluate(folder)`: the adapter sits on the LoX model, not the aligned one."""
    lox_world = extrapolated_world(world, alpha, k, modules)
    return lox_world, lox_world.train_attack(attack, progress=progress)


def evaluate_lox(world, attack, alpha: float, k: int, max_per_split: int | None = None, modules=DEFAULT_MODULES,
                 progress: bool = False) -> dict:
    """The four rates after LoX(alpha, k) and then `attack`."""
    lox_world, folder = attack_lox(world, attack, alpha, k, modules, progress)
    return lox_world.evaluate(folder, max_per_split=max_per_split)
