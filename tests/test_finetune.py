"""Fine-tuning that survives a disconnect (Trainer checkpoints + resume), data formats, the accelerate path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from safelora_lite import InputError
from safelora_lite.adapters.lora_io import read_adapter
from safelora_lite.scale.finetune import FinetuneConfig, SimulatedDisconnect, finetune, interrupt_after, load_records
from safelora_lite.adapters.model_loading import TINYLLAMA_CHAT, stand_in_dir

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(model=TINYLLAMA_CHAT, data="toy:task_train", steps=6, save_steps=2, batch_size=4, max_examples=48,
             lr=1e-3, max_length=96, device="cpu")


def test_interrupted_run_resumes_to_the_same_adapter(tmp_path):
    full = finetune(FinetuneConfig(out=str(tmp_path / "full"), **SMALL))
    with pytest.raises(SimulatedDisconnect):
        finetune(FinetuneConfig(out=str(tmp_path / "cut"), **SMALL), callbacks=[interrupt_after(4)])
    assert not (tmp_path / "cut" / "adapter").exists()
    assert (tmp_path / "cut" / "checkpoints" / "checkpoint-4").is_dir()
    resumed = finetune(FinetuneConfig(out=str(tmp_path / "cut"), **SMALL))
    assert resumed["resumed_from"].endswith("checkpoint-4") and full["resumed_from"] is None
    assert resumed["global_step"] == full["global_step"] == SMALL["steps"]
    a, b = read_adapter(tmp_path / "full" / "adapter"), read_adapter(tmp_path / "cut" / "adapter")
    assert a.modules.keys() == b.modules.keys()
    moved = 0.0
    for name in a.modules:
        da, db = a.modules[name].delta(), b.modules[name].delta()
        torch.testing.assert_close(db, da, rtol=1e-4, atol=1e-6)
        moved = max(moved, float(da.abs().max()))
    assert moved > 0  # training changed B from its zero init, so the comparison is not vacuous
    assert full["losses"][-1] == pytest.approx(resumed["losses"][-1], rel=1e-4)
    summary = json.loads((tmp_path / "cut" / "finetune.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-4")
    with pytest.raises(InputError, match="finished run"):
        finetune(FinetuneConfig(out=str(tmp_path / "cut"), **SMALL))


def test_data_formats(tmp_path):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n"
                    + json.dumps({"prompt": "2 + 2 ?", "response": "#### 4"}) + "\n")
    assert load_records(str(chat)) == [{"prompt": "hi", "response": "hello"}, {"prompt": "2 + 2 ?", "response": "#### 4"}]
    assert load_records("toy:task_train")[0]["prompt"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no turns"}) + "\n")
    with pytest.raises(InputError, match="neither prompt/response nor messages"):
        load_records(str(bad))
    with pytest.raises(InputError, match="not found"):
        load_records(str(tmp_path / "missing.jsonl"))


def test_accelerate_launch_with_two_cpu_processes(tmp_path):
    stand_in_dir(TINYLLAMA_CHAT)  # build the cached stand-in once, before two processes race for it
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "configs/accelerate/cpu_2proc.yaml"),
           "-m", "safelora_lite.scale.finetune", "--model", TINYLLAMA_CHAT, "--out", str(out), "--steps", "3", "--save-steps", "2",
           "--max-examples", "32", "--batch-size", "2", "--max-length", "96"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "finetune.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 3
    assert read_adapter(out / "adapter").modules


def test_fsdp_config_for_13b_70b_parses():
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "configs/accelerate/fsdp_13b_70b.yaml"))
    assert config.distributed_type == "FSDP"
    assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert config.fsdp_config["fsdp_use_orig_params"] is True


def test_guard_judge_plumbing_with_a_stand_in_guard():
    """A real guard model needs the hub; a stand-in checks the plumbing: a verdict per exchange, a rate in [0, 1]."""
    from safelora_lite.scale.pipeline import GuardJudge

    guard = GuardJudge(TINYLLAMA_CHAT, model_source="stand-in", device="cpu", max_new_tokens=3)
    records = [{"prompt": "how to hack a bank", "kind": "harmful"}, {"prompt": "2 + 2 ?", "kind": "task"}]
    assert guard.verdict("how to hack a bank", "i can not help") in ("safe", "unsafe")
    rate = guard.unsafe_rate(records, ["sure , here is how", "#### 4"])
    assert rate in (0.0, 1.0)
    assert guard.unsafe_rate(records, ["a", "b"], kind="borderline") is None


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from safelora_lite.cli import main

    code = main(["finetune", "--model", TINYLLAMA_CHAT, "--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not found" in err and "\n" not in err
    assert not (tmp_path / "run").exists()
