"""Training-step time of SaLoRA vs vanilla LoRA at the same rank on the toy aligned model.

Both run the same step (`safelora_lite.training.sft.optimizer_step`, as the trainer does) on the same pre-collated batches,
at the same rank, alpha and modules.
SaLoRA's extra work per step is C B = B - V_s (V_s^T B) for each module (O(d_out r_s r)).
Runs alternate (LoRA, SaLoRA, LoRA, ...) so that a noisy shared machine hurts both alike; the
ratio of the medians is printed. Target: <= 1.2.

    python benchmarks/salora_step_time.py [--small] [--steps 20] [--repeats 5]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from safelora_lite.methods.salora import model as salora  # noqa: E402
from safelora_lite.methods.salora import train as salora_train  # noqa: E402
from safelora_lite.worlds import toy as tw  # noqa: E402
from safelora_lite.training.sft import collate, encode_records, optimizer_step  # noqa: E402


def lora_model(world, attack):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=attack.r, lora_alpha=attack.lora_alpha, target_modules=list(attack.target_modules),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(world.load_model("aligned"), lora)


def salora_model(world, attack, inits, config):
    return salora.build_model(world.load_model("aligned"), inits, config)


def seconds_per_step(model, batches, lr: float) -> float:
    """Median time of one AdamW step (forward, backward, clip, step) over pre-collated batches.

    Tokenisation and collation happen before the clock starts, so only the step itself is timed
    (the trainer in training.py adds the same data work to both methods).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98))
    model.train()
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        optimizer_step(model, batch, optimizer, params)
        if i > 0:  # the first step warms up allocators and caches
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small test world (faster, less telling)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--safety-rank", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    world = tw.build_world(tw.WorldConfig.small() if args.small else tw.WorldConfig(), progress=False)
    attack = tw.AttackConfig(kind="mixed")
    records = tw.attack_records(attack)
    encoded = encode_records(world.tokenizer, records)
    pad = world.tokenizer.pad_token_id
    bs = attack.batch_size
    batches = [collate([encoded[(j * bs + k) % len(encoded)] for k in range(bs)], pad) for j in range(args.steps + 1)]
    config = salora.SaLoRAConfig(r=attack.r, lora_alpha=attack.lora_alpha, safety_rank=args.safety_rank,
                                 task_rank=32, target_modules=attack.target_modules)
    inits = salora.prepare(world.load_model("aligned"), salora_train.feature_batches(world.tokenizer, tw.load_split("refusal_train")),
                           salora_train.feature_batches(world.tokenizer, records), config, max_tokens=None)
    times = {"LoRA": [], "SaLoRA": []}
    for _ in range(args.repeats):
        times["LoRA"].append(seconds_per_step(lora_model(world, attack), batches, attack.lr))
        times["SaLoRA"].append(seconds_per_step(salora_model(world, attack, inits, config), batches, attack.lr))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"toy world {'small' if args.small else 'default'}: r={attack.r}, alpha={attack.lora_alpha}, r_s={args.safety_rank}, "
          f"modules={','.join(attack.target_modules)}, batch={attack.batch_size}, {args.steps} steps x {args.repeats} repeats, "
          f"{torch.get_num_threads()} threads")
    for k, v in times.items():
        print(f"  {k:7s} median {1000 * med[k]:.1f} ms/step  (runs: {', '.join(f'{1000 * t:.1f}' for t in v)})")
    ratio = med["SaLoRA"] / med["LoRA"]
    print(f"step-time ratio SaLoRA / LoRA = {ratio:.3f}  ({'within' if ratio <= 1.2 else 'ABOVE'} the 1.2x target)")


if __name__ == "__main__":
    main()
