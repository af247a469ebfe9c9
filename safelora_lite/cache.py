"""Cache keys: a short digest of everything that determines a cached result (a world, a run)."""

import hashlib
import json


def cache_key(obj) -> str:
    """12 hex digits of the SHA-256 of `obj` as sorted JSON: equal settings, equal key."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]
