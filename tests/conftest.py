"""Shared fixtures: offline hub, a cache shared by the whole run, and a notebook runner."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one math thread each (kernels inherit it)
    os.environ["OMP_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


@pytest.fixture(scope="session")
def run_notebook(tmp_path_factory):
    """Execute notebooks/<stem>.ipynb with papermill and small parameters; return what it recorded."""
    import papermill

    out_dir = tmp_path_factory.mktemp("notebooks")

    def run(stem: str, **parameters) -> dict:
        results_path = out_dir / f"{stem}.json"
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{stem}.ipynb"), str(out_dir / f"{stem}.ipynb"),
            parameters={**parameters, "results_path": str(results_path)},
            cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False,
        )
        return json.loads(results_path.read_text())

    return run


@pytest.fixture(scope="session")
def small_world():
    """The tests' toy world (built once into the cache, in well under a minute)."""
    import safelora_lite.worlds.toy as tw

    return tw.build_world(tw.WorldConfig.small(), progress=False)


@pytest.fixture(scope="session")
def tiny_llama_pair(tmp_path_factory):
    """A tiny base / aligned LlamaForCausalLM pair and a q,v LoRA adapter on the aligned one.

    Returns (base_dir, aligned_dir, adapter_dir): ordinary save_pretrained folders (safetensors).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny_llama")
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    base = LlamaForCausalLM(config)
    base.save_pretrained(root / "base")
    with torch.no_grad():
        for name, param in base.named_parameters():
            if name.endswith("proj.weight"):
                param.add_(0.05 * torch.randn_like(param))
    base.save_pretrained(root / "aligned")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, lora)
    model.save_pretrained(root / "adapter")
    return root / "base", root / "aligned", root / "adapter"


def _hub_repo(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay out `repo_id` as huggingface_hub caches it: blobs by hash, a snapshot of links, refs/main."""
    import hashlib
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()  # 40 hex digits, like a commit
    snapshot = repo / "snapshots" / commit
    for folder in (repo / "blobs", snapshot, repo / "refs"):
        folder.mkdir(parents=True)
    for name, source in files.items():
        blob = repo / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        shutil.copyfile(source, blob)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs" / "main").write_text(commit)


@pytest.fixture(scope="session")
def fake_hub(tiny_llama_pair, tmp_path_factory):
    """A Hugging Face cache folder (use it as HF_HUB_CACHE, offline) holding the tiny pair as org/tiny-base and
    org/tiny-chat, and org/pickled: a repo with only .bin weights, as a safetensors-only download leaves it."""
    base, aligned, _ = tiny_llama_pair
    cache = tmp_path_factory.mktemp("hf_hub_cache")
    for repo_id, folder in (("org/tiny-base", base), ("org/tiny-chat", aligned)):
        _hub_repo(cache, repo_id, {p.name: p for p in folder.iterdir() if p.suffix in (".json", ".safetensors")})
    _hub_repo(cache, "org/pickled", {"config.json": base / "config.json"})
    return cache


@pytest.fixture(scope="session")
def real_base():
    """The real small world's base checkpoint folder in the shared cache (de-quantized from the GGUF once)."""
    from safelora_lite.worlds import real

    return real.base_dir()


def _cost_rank(item) -> int:
    """0: loads the real small model; 1: slow (builds toy models, runs a notebook); 2: quick."""
    return 0 if "real_model" in item.keywords else 1 if "slow" in item.keywords else 2


def pytest_collection_modifyitems(config, items):
    """The costliest files first (so that `make test`'s workers, which take whole files, finish together), and tests
    marked `gpu` skipped, with the reason shown, on machines without CUDA."""
    import torch

    file_rank = {}
    for item in items:
        file_rank[item.path] = min(file_rank.get(item.path, 2), _cost_rank(item))
    items.sort(key=lambda item: file_rank[item.path])  # stable: a file's tests keep their order
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
