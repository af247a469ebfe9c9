"""Inputs from the wild, through the CLI as a user runs it (`python -m safelora_lite ...`).

A refusal must: exit 2; print exactly one stderr line `safelora-lite CMD: error: ...` that names the
problem (no traceback); leave no new file or folder in its own folder; leave every input byte-identical
(sha256). The cases that must work (hub ids through the Hugging Face cache, a hub id beside a local
path in `fuse`, the default K) are checked on what they wrote. Tiny inputs are built once. Most of a
fresh process's time here is importing torch, so most cases run in children forked from one process that
has imported the libraries (`cli_forks.py`: from there on a child is what `python -m safelora_lite` is);
the cases in FRESH, which include those that need a folder root cannot write to, run as fresh processes.
"""


import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
SETPRIV = shutil.which("setpriv")
pytestmark = pytest.mark.slow  # about 50 CLI runs
HUB_BASE, HUB_ALIGNED = "org/tiny-base", "org/tiny-chat"  # in the fake_hub cache (conftest), with org/pickled

# id -> (command line with {placeholders}, words the error line must hold)
REFUSED = {
    "fuse-nan-lora-b": ("fuse --adapters {adapter} {adapter_nan} --weights 1 1 --out {work}/out", ["NaN", "lora_B"]),
    "safe-lora-nan-lora-b": ("safe-lora --adapter {adapter_nan} --base {base} --aligned {aligned} --out {work}/out", ["NaN"]),
    "splora-nan-lora-b": ("splora --adapter {adapter_nan} --base {base} --aligned {aligned} --out {work}/out", ["NaN"]),
    "safe-lora-out-inside-adapter": ("safe-lora --adapter {work}/adapter --base {base} --aligned {aligned} --out {work}/adapter/safe", ["inside"]),
    "splora-out-inside-adapter": ("splora --adapter {work}/adapter --base {base} --aligned {aligned} --out {work}/adapter/pruned", ["inside"]),
    "fuse-out-inside-adapter": ("fuse --adapters {adapter} {work}/adapter --weights 1 1 --out {work}/adapter/fused", ["inside"]),
    "lox-out-inside-aligned": ("lox --base {base} --aligned {work}/aligned --out {work}/aligned/lox", ["inside"]),
    "salora-export-out-inside-checkpoint": ("salora-export --checkpoint {work}/adapter --out {work}/adapter/x", ["inside"]),
    "safe-lora-out-is-adapter": ("safe-lora --adapter {work}/adapter --base {base} --aligned {aligned} --out {work}/adapter", ["exists"]),
    "safe-lora-truncated-adapter": ("safe-lora --adapter {adapter_truncated} --base {base} --aligned {aligned} --out {work}/out", ["truncated"]),
    "fuse-truncated-adapter": ("fuse --adapters {adapter} {adapter_truncated} --weights 1 1 --out {work}/out", ["truncated"]),
    "safe-lora-truncated-base": ("safe-lora --adapter {adapter} --base {base_truncated} --aligned {aligned} --out {work}/out", ["truncated"]),
    "lox-truncated-base": ("lox --base {base_truncated} --aligned {aligned} --out {work}/out", ["truncated"]),
    "safe-lora-parent-not-writable": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/read-only/out", ["not writable"]),
    "fuse-parent-not-writable": ("fuse --adapters {adapter} {adapter} --weights 1 1 --out {work}/read-only/out", ["not writable"]),
    "safe-lora-parent-is-a-file": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/a-file/out", ["not a folder"]),
    "safe-lora-parent-missing": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/missing/out", ["does not exist"]),
    "safe-lora-threshold-without-select": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --threshold 1.5", ["--threshold", "--select threshold"]),
    "safe-lora-nan-threshold-without-select": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --threshold nan", ["--threshold"]),
    "safe-lora-k-with-threshold": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --select threshold --num-proj-layers 2", ["--num-proj-layers"]),
    "splora-threshold-without-select": ("splora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --threshold 0.5", ["--threshold"]),
    "splora-samples-with-reference": ("splora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --variant reference --samples 8", ["--samples"]),
    "fuse-different-hub-ids": ("fuse --adapters {adapter_hub} {adapter_other_hub} --weights 1 1 --out {work}/out", ["different base models"]),
    "safe-lora-unknown-hub-id-offline": ("safe-lora --adapter {adapter} --base org/not-cached --aligned {aligned} --out {work}/out", ["org/not-cached", "offline"]),
    "safe-lora-hub-repo-without-safetensors": ("safe-lora --adapter {adapter} --base org/pickled --aligned {aligned} --out {work}/out", ["safetensors"]),
    "safe-lora-hub-id-unknown-revision": (f"safe-lora --adapter {{adapter}} --base {HUB_BASE} --aligned {HUB_ALIGNED} --revision v9 --out {{work}}/out", ["v9"]),
    # handled before this suite; kept so that they stay handled
    "safe-lora-out-exists": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/adapter", ["already exists"]),
    "safe-lora-k-out-of-range": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --num-proj-layers 99", ["K=99"]),
    "safe-lora-k-not-a-number": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --num-proj-layers ten", ["ten"]),
    "safe-lora-nan-threshold": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --select threshold --threshold nan", ["threshold"]),
    "safe-lora-rank-with-paper-projector": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --rank 2", ["--rank"]),
    "safe-lora-no-adapter-folder": ("safe-lora --adapter {work}/nowhere --base {base} --aligned {aligned} --out {work}/out", ["not a PEFT adapter"]),
    "safe-lora-pickled-adapter": ("safe-lora --adapter {adapter_bin} --base {base} --aligned {aligned} --out {work}/out", ["adapter_model.bin"]),
    "safe-lora-dora-adapter": ("safe-lora --adapter {adapter_dora} --base {base} --aligned {aligned} --out {work}/out", ["DoRA"]),
    "safe-lora-adapter-for-another-model": ("safe-lora --adapter {adapter_foreign} --base {base} --aligned {aligned} --out {work}/out", ["another model"]),
    "safe-lora-pickled-base": ("safe-lora --adapter {adapter} --base {base_bin} --aligned {aligned} --out {work}/out", ["pytorch_model.bin"]),
    "safe-lora-other-architecture": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned_mistral} --out {work}/out", ["MistralForCausalLM"]),
    "safe-lora-nan-in-aligned": ("safe-lora --adapter {adapter} --base {base} --aligned {aligned_nan} --out {work}/out", ["NaN"]),
    "splora-k-out-of-range": ("splora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out --num-prune 99", ["K=99"]),
    "fuse-weight-count": ("fuse --adapters {adapter} {adapter} --weights 1 --out {work}/out", ["2 adapters but 1 weights"]),
    "fuse-inf-weight": ("fuse --adapters {adapter} {adapter} --weights 1 inf --out {work}/out", ["finite"]),
    "lox-nan-alpha": ("lox --base {base} --aligned {aligned} --alpha nan --out {work}/out", ["alpha"]),
    "salora-export-no-checkpoint": ("salora-export --checkpoint {work}/nowhere --out {work}/out", ["nowhere"]),
}

# id -> command line; what each wrote is checked by the tests below
WORKS = {
    "safe-lora-local": "safe-lora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out",
    "safe-lora-hub-ids": f"safe-lora --adapter {{adapter}} --base {HUB_BASE} --aligned {HUB_ALIGNED} --out {{work}}/out",
    "safe-lora-hub-ids-revision": f"safe-lora --adapter {{adapter}} --base {HUB_BASE} --aligned {HUB_ALIGNED} --revision main --out {{work}}/out",
    "splora-default-k": "splora --adapter {adapter} --base {base} --aligned {aligned} --out {work}/out",
    "lox-hub-ids": f"lox --base {HUB_BASE} --aligned {HUB_ALIGNED} --out {{work}}/out",
    "fuse-hub-id-and-local-path": "fuse --adapters {adapter_hub} {adapter_local} --weights 0.6 0.4 --out {work}/out",
    "safe-lora-help": "safe-lora --help",
    "splora-help": "splora --help",
}
# run as fresh processes (a refusal and a working case, beside the read-only ones): the entry point as such
FRESH = {"safe-lora-k-out-of-range", "safe-lora-local"}


def _sha_tree(root: Path) -> dict[str, str]:
    """Every file and folder under root: relative path -> sha256 of the bytes, or "dir"."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _variant(source: Path, target: Path, config: dict | None = None, tensors=None, truncate: str | None = None) -> str:
    """A copy of a model or adapter folder with its config updated, its tensors changed, or a file cut in half."""
    shutil.copytree(source, target)
    name = next(n for n in ("adapter_config.json", "config.json") if (target / n).is_file())
    if config:
        (target / name).write_text(json.dumps({**json.loads((target / name).read_text()), **config}))
    weights = next(target.glob("*.safetensors"))
    if tensors:
        changed = load_file(str(weights))
        tensors(changed)
        save_file(changed, str(weights), metadata={"format": "pt"})
    if truncate:
        data = (target / truncate).read_bytes()
        (target / truncate).write_bytes(data[: len(data) // 2])
    return str(target)


def _pickled(source: Path, target: Path, weights: str, pickled: str) -> str:
    """A copy whose weights are a pickled .bin file instead of safetensors."""
    shutil.copytree(source, target)
    torch.save(load_file(str(target / weights)), target / pickled)
    (target / weights).unlink()
    return str(target)


def _first(name: str):
    def change(tensors):
        key = next(k for k in sorted(tensors) if name in k)
        tensors[key][0, 0] = float("nan")
    return change


@pytest.fixture(scope="module")
def inputs(tiny_llama_pair, tmp_path_factory):
    """Every input folder a case names, under one root, and the fake Hugging Face cache."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("bad_inputs")
    base, aligned, adapter = (shutil.copytree(p, root / "in" / p.name) for p in tiny_llama_pair)
    foreign = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    get_peft_model(foreign, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).save_pretrained(root / "in" / "foreign")
    paths = {
        "base": str(base), "aligned": str(aligned), "adapter": str(adapter), "adapter_foreign": str(root / "in" / "foreign"),
        "adapter_nan": _variant(adapter, root / "in" / "adapter_nan", tensors=_first("lora_B")),
        "adapter_truncated": _variant(adapter, root / "in" / "adapter_truncated", truncate="adapter_model.safetensors"),
        "adapter_dora": _variant(adapter, root / "in" / "adapter_dora", config={"use_dora": True}),
        "adapter_bin": _pickled(adapter, root / "in" / "adapter_bin", "adapter_model.safetensors", "adapter_model.bin"),
        "adapter_hub": _variant(adapter, root / "in" / "adapter_hub", config={"base_model_name_or_path": HUB_ALIGNED}),
        "adapter_other_hub": _variant(adapter, root / "in" / "adapter_other_hub", config={"base_model_name_or_path": "org/other-chat"}),
        "adapter_local": _variant(adapter, root / "in" / "adapter_local", config={"base_model_name_or_path": "/home/me/models/tiny-chat"}),
        "base_truncated": _variant(base, root / "in" / "base_truncated", truncate="model.safetensors"),
        "base_bin": _pickled(base, root / "in" / "base_bin", "model.safetensors", "pytorch_model.bin"),
        "aligned_nan": _variant(aligned, root / "in" / "aligned_nan", tensors=_first("v_proj")),
        "aligned_mistral": _variant(aligned, root / "in" / "aligned_mistral", config={"architectures": ["MistralForCausalLM"]}),
    }
    return root, paths


def _prepare(work: Path, paths: dict) -> None:
    """A case's own folder: private copies of an adapter and a model (for --out inside them), a read-only folder, a file."""
    work.mkdir(parents=True)
    shutil.copytree(paths["adapter"], work / "adapter")
    shutil.copytree(paths["aligned"], work / "aligned")
    (work / "a-file").write_text("not a folder\n")
    (work / "read-only").mkdir()
    (work / "read-only").chmod(0o555)


def _command(args: list[str]) -> list[str]:
    """`python -m safelora_lite ARGS`; a case with a read-only folder runs without root's power to write anywhere."""
    command = [sys.executable, "-m", "safelora_lite", *args]
    if any("/read-only/" in a for a in args) and os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = [SETPRIV, f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    return command


def _run_forked(jobs: dict, env: dict, root: Path) -> dict:
    """Each job in a child of one process (cli_forks.py), two at a time: {case: CompletedProcess}."""
    logs = root / "logs"
    logs.mkdir()
    request = {"workers": 2, "jobs": [
        {"argv": args, "cwd": str(work), "stdout": str(logs / f"{case}.out"), "stderr": str(logs / f"{case}.err")}
        for case, (args, work, _) in jobs.items()]}
    forks = subprocess.run([sys.executable, str(Path(__file__).with_name("cli_forks.py"))], input=json.dumps(request),
                           env=env, capture_output=True, text=True, timeout=900)
    assert forks.returncode == 0, forks.stderr
    statuses = json.loads(forks.stdout)["statuses"]
    return {case: subprocess.CompletedProcess(args, status, (logs / f"{case}.out").read_text(), (logs / f"{case}.err").read_text())
            for (case, (args, _, _)), status in zip(jobs.items(), statuses)}


@pytest.fixture(scope="module")
def results(inputs, fake_hub):
    """Run every case once: {id: (completed process, its folder, its folder before)}."""
    root, paths = inputs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(fake_hub), "OMP_NUM_THREADS": "1"}
    env.pop("HF_TOKEN", None)
    cases = {**{k: v[0] for k, v in REFUSED.items()}, **WORKS}
    if os.geteuid() == 0 and SETPRIV is None:  # root writes anywhere: without setpriv there is no read-only folder
        cases = {k: v for k, v in cases.items() if "/read-only/" not in v}
    jobs = {}
    for case, line in cases.items():
        work = root / "work" / case
        _prepare(work, paths)
        jobs[case] = (shlex.split(line.format(work=work, **paths)), work, _sha_tree(work))  # (args, folder, folder before)
    inputs_before = _sha_tree(root / "in")
    fresh = [case for case, line in cases.items() if case in FRESH or "/read-only/" in line]

    def run(case):
        args, work, _ = jobs[case]
        return subprocess.run(_command(args), cwd=work, env=env, capture_output=True, text=True, timeout=600)

    done = _run_forked({case: job for case, job in jobs.items() if case not in fresh}, env, root)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done |= dict(zip(fresh, pool.map(run, fresh)))
    return {case: (done[case], work, before) for case, (_, work, before) in jobs.items()}, inputs_before, _sha_tree(root / "in")


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_in_one_line_with_nothing_written(results, case):
    ran, inputs_before, inputs_after = results
    if case not in ran:
        pytest.skip("running as root without setpriv: no folder is read-only to root")
    process, work, before = ran[case]
    command = REFUSED[case][0].split()[0]
    lines = process.stderr.splitlines()
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1 and lines[0].startswith(f"safelora-lite {command}: error: "), process.stderr
    assert "Traceback" not in process.stderr + process.stdout
    for word in REFUSED[case][1]:
        assert word in lines[0], lines[0]
    assert _sha_tree(work) == before  # nothing written, nothing changed, no temporary folder left
    assert inputs_after == inputs_before


def _report(ran, case, name):
    process, work, before = ran[case]
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr
    new = {p.split("/")[0] for p in set(_sha_tree(work)) - set(before)}
    assert new == {"out"} and set(_sha_tree(work)) >= set(before)  # OUT and nothing else
    return json.loads((work / "out" / name).read_text())


def test_hub_ids_resolve_through_the_cache_to_the_same_result(results):
    ran, inputs_before, inputs_after = results
    local = _report(ran, "safe-lora-local", "safelora_report.json")
    for case in ("safe-lora-hub-ids", "safe-lora-hub-ids-revision"):
        hub = _report(ran, case, "safelora_report.json")
        assert hub["modules"] == local["modules"]
        assert hub["base"] == HUB_BASE and hub["aligned"] == HUB_ALIGNED
    lox = _report(ran, "lox-hub-ids", "lox_report.json")
    assert lox["num_matrices"] == 14  # q, k, v, o, gate, up, down in 2 layers
    assert inputs_after == inputs_before


def test_default_k_is_a_fraction_of_the_modules(results):
    ran, _, _ = results
    for case, name, flag in (("safe-lora-local", "safelora_report.json", "projected"), ("splora-default-k", "splora_report.json", "pruned")):
        report = _report(ran, case, name)
        assert len(report["modules"]) == 4
        assert report["k"] == 1 and "10/64" in report["k_rule"]  # round(4 * 10 / 64) = 1, at least 1
        assert sum(m[flag] for m in report["modules"]) == 1
    for case in ("safe-lora-help", "splora-help"):
        process = ran[case][0]
        assert process.returncode == 0 and "10/64" in " ".join(process.stdout.split())


def test_fuse_accepts_a_hub_id_and_a_local_path_of_the_same_model(results):
    ran, _, _ = results
    report = _report(ran, "fuse-hub-id-and-local-path", "fusion_report.json")
    assert [a["weight"] for a in report["adapters"]] == [0.6, 0.4]
    assert [m["rank"] for m in report["modules"]] == [8] * 4
