"""New folders, written atomically: a command's OUT (never over, inside or around an input) and cache entries.

Both are written into a temporary sibling folder that is renamed into place when complete, so a
reader never sees half a folder and a failure leaves nothing behind.
- `check_new_output(out, inputs)`: every check on OUT that can be made before any weight is read.
- `new_output_dir(out)`: OUT must not exist; losing a race to another writer is an InputError.
- `cache_entry(out)`: a cache entry (same key, same content): when another process filled it first,
  its result is kept, ours is dropped and the caller goes on.
"""

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from safelora_lite.errors import InputError

ALREADY_THERE = (errno.EEXIST, errno.ENOTEMPTY)  # what rename(2) says when the target is a non-empty folder


def _exists_error(out: Path) -> InputError:
    return InputError(f"output directory {out} already exists.", "choose a new --out path (inputs and earlier results are never overwritten).")


def check_new_output(out: str | os.PathLike, inputs=()) -> Path:
    """Refuse an OUT that cannot become a new folder: it exists, it is or lies inside an input folder,
    its parent is missing, not a folder or not writable (tried by making and removing a folder)."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise _exists_error(out)
    target = out.resolve()
    for source in inputs:
        if source is not None and Path(source).exists() and Path(source).resolve() in target.parents:
            raise InputError(f"--out {out} is inside the input {source}: the result would be written into an input.",
                             "choose an --out folder outside every input.")
    parent = target.parent
    if not parent.exists():
        raise InputError(f"the folder {out.parent} that would hold --out {out} does not exist.", "create it first, or choose another --out.")
    if not parent.is_dir():
        raise InputError(f"{out.parent} is not a folder, so --out {out} cannot be made.", "choose an --out whose parent is a folder.")
    try:
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.probe-"))
    except OSError as error:
        raise InputError(f"the folder {out.parent} is not writable ({error.strerror}), so --out {out} cannot be written.",
                         "choose an --out in a folder you can write to.") from None
    return out


@contextmanager
def _renamed_into_place(out: Path, keep_existing: bool):
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        yield tmp
        try:
            os.rename(tmp, out)
        except OSError as error:
            if error.errno not in ALREADY_THERE:
                raise
            if not keep_existing:  # another writer made OUT after our check
                raise _exists_error(out) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left after a rename; ours when another process won


def new_output_dir(out: str | os.PathLike):
    """Yield a temporary sibling folder that becomes `out` only if the block succeeds; an existing
    `out` is an error (never overwritten), and a failure leaves nothing behind."""
    out = Path(out)
    if out.exists():
        raise _exists_error(out)
    return _renamed_into_place(out, keep_existing=False)


def cache_entry(out: str | os.PathLike):
    """Yield a temporary sibling folder that becomes the cache entry `out`; if another process filled
    `out` meanwhile (the same key, so the same content), theirs is kept and ours dropped."""
    return _renamed_into_place(Path(out), keep_existing=True)


@contextmanager
def build_lock(out: str | os.PathLike):
    """Hold an exclusive lock named after the cache entry `out` (a sibling `.<name>.lock` file) while it is
    built: a second process that wants the same entry waits here, then finds it built. Where the OS has
    no `fcntl` (Windows) there is no lock, and `cache_entry` still keeps one of two equal builds."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield
