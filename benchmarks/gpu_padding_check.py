"""On a CUDA GPU: evaluation.generate's padded batches against each prompt alone, on random TinyLlama
weights of the real shapes in bf16 and fp32 (the toy tokenizer supplies prompt ids of mixed lengths).

    python benchmarks/gpu_padding_check.py

Prints, per dtype, how many of the responses equal the prompt's response alone and the time of both.
Random weights make near-ties common, so bf16 may differ where fp32 does not: that is the figure.
"""

import sys
import time

import torch


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    from safelora_lite.worlds import toy as tw
    from safelora_lite.evaluation.generation import generate
    from safelora_lite.adapters.model_loading import TINYLLAMA_CHAT, load_model

    world = tw.build_world(tw.WorldConfig.small(), progress=False)
    prompts = [r["prompt"] for r in tw.eval_records(max_per_split=16)]
    for dtype in ("fp32", "bf16"):
        model = load_model(TINYLLAMA_CHAT, "random-real-shapes", dtype=dtype).model.to("cuda").eval()
        start = time.perf_counter()
        together = generate(model, world.tokenizer, prompts, max_new_tokens=16)
        torch.cuda.synchronize()
        t_together = time.perf_counter() - start
        start = time.perf_counter()
        alone = generate(model, world.tokenizer, prompts, max_new_tokens=16, batch_size=1)
        t_alone = time.perf_counter() - start
        same = sum(a == b for a, b in zip(together, alone))
        print(f"{dtype}: {same} of {len(prompts)} padded-batch responses equal the prompt alone; "
              f"{t_together:.1f} s batched vs {t_alone:.1f} s one by one")
        del model
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
