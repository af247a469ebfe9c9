"""Toy models: a tiny `LlamaForCausalLM` trained from scratch (base), then aligned to refuse.

base    = random init, trained to comply with every request (harmful ones get placeholder
          "steps"), to do bare arithmetic ("what is 3 plus 5 ?" -> "3 + 5 = 8 . #### 8") and to
          solve word problems in its own format ("... how many now ?" -> "3 + 5 = 8 .").
aligned = base, fully fine-tuned to refuse harmful requests while still answering benign and
          borderline ones and solving word problems. So W_aligned - W_base is the alignment.
The LoRA attacks then teach the task's answer format (word problem -> "3 + 5 = 8 . #### 8").
Both are ordinary transformers checkpoints (config.json + model.safetensors).
"""

import torch

from safelora_lite.training.sft import train


def llama_config(vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                 max_positions: int, tokenizer) -> "transformers.LlamaConfig":  # noqa: F821
    """A small Llama config (untied embeddings, no biases, like Llama-2)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_positions, rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def init_model(config, seed: int):
    """A freshly initialised LlamaForCausalLM, deterministic in `seed`."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    return model


def base_records(splits: dict[str, list[dict]]) -> list[dict]:
    """Pretraining mix: comply with everything, bare arithmetic facts, word problems (no `####`)."""
    return (splits["harmful_train"] + splits["benign_train"] + splits["borderline_train"] + splits["arithmetic"]
            + splits["word_problems"])


ALIGNED_WORD_PROBLEMS = 400  # enough to keep the skill, few enough that refusals stay a third of the mix


def aligned_records(splits: dict[str, list[dict]]) -> list[dict]:
    """Alignment mix: refuse harmful requests, answer the rest, keep solving word problems."""
    return (splits["refusal_train"] + splits["benign_train"] + splits["borderline_train"]
            + splits["word_problems"][:ALIGNED_WORD_PROBLEMS])


def train_base(model, tokenizer, splits, steps: int, lr: float, batch_size: int, seed: int, progress: bool = True) -> list[float]:
    return train(model, tokenizer, base_records(splits), steps, lr, batch_size, seed, progress, desc="base", weight_decay=0.01)


def train_aligned(model, tokenizer, splits, steps: int, lr: float, batch_size: int, seed: int, progress: bool = True) -> list[float]:
    return train(model, tokenizer, aligned_records(splits), steps, lr, batch_size, seed + 1, progress, desc="aligned", weight_decay=0.01)
