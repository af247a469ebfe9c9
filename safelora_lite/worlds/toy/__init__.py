"""The toy safety world: a tiny Llama trained from scratch on synthetic data, on a laptop CPU.

    from safelora_lite.worlds import toy as tw
    world = tw.build_world(tw.WorldConfig())                   # tokenizer + base + aligned, cached by config
    folder = world.train_attack(tw.AttackConfig(kind="mixed"))   # a PEFT adapter folder, cached
    world.evaluate(folder)                                    # the four rates

`world` holds the world (models, runs, evaluation), `splits` the data, `attacks` the attack settings.
"""

from safelora_lite.worlds.toy.attacks import ATTACK_KINDS, AttackConfig, attack_records
from safelora_lite.worlds.toy.splits import HELD_OUT, SPLITS, WORLD_VERSION, complies, eval_records, load_split, load_splits
from safelora_lite.worlds.toy.world import WORLD_SIZES, ToyWorld, WorldConfig, build_world, clear_cache, world_config

__all__ = [
    "ATTACK_KINDS", "HELD_OUT", "SPLITS", "WORLD_SIZES", "WORLD_VERSION", "AttackConfig", "ToyWorld", "WorldConfig", "attack_records",
    "build_world", "clear_cache", "complies", "eval_records", "load_split", "load_splits", "world_config",
]
