"""What a course run builds alone, on every core, before notebooks run side by side (`--jobs > 1`).

A notebook in a lane has one thread; what it would train first there is built after the setup notebook, in a
process of its own on every core (up to device.MAX_THREADS), as the notebook run by itself would build it.
The notebook then finds it in the cache.
"""

import time
from pathlib import Path


def prebuild(notebook: Path, params: dict) -> dict:
    """Build what `notebook` would train first (PREBUILDS) with its parameters `params` (its defaults and the run's),
    in a process of its own on every core; the notebook then finds it in the cache. A failure is reported and left
    to the notebook, which meets it with its own message."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    what, build = PREBUILDS[notebook.stem]
    print(f"building {what} for {notebook.stem}, alone ...", flush=True)
    start, status, error, threads = time.perf_counter(), "ok", None, None
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            threads = pool.submit(build, params).result()
    except Exception as exc:
        status, error = "failed", " ".join(str(exc).split())[:500]
    seconds = round(time.perf_counter() - start, 1)
    print(f"  {what}: {status} in {seconds} s" + (f" ({error}; {notebook.stem} will try again)" if error else ""), flush=True)
    return {"notebook": notebook.stem, "what": what, "status": status, "seconds": seconds, "threads": threads, "error": error}


def _build_real_world(params: dict) -> int | None:
    """Notebook 08's world (its `world_size` and `world_seed`); the threads it was built with, None if it was cached."""
    import torch

    from safelora_lite.worlds import real

    config = real.world_config(params["world_size"], params["world_seed"])
    cached = real.world_is_built(config)
    real.build_world(config)  # on every core up to device.MAX_THREADS, as in a notebook run alone
    return None if cached else torch.get_num_threads()


# notebook stem -> (what is built for it, the builder: the notebook's parameters -> threads used, None if cached)
PREBUILDS = {"08_real_small_model": ("the real small world", _build_real_world)}
