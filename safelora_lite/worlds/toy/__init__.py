"""The toy safety world: a tiny Llama trained from scratch on synthetic data, on a laptop CPU.

    from safelora_lite.worlds import toy as tw
    world = tw.build_world(tw.WorldConfig())                 # tokenizer + base + aligned, cached by config
    adapter = tw.train_attack(world, tw.AttackConfig("mixed"))   # a PEFT adapter folder, cached
    tw.evaluate_adapter(world, adapter)                     # the four rates

`world` holds the data splits, the models and the evaluation; `attacks` the LoRA attacks.
"""

from safelora_lite.worlds.toy.attacks import (
    AttackConfig, attack_records, eval_curve, load_curve, run_is_cached, save_run, train_attack,
)
from safelora_lite.worlds.toy.world import (
    ATTACK_KINDS, EVAL_SPLITS, SPLITS, WORLD_VERSION, ToyWorld, WorldConfig, build_world, clear_cache, eval_records,
    evaluate, evaluate_adapter, load_adapter_model, load_split, load_splits,
)

__all__ = [
    "ATTACK_KINDS", "EVAL_SPLITS", "SPLITS", "WORLD_VERSION", "AttackConfig", "ToyWorld", "WorldConfig", "attack_records",
    "build_world", "clear_cache", "eval_curve", "eval_records", "evaluate", "evaluate_adapter", "load_adapter_model",
    "load_curve", "load_split", "load_splits", "run_is_cached", "save_run", "train_attack",
]
