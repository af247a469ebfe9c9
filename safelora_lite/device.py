"""The one device helper: cuda -> mps -> cpu, and a short report of what this machine has."""

import contextlib
import os
import platform
from contextlib import contextmanager
from pathlib import Path

import torch


def pick_device(device: str = "auto") -> torch.device:
    """Resolve "auto" to the best available device; pass any explicit torch device through."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def memory_report(device: torch.device) -> str:
    """Total and free memory of a GPU, or a note that the CPU shares system memory."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return f"{torch.cuda.get_device_name(device)}: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB"
    return f"{device.type}: uses system memory"


def environment_report(device: str = "auto") -> dict:
    """Versions and device, printed at the top of every notebook and stored in the course report."""
    from importlib.metadata import version

    import peft
    import transformers

    dev = pick_device(device)
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safelora_lite": version("safelora-lite"),
        "device": str(dev),
        "memory": memory_report(dev),
        "cpu_threads": torch.get_num_threads(),
    }
    for key, value in report.items():
        print(f"{key:>14}: {value}")
    return report


MAX_THREADS = 2


def limit_threads(n: int = MAX_THREADS) -> None:
    """Tiny models gain nothing from many threads; two keep a shared machine usable."""
    if torch.get_num_threads() > n:
        torch.set_num_threads(n)


@contextmanager
def single_thread():
    """One math thread inside the block, the previous count after it: for passes made of many short
    kernels, where a second thread saves little and, on a loaded machine, makes each kernel wait for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def one_thread_if_small(matrix, side: int = 1024):
    """`single_thread()` around a decomposition (an SVD) of a matrix whose smaller side is at most `side`, else
    no change. A small SVD is many short kernels: on a loaded 2-core machine a second thread makes each of them
    wait (576 x 576 at load 4.8: 10.2 s with two threads, 0.08 s with one); a big one gains from every thread."""
    return single_thread() if min(matrix.shape) <= side else contextlib.nullcontext()


GRANT_VARIABLE = "SAFELORA_LITE_THREAD_GRANT"  # a file a course run writes: how many math threads each kernel may use now


def granted_threads() -> int | None:
    """The math threads the course runner grants this kernel now (a number in the file named by
    $SAFELORA_LITE_THREAD_GRANT), or None outside a course run or when the file cannot be read."""
    path = os.environ.get(GRANT_VARIABLE)
    try:
        return int(Path(path).read_text()) if path else None
    except (OSError, ValueError):
        return None


class GrantedThreads:
    """A context in which a big model (at least `smallest` parameters) answers prompts with the math threads the
    course runner grants, when that is more than this kernel has: a course run on 2 cores gives each of its two
    notebooks one thread, and the core that the first to finish leaves idle goes to the other. `refresh()`
    (before each generated batch) picks up a grant that rose meanwhile; leaving restores the count.

    Inference only: for a real model's shapes one and two threads give the same logits and answers, bit for bit
    (tests/test_device.py), so the grant changes when a number is ready, never the number. Training keeps its
    count (a LoRA update differed in its last bits between one and two threads on an AVX-512 Xeon), and so does
    a toy model, whose passes are many short kernels that a second thread does not speed up (and a toy world
    built on one thread is another world than on two: README)."""

    def __init__(self, parameters: int, smallest: int = 10_000_000):
        self.threads, self.big = torch.get_num_threads(), parameters >= smallest

    def refresh(self) -> None:
        granted = granted_threads() if self.big else None
        if granted is not None and granted > self.threads and granted != torch.get_num_threads():
            torch.set_num_threads(granted)

    def __enter__(self):
        self.refresh()
        return self

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.threads)
