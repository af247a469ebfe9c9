"""Load a Llama-family model from the hub, a local folder, a tiny stand-in, or random weights of the real shapes.

model_source (docs/architecture.md section 5):
- "hub": `from_pretrained(model_id)` (needs the network; Llama-2 is gated: log in first).
- "local": a folder saved with `save_pretrained` (safetensors).
- "stand-in": a tiny `LlamaForCausalLM` of the same family (same layout: GQA for TinyLlama, MHA for
  Llama-2), random weights and a byte-level tokenizer, built and cached locally. For CI and offline
  rehearsal: it runs the pipeline, its numbers mean nothing.
- "random-real-shapes": the exact shapes of the real model (written in code below, since no config
  can be downloaded here) with random weights: for measuring memory and time on a GPU.

Weights load through safetensors only; `trust_remote_code` is never set.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from safelora_lite.device import pick_device
from safelora_lite.errors import InputError
from safelora_lite.paths import cache_dir

SOURCES = ("hub", "local", "stand-in", "random-real-shapes")
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}
QUANTIZATIONS = (None, "none", "8bit", "4bit")

TINYLLAMA_BASE = "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"
TINYLLAMA_CHAT = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
LLAMA2_BASE = "meta-llama/Llama-2-7b-hf"
LLAMA2_CHAT = "meta-llama/Llama-2-7b-chat-hf"

# The real shapes (docs/architecture.md section 5). Both LlamaForCausalLM, untied embeddings, no biases.
REAL_SHAPES = {
    "tinyllama-1.1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048),
    "llama-2-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096),
}
# Tiny stand-ins keep each family's layout: TinyLlama's 8 query heads per KV head, Llama-2's MHA,
# and roughly the same MLP ratio (5632 / 2048 = 2.75, 11008 / 4096 = 2.69).
STAND_IN_SHAPES = {
    "tinyllama-1.1b": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=4,
                           num_attention_heads=8, num_key_value_heads=1, max_position_embeddings=512),
    "llama-2-7b": dict(hidden_size=64, intermediate_size=172, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512),
}
_COMMON = dict(rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
               hidden_act="silu", bos_token_id=1, eos_token_id=2, rope_parameters={"rope_theta": 10000.0, "rope_type": "default"})


def family_of(model_id: str) -> str:
    """"tinyllama-1.1b" or "llama-2-7b" from a hub id or a name containing it."""
    name = str(model_id).lower()
    if "tinyllama" in name:
        return "tinyllama-1.1b"
    if re.search(r"llama-?2-7b", name):
        return "llama-2-7b"
    raise InputError(f"no known shapes for {model_id!r}.", f"use a TinyLlama or Llama-2-7b id, or model_source='local' / 'hub'; known families: {', '.join(REAL_SHAPES)}.")


def real_config(model_id: str, num_hidden_layers: int | None = None):
    """The LlamaConfig of the real model (optionally with fewer layers, each of the exact real shape)."""
    from transformers import LlamaConfig

    shapes = dict(REAL_SHAPES[family_of(model_id)])
    if num_hidden_layers is not None:
        shapes["num_hidden_layers"] = int(num_hidden_layers)
    return LlamaConfig(**shapes, **_COMMON, architectures=["LlamaForCausalLM"])


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """"auto": bf16 on a GPU that supports it, fp16 on older GPUs (T4) and mps, fp32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}.", "use 'auto', 'bf16', 'fp16' or 'fp32'.")
    return DTYPES[dtype]


def quantization_available() -> tuple[bool, str]:
    """Whether 4/8-bit loading can work here, and why not (one line)."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False, "bitsandbytes is not installed: pip install 'safelora-lite[quant]' (needs a CUDA GPU)."
    if not torch.cuda.is_available():
        return False, "4/8-bit loading needs a CUDA GPU; none is visible."
    return True, "bitsandbytes and a CUDA GPU are available."


def quantization_config(quantization: str | None, compute_dtype: torch.dtype):
    """A transformers BitsAndBytesConfig for QLoRA (nf4, double quant) or 8-bit, or None."""
    if quantization in (None, "none"):
        return None
    if quantization not in QUANTIZATIONS:
        raise InputError(f"unknown quantization {quantization!r}.", "use None, '8bit' or '4bit'.")
    ok, why = quantization_available()
    if not ok:
        raise InputError(f"{quantization} quantization is unavailable: {why}", "set quantization=None.")
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


# Llama-2-chat's turn format, for tokenizers that ship without a chat template (e.g. base models).
LLAMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def byte_tokenizer():
    """A small byte-level tokenizer (256 bytes + 4 specials) with a Llama-2-style chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    return tokenizer


def stand_in_dir(model_id: str, seed: int = 0, root: str | os.PathLike | None = None) -> Path:
    """Build (once) and cache a tiny random model of `model_id`'s family with a byte tokenizer; return its folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from safelora_lite.outputs import cache_entry

    family = family_of(model_id)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(model_id))
    path = Path(root or cache_dir() / "stand_in") / f"{slug}-seed{seed}"
    if (path / "model.safetensors").is_file():
        return path
    tokenizer = byte_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), **STAND_IN_SHAPES[family], **{**_COMMON, "bos_token_id": 1, "eos_token_id": 2},
                         pad_token_id=tokenizer.pad_token_id, architectures=["LlamaForCausalLM"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        if "chat" in str(model_id).lower():  # an "aligned" stand-in: the base stand-in plus a small change
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if name.endswith("proj.weight"):
                        param.add_(0.02 * torch.randn_like(param))
    with cache_entry(path) as tmp:  # another process that builds it at the same moment: the first one's is kept
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return path


@dataclass
class Loaded:
    """A loaded model, its tokenizer (None for random-real-shapes) and how it was loaded."""

    model: torch.nn.Module
    tokenizer: object
    source: str
    location: str
    dtype: torch.dtype
    device: torch.device
    quantization: str | None

    def describe(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (f"{self.location} ({self.source}): {n / 1e6:,.1f}M parameters, {str(self.dtype).replace('torch.', '')}, "
                f"{self.quantization or 'no quantization'}, on {self.device}")


def _check_fits_cpu(config, dtype: torch.dtype, device: torch.device) -> None:
    from safelora_lite.training.memory_plan import count_parameters

    if device.type != "cpu":
        return
    need = count_parameters(config)["total"] * torch.finfo(dtype).bits // 8
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > 0.5 * total:
        raise InputError(f"random weights of these shapes need {need / 2**30:.1f} GiB, more than half of this machine's {total / 2**30:.1f} GiB.",
                         "run on a GPU, or pass num_hidden_layers to build fewer layers of the real shape.")


def load_model(
    model_id: str,
    model_source: str = "stand-in",
    *,
    local_dir: str | os.PathLike | None = None,
    dtype: str | torch.dtype = "auto",
    quantization: str | None = None,
    gradient_checkpointing: bool = False,
    device: str = "auto",
    num_hidden_layers: int | None = None,
    seed: int = 0,
) -> Loaded:
    """Load a causal LM for fine-tuning or evaluation. See the module docstring for `model_source`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_source not in SOURCES:
        raise InputError(f"unknown model_source {model_source!r}.", f"use one of {', '.join(SOURCES)}.")
    dev = pick_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    quant = None if quantization in (None, "none") else quantization
    bnb = quantization_config(quant, torch_dtype)
    if model_source == "random-real-shapes":
        if bnb is not None:
            raise InputError("quantization needs real (or saved) weights, not random-real-shapes.", "save the random model with save_pretrained and load it with model_source='local'.")
        config = real_config(model_id, num_hidden_layers)
        _check_fits_cpu(config, torch_dtype, dev)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.device(dev):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        tokenizer, location = None, f"{model_id} shapes"
    else:
        if model_source == "local":
            if local_dir is None or not Path(local_dir).is_dir():
                raise InputError(f"local_dir {local_dir!r} is not a folder.", "pass the folder saved with save_pretrained.")
            location = str(local_dir)
        elif model_source == "stand-in":
            location = str(stand_in_dir(model_id, seed=seed))
        else:
            location = model_id
        kwargs = dict(dtype=torch_dtype, use_safetensors=True, trust_remote_code=False)
        if bnb is not None:
            kwargs.update(quantization_config=bnb, device_map={"": dev.index or 0})
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
        except OSError as error:
            hint = " (Llama-2 is gated: accept its licence and run `hf auth login`)" if "meta-llama" in location else ""
            raise InputError(f"cannot load {location!r}{hint}: {str(error).splitlines()[0]}",
                             "check the id or folder, or use model_source='stand-in' offline.") from error
        if bnb is None:
            model = model.to(dev)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        if getattr(tokenizer, "chat_template", None) is None:
            tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    if gradient_checkpointing:
        # transformers 5 renamed it activation checkpointing; older versions only have the old name
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return Loaded(model, tokenizer, model_source, location, torch_dtype, dev, quant)


def weights_dir(model_id: str, model_source: str, local_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """A local folder of safetensors for per-module streaming (weights.Checkpoint): never a loaded model."""
    if model_source == "local":
        if local_dir is None or not Path(local_dir).is_dir():
            raise InputError(f"local_dir {local_dir!r} is not a folder.", "pass the folder saved with save_pretrained.")
        return Path(local_dir)
    if model_source == "stand-in":
        return stand_in_dir(model_id, seed=seed)
    if model_source == "hub":  # a folder as is, else the Hugging Face cache, else a safetensors download
        from safelora_lite.adapters.hub import resolve_model

        return resolve_model(model_id, option="model")
    raise InputError(f"model_source {model_source!r} has no weights on disk.", "use 'hub', 'local' or 'stand-in' for projection.")
