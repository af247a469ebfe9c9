"""How far a rate measured on n prompts can be from the model's true rate: Wilson and Newcombe intervals.

A rate is a share of n prompts (refusals among harmful prompts, ...). Its 95% interval is Wilson's
score interval (Wilson 1927), which stays inside [0, 1] and is sound near 0 and 1 and for small n,
where "p +- 1.96 sqrt(p (1 - p) / n)" is not. The difference of two rates measured on independent
prompt sets gets Newcombe's interval (Newcombe 1998, method 10), built from the two Wilson intervals:
a difference is beyond the prompts' sampling noise when that interval excludes 0.
"""

import math

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def wilson(rate: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (low, high) of a share `rate` of `n` trials ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if rate <= 0 else low), (1.0 if rate >= 1 else high)  # rounding never leaves 0 or 1 outside


def newcombe(rate_a: float, n_a: int, rate_b: float, n_b: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's interval (low, high) of rate_a - rate_b, from the two Wilson intervals."""
    lo_a, hi_a = wilson(rate_a, n_a, z)
    lo_b, hi_b = wilson(rate_b, n_b, z)
    diff = rate_a - rate_b
    return (diff - math.sqrt((rate_a - lo_a) ** 2 + (hi_b - rate_b) ** 2),
            diff + math.sqrt((hi_a - rate_a) ** 2 + (rate_b - lo_b) ** 2))


def interval_text(rate: float, n: int) -> str:
    """"0.85 [0.78, 0.90]": a rate with its 95% Wilson interval."""
    lo, hi = wilson(rate, n)
    return f"{rate:.2f} [{lo:.2f}, {hi:.2f}]"
