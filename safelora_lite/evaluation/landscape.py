"""The safety landscape: the aligned model moved along directions in weight space, evaluated point by point.

Peng et al. (2024), "Navigating the Safety Landscape: Measuring Risks in Finetuning Large Language
Models", perturb the aligned weights along a direction d, W(alpha) = W_aligned + alpha d, and measure
safety along it: aligned models sit in a "safety basin" whose walls are steep.

A `Direction` moves some weights, each by a factored update s B A: a LoRA adapter's modules as they
are, or a dense matrix D written as B = D, A = I, s = 1 (D @ I is D exactly). A point,
W_aligned + sum_i c_i d_i, is then itself a LoRA adapter whose update is that sum (`point_adapter`: per
weight, the factors side by side), so the one `Evaluator` (evaluator.py) merges it into the weights,
answers the prompts and puts the weights back: no model is copied. `Landscape` caches every point on
disk, one JSON file each, keyed by the evaluation (prompts, judge, model) and by the point (the
directions' digests and their coefficients).

    landscape = Landscape(world.evaluator(), world.root / "landscape")
    attack = adapter_direction(read_adapter(folder), "attack")
    line = landscape.line(attack, [-1, 0, 0.5, 1, 2])        # [{"alpha", four rates, "n"}, ...]
"""

import contextlib
import inspect
import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from safelora_lite.adapters.lora_io import PEFT_PREFIX, LoraAdapter, LoraModule
from safelora_lite.adapters.weights import alignment_changes, open_weights
from safelora_lite.cache import cache_key
from safelora_lite.device import single_thread
from safelora_lite.errors import InputError
from safelora_lite.evaluation import generation, judges
from safelora_lite.evaluation.evaluator import Evaluator, adapter_digest
from safelora_lite.evaluation.log import weights_digest
from safelora_lite.records import write_json_atomic


def module_name(key: str) -> str:
    """The LoRA module name of a weight key (`model.layers.0.self_attn.q_proj.weight` ->
    `base_model.model.model.layers.0.self_attn.q_proj`): the inverse of `lora_io.module_target`."""
    return PEFT_PREFIX + key.removesuffix(".weight")


@dataclass(frozen=True)
class Direction:
    """A direction in weight space: per weight it moves, a factored update s B A (in `adapter.modules`)."""

    name: str
    adapter: LoraAdapter

    def deltas(self) -> dict[str, torch.Tensor]:
        """{weight key: the dense update (d_out, d_in), fp32}."""
        return {m.target: m.delta() for m in self.adapter.modules.values()}

    def norms(self) -> dict[str, float]:
        """{weight key: ||update||_F}: the size of the direction on each weight."""
        return {key: float(torch.linalg.matrix_norm(d)) for key, d in self.deltas().items()}

    def norm(self) -> float:
        """||d||_F over every weight it moves."""
        return sum(n * n for n in self.norms().values()) ** 0.5

    @cached_property
    def digest(self) -> str:
        """Equal for directions with equal tensors and scalings (the cache key of its points)."""
        return cache_key([list(entry) for entry in adapter_digest(self.adapter)])


def adapter_direction(adapter: LoraAdapter, name: str) -> Direction:
    """A LoRA adapter's update as a direction (alpha = 1 is the adapter itself)."""
    return Direction(name, adapter)


def dense_direction(deltas: dict[str, torch.Tensor], name: str) -> Direction:
    """{weight key: dense update (d_out, d_in)} as a direction: B = D, A = I, s = 1 on each weight."""
    modules = {}
    for key, d in deltas.items():
        d = d.detach().float()
        if d.dim() != 2:
            raise InputError(f"the direction on {key} has shape {tuple(d.shape)}, not a matrix.", "give one (d_out, d_in) matrix per weight.")
        modules[module_name(key)] = LoraModule(module_name(key), torch.eye(d.shape[1]), d.clone(), 1.0)  # A = I (d_in, d_in), B = D
    if not modules:
        raise InputError(f"the direction {name!r} moves no weight.", "give at least one weight.")
    return Direction(name, LoraAdapter(config={}, modules=modules))


def alignment_direction(base, aligned, keys, name: str = "alignment change V") -> Direction:
    """V = W_aligned - W_base on the weights `keys` (checkpoint folders, models or state dicts): alpha = -1 puts
    those weights back to the base model's."""
    changes = alignment_changes(open_weights(base), open_weights(aligned), list(keys))
    return dense_direction({key: v.clone() for key, v, _ in changes}, name)  # V's buffer is reused: clone it


def random_direction(like: Direction, seed: int, name: str | None = None) -> Direction:
    """A Gaussian direction with the per-weight Frobenius norms of `like` (Peng et al.'s per-module normalisation)."""
    generator = torch.Generator().manual_seed(seed)
    deltas = {}
    for key, d in like.deltas().items():
        r = torch.randn(d.shape, generator=generator)  # (d_out, d_in)
        deltas[key] = r * (torch.linalg.matrix_norm(d) / torch.linalg.matrix_norm(r))
    return dense_direction(deltas, name or f"random (seed {seed}, norms of {like.name})")


def point_adapter(terms: list[tuple[Direction, float]]) -> LoraAdapter:
    """The LoRA adapter whose update is sum_i c_i d_i on every weight the terms move.

    One term keeps its module as it is with B <- c B (c = 1 gives the very same tensors); several terms
    on one weight put their factors side by side: B = [c_1 s_1 B_1, c_2 s_2 B_2, ...] (d_out, sum r),
    A = [A_1; A_2; ...] (sum r, d_in), s = 1, so B A = sum_i c_i s_i B_i A_i.
    """
    parts: dict[str, list[tuple[LoraModule, float]]] = {}
    for direction, c in terms:
        for m in direction.adapter.modules.values():
            parts.setdefault(m.target, []).append((m, float(c)))
    modules = {}
    for target, group in parts.items():
        name = module_name(target)
        if len(group) == 1:
            m, c = group[0]
            modules[name] = LoraModule(name, m.lora_a, c * m.lora_b, m.scaling)
        else:
            lora_b = torch.cat([c * m.scaling * m.lora_b.float() for m, c in group], dim=1)  # (d_out, sum r)
            lora_a = torch.cat([m.lora_a.float() for m, _ in group], dim=0)  # (sum r, d_in)
            modules[name] = LoraModule(name, lora_a, lora_b, 1.0)
    return LoraAdapter(config={}, modules=modules)


def coordinates(update: Direction, axes: list[Direction]) -> tuple[list[float], float]:
    """Where an update lands in the span of `axes`: the least-squares coefficients c (update ~ sum_i c_i axis_i,
    inner products summed over weights), and the share of ||update||_F that lies off that span."""
    deltas = [axis.deltas() for axis in axes]
    target = update.deltas()

    def inner(x: dict, y: dict) -> float:
        return sum(float((x[k].double() * y[k].double()).sum()) for k in x.keys() & y.keys())

    gram = torch.tensor([[inner(a, b) for b in deltas] for a in deltas], dtype=torch.float64)  # (axes, axes)
    rhs = torch.tensor([inner(a, target) for a in deltas], dtype=torch.float64)  # (axes,)
    coefs = torch.linalg.solve(gram, rhs)
    norm2 = inner(target, target)
    off = max(norm2 - float(rhs @ coefs), 0.0)  # ||update - projection||^2 = ||update||^2 - <rhs, c>
    return [float(c) for c in coefs], (off / norm2) ** 0.5 if norm2 > 0 else 0.0


def evaluation_key(evaluator: Evaluator) -> str:
    """A key for everything a point's rates depend on besides the point: the model's weights, the prompts,
    the answer length, the judge and the scoring code (a change to any of them starts a new cache)."""
    complies = evaluator.complies
    judge = inspect.getsource(complies) if inspect.isfunction(complies) or inspect.ismethod(complies) else repr(complies)
    return cache_key({"weights": weights_digest(evaluator.model), "max_new_tokens": evaluator.max_new_tokens,
                      "records": [[r["kind"], r["prompt"], r.get("answer")] for r in evaluator.records],
                      "code": [inspect.getsource(generation), inspect.getsource(judges), judge]})


class Landscape:
    """Points W_aligned + sum_i c_i d_i, each evaluated once by `evaluate` (an Evaluator on the aligned model)
    and cached as a JSON file under `cache_dir` (None: in memory only, by the Evaluator's own cache).

    `one_thread`: answer in one math thread (`device.single_thread`). A small model's generation is many short
    kernels, and a second thread waits for the first at each: on 2 cores shared with other processes, one
    evaluation of the toy world's test set took 1.8 s of wall time (1.2 s of CPU) in one thread, 9-52 s in two.
    """

    def __init__(self, evaluate: Evaluator, cache_dir=None, one_thread: bool = True):
        self.evaluate = evaluate
        self.folder = Path(cache_dir) / evaluation_key(evaluate) if cache_dir is not None else None
        self.threads = single_thread if one_thread else contextlib.nullcontext
        self.cached = 0  # points read from the disk cache

    def point(self, terms: list[tuple[Direction, float]]) -> dict:
        """The four rates (and "n") of W_aligned + sum_i c_i d_i. Terms with c = 0 are dropped, so a grid's
        axes are its lines' points, and the origin is the aligned model itself."""
        if not terms:
            raise InputError("a landscape point needs at least one (direction, coefficient).", "pass [(direction, alpha)].")
        terms = [(d, float(c)) for d, c in terms if c != 0]
        key = cache_key([[d.digest, c] for d, c in terms])
        path = self.folder / f"{key}.json" if self.folder is not None else None
        if path is not None and path.is_file():
            self.cached += 1
            return json.loads(path.read_text())["rates"]
        with self.threads():
            rates = self.evaluate(point_adapter(terms) if terms else None)
        if path is not None:
            write_json_atomic({"terms": [[d.name, c] for d, c in terms], "rates": rates}, path)
        return rates

    def line(self, direction: Direction, alphas, progress: bool = True) -> list[dict]:
        """[{"alpha": a, rates...}] for W_aligned + a d, a over `alphas` (a progress bar over the points)."""
        from tqdm.auto import tqdm

        return [{"alpha": float(a), **self.point([(direction, a)])}
                for a in tqdm(list(alphas), desc=f"along {direction.name}", disable=not progress, leave=False)]

    def grid(self, first: Direction, second: Direction, alphas, betas, progress: bool = True) -> list[dict]:
        """[{"alpha": a, "beta": b, rates...}] for W_aligned + a d_1 + b d_2 over the grid `alphas` x `betas`."""
        from tqdm.auto import tqdm

        pairs = list(itertools.product(list(alphas), list(betas)))
        return [{"alpha": float(a), "beta": float(b), **self.point([(first, a), (second, b)])}
                for a, b in tqdm(pairs, desc=f"{first.name} x {second.name}", disable=not progress, leave=False)]
