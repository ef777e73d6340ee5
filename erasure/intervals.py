"""95% intervals for the erasure metrics.

Two kinds, as the protocol (docs/protocol.md) says:
  * Wilson score interval for one proportion over images (one concept's Acc_e, Acc_s, Acc_g, Acc_sg).
  * A two-stage bootstrap over prompts and seeds for what is not one proportion: H_o, and averages over
    concepts. Each replicate draws a group's prompts with replacement, and within each prompt its images
    (one per seed) with replacement, then recomputes the statistic; the interval is the 2.5th and 97.5th
    percentile of the replicates. Images of one prompt are correlated (same text), so resampling prompts
    as well as seeds gives the wider, honest interval.
"""
import math

import numpy as np

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of k successes out of n, in percent; (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At k = 0 (or n) the formula's lower (upper) bound is exactly 0 (1); set it so rounding cannot move it.
    lo = 0.0 if k == 0 else 100 * (centre - half)
    hi = 100.0 if k == n else 100 * (centre + half)
    return lo, hi


def prompt_replicates(prompts: list[list[int]], rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap replicates [n_boot] of the pooled accuracy (percent) of one group of prompts.

    `prompts` holds, per prompt, the 0/1 labels of its images. A replicate draws len(prompts) prompts with
    replacement and, for each prompt, its images with replacement; the accuracy pools the drawn images.
    A prompt drawn twice in one replicate reuses that replicate's draw of its images (a cheaper variant of
    the two-stage scheme that keeps its variance within a few percent for the group sizes here)."""
    if not prompts:
        return np.full(n_boot, np.nan)
    sizes = np.array([len(p) for p in prompts])
    # Per prompt: the number correct in each replicate's resample of its images.
    correct = np.stack([rng.binomial(len(p), np.mean(p), size=n_boot) if len(p) else np.zeros(n_boot)
                        for p in prompts])  # [P, B]
    picks = rng.integers(0, len(prompts), size=(n_boot, len(prompts)))  # [B, P]
    drawn_correct = np.take_along_axis(correct.T, picks, axis=1).sum(axis=1)
    drawn_images = sizes[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100 * drawn_correct / drawn_images


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)
