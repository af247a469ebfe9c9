"""The toy world's headline figures over seeds: base, aligned and the three attacks (mean and spread).

    python benchmarks/toy_world_seeds.py [--seeds 0 1 2] [--jobs 1] [--small] [--out FILE.json]

Each seed builds its own world (WorldConfig(seed=s): initialisation and data order; the shipped
data are the same) and runs the three default attacks with that seed, all on full held-out splits.
Per-seed results are cached (models and adapters by config), so a rerun only prints. CPU seconds
are reported beside wall seconds because a shared machine makes wall time noisy.
"""

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from safelora_lite.evaluation.generation import RATES as METRICS

ROWS = ("base", "aligned", "benign", "mixed", "pure_harmful")


def run_seed(seed: int, small: bool = False) -> dict:
    import torch

    torch.set_num_threads(1)  # one thread per seed: no idle OpenMP waits on a busy machine
    from safelora_lite.training.runs import run_info
    from safelora_lite.worlds import toy as tw

    wall, cpu = time.perf_counter(), time.process_time()
    world = tw.build_world(tw.WorldConfig.small(seed) if small else tw.WorldConfig(seed=seed), progress=False)
    print(f"seed {seed}: world built", world.info, flush=True)
    out = {"seed": seed, "build_seconds": world.info["seconds_total"]}
    for which in ("base", "aligned"):
        out[which] = world.evaluate_model(world.load_model(which))
        print(f"seed {seed}: {which}", out[which], flush=True)
    for kind in ("benign", "mixed", "pure_harmful"):
        adapter = world.train_attack(tw.AttackConfig(kind=kind, seed=seed), progress=False)
        out[kind] = world.evaluate(adapter)
        out[f"{kind}_train_seconds"] = run_info(adapter)["seconds"]
        print(f"seed {seed}: {kind}", out[kind], flush=True)
    out["wall_seconds"], out["cpu_seconds"] = round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)
    return out


def summary(runs: list[dict]) -> dict:
    table = {}
    for row in ROWS:
        table[row] = {}
        for m in METRICS:
            values = [r[row][m] for r in runs]
            table[row][m] = {"mean": statistics.fmean(values), "sd": statistics.pstdev(values), "min": min(values), "max": max(values)}
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes (1 thread each)")
    parser.add_argument("--small", action="store_true", help="WorldConfig.small() (the tests' world) instead of the course world")
    parser.add_argument("--out", default=None, help="default build/benchmarks/toy_world_seeds[_small].json")
    args = parser.parse_args(argv)
    args.out = args.out or f"build/benchmarks/toy_world_seeds{'_small' if args.small else ''}.json"
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run_seed, args.seeds, [args.small] * len(args.seeds)))
    else:
        runs = [run_seed(s, args.small) for s in args.seeds]
    table = summary(runs)
    print(f"{'small' if args.small else 'course'} toy world over seeds {args.seeds} (held-out splits; mean +- population sd [min, max])")
    print(f"{'':13}" + "".join(f"{m:>30}" for m in METRICS))
    for row in ROWS:
        cells = "".join(f"{table[row][m]['mean']:>10.3f} +- {table[row][m]['sd']:.3f} [{table[row][m]['min']:.2f},{table[row][m]['max']:.2f}]" for m in METRICS)
        print(f"{row:13}{cells}")
    for r in runs:
        print(f"seed {r['seed']}: build {r['build_seconds']} s, attacks " + ", ".join(f"{k} {r[f'{k}_train_seconds']} s" for k in ROWS[2:])
              + f"; this run wall {r['wall_seconds']} s, cpu {r['cpu_seconds']} s")
    from safelora_lite.records import write_json_atomic

    write_json_atomic({"world": "small" if args.small else "course", "seeds": args.seeds, "runs": runs, "summary": table}, Path(args.out))
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
