"""Worlds by name, as a comparison protocol names them: {"name": "toy", ...settings} or {"name": "real_small", ...}.

The toy world's settings are `worlds.toy.WorldConfig` fields (a protocol without a name is the toy world,
as every protocol before the real small world was); the real small world's are its
`worlds.real.AlignmentConfig` fields.
"""

from safelora_lite.errors import InputError

WORLD_NAMES = ("toy", "real_small")


def build_world(spec: dict, progress: bool = True):
    """The world a protocol's "world" entry names, built (or loaded from the cache)."""
    name = spec.get("name", "toy")
    settings = {k: v for k, v in spec.items() if k != "name"}
    if name == "toy":
        from safelora_lite.worlds.toy import WorldConfig, build_world as build_toy

        return build_toy(WorldConfig(**settings), progress=progress)
    if name == "real_small":
        from safelora_lite.worlds.real import AlignmentConfig, RealWorldConfig, build_world as build_real

        return build_real(RealWorldConfig(AlignmentConfig(**settings)), progress=progress)
    raise InputError(f"unknown world {name!r} in the protocol.", f"use one of: {', '.join(WORLD_NAMES)}.")
