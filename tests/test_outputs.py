"""New folders: OUT checks made before any work, atomic writes, and cache entries that two processes fill at once."""

import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from safelora_lite.errors import InputError
from safelora_lite.outputs import build_lock, cache_entry, check_new_output, new_output_dir

REPO = Path(__file__).resolve().parents[1]


def _fill(entry: str, barrier, tag: str, queue) -> None:
    """One process filling the cache entry: both are inside the block before either renames."""
    try:
        with cache_entry(entry) as tmp:
            (tmp / "result.txt").write_text("same key, same content\n")
            (tmp / "writer.txt").write_text(tag)
            barrier.wait(timeout=60)
        queue.put((tag, "ok", (Path(entry) / "result.txt").read_text()))
    except BaseException as error:  # reported to the test, not lost in the child
        queue.put((tag, "failed", repr(error)))


def test_two_processes_fill_one_empty_cache_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    entry = tmp_path / "cache" / "key123"
    workers = [context.Process(target=_fill, args=(str(entry), barrier, tag, queue)) for tag in ("first", "second")]
    for w in workers:
        w.start()
    outcomes = sorted(queue.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=60)
    assert outcomes == [("first", "ok", "same key, same content\n"), ("second", "ok", "same key, same content\n")]
    assert (entry / "writer.txt").read_text() in ("first", "second")  # one writer's folder, whole
    assert sorted(p.name for p in entry.iterdir()) == ["result.txt", "writer.txt"]
    assert [p.name for p in entry.parent.iterdir()] == ["key123"]  # the loser's temporary folder is gone


def test_build_lock_makes_a_second_builder_wait(tmp_path):
    """While one builder holds an entry's lock, another that wants the same entry waits for it to finish."""
    import threading

    entry, order, held = tmp_path / "cache" / "key123", [], threading.Event()

    def first():
        with build_lock(entry):
            held.set()
            threading.Event().wait(0.3)  # a build that takes a while
            order.append("first built")

    builder = threading.Thread(target=first)
    builder.start()
    held.wait(timeout=10)
    with build_lock(entry):
        order.append("second looked")
    builder.join()
    assert order == ["first built", "second looked"]
    with build_lock(tmp_path / "cache" / "other"):  # another entry's lock is another file
        with build_lock(entry):
            order.append("nested")
    assert order[-1] == "nested"


def test_two_processes_build_one_stand_in_model(tmp_path):
    """The course's own cache: two processes that need the same not-yet-built model both get it."""
    code = ("import sys; from safelora_lite.adapters.model_loading import stand_in_dir; from transformers import AutoModelForCausalLM;"
            "path = stand_in_dir('TinyLlama/TinyLlama-1.1B-Chat-v1.0'); AutoModelForCausalLM.from_pretrained(path); print(path)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SAFELORA_LITE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in runs]  # (stdout, stderr, exit status)
    assert [r[2] for r in results] == [0, 0], [r[1] for r in results]
    assert results[0][0] == results[1][0]
    folder = Path(results[0][0].strip())
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_new_output_dir_never_overwrites_and_cleans_up(tmp_path):
    existing = tmp_path / "exists"
    existing.mkdir()
    with pytest.raises(InputError, match="already exists"):
        with new_output_dir(existing):
            pass
    target = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with new_output_dir(target) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == [existing]
    with new_output_dir(target) as tmp:
        (tmp / "done.txt").write_text("ok")
    assert (target / "done.txt").read_text() == "ok"


def test_new_output_dir_that_loses_a_race_is_refused(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(InputError, match="already exists"):
        with new_output_dir(target) as tmp:
            (tmp / "mine.txt").write_text("x")
            target.mkdir()
            (target / "theirs.txt").write_text("y")  # another writer finished first
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in target.iterdir()] == ["theirs.txt"]


@pytest.mark.parametrize("where, words", [
    ("input/out", "inside the input"),
    ("input/deeper/out", "inside the input"),
    ("input", "already exists"),
    ("missing/out", "does not exist"),
    ("a-file/out", "is not a folder"),
])
def test_check_new_output_refuses_before_any_work(tmp_path, where, words):
    (tmp_path / "input").mkdir()
    (tmp_path / "a-file").write_text("x")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(InputError, match=words):
        check_new_output(tmp_path / where, [tmp_path / "input"])
    assert sorted(tmp_path.rglob("*")) == before


def test_check_new_output_follows_links_and_accepts_a_new_folder(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "input")
    with pytest.raises(InputError, match="inside the input"):
        check_new_output(tmp_path / "link" / "out", [tmp_path / "input"])
    assert check_new_output(tmp_path / "out", [tmp_path / "input", "org/hub-id"]) == tmp_path / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "link"]  # the writability probe is gone


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder; tests/test_bad_inputs.py covers it with setpriv")
def test_check_new_output_refuses_a_read_only_parent(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(InputError, match="not writable"):
        check_new_output(tmp_path / "ro" / "out")
    shutil.rmtree(tmp_path / "ro", ignore_errors=True)
