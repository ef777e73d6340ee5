"""The 95% intervals (erasure.intervals), the metrics' interval columns, and the tuning/report split."""
import random

import numpy as np
import pytest

from erasure.intervals import Z95, percentile_interval, prompt_replicates, wilson
from erasure.metrics import average_rows, metrics
from erasure.prompts import split_halves


def wilson_by_quadratic(k, n):
    """The Wilson bounds as the roots of (k/n - p)^2 = z^2 p (1 - p) / n, in percent."""
    z2, phat = Z95 ** 2, k / n
    roots = np.roots([1 + z2 / n, -(2 * phat + z2 / n), phat ** 2])
    return tuple(100 * np.sort(roots.real))


def test_wilson_at_the_ends_and_in_the_middle():
    # k = 0 and k = n: one bound exactly at the end, the other at z^2 / (n + z^2) from it.
    assert wilson(0, 10) == (0.0, pytest.approx(100 * Z95 ** 2 / (10 + Z95 ** 2)))
    assert wilson(10, 10) == (pytest.approx(100 * 10 / (10 + Z95 ** 2)), 100.0)
    assert wilson(0, 10)[1] == pytest.approx(27.75, abs=0.01)
    assert wilson(5, 10) == (pytest.approx(23.66, abs=0.01), pytest.approx(76.34, abs=0.01))
    for k, n in [(1, 7), (37, 200), (199, 200), (3, 1000)]:
        assert wilson(k, n) == pytest.approx(wilson_by_quadratic(k, n), abs=1e-9)
    lo, hi = wilson(0, 0)
    assert np.isnan(lo) and np.isnan(hi)


def test_bootstrap_is_reproducible_for_a_seed_and_changes_with_it():
    prompts = [[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1], [0, 1, 0, 0, 1]]
    a = prompt_replicates(prompts, np.random.default_rng(7), 500)
    b = prompt_replicates(prompts, np.random.default_rng(7), 500)
    c = prompt_replicates(prompts, np.random.default_rng(8), 500)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (500,) and np.all((a >= 0) & (a <= 100))


def test_bootstrap_of_constant_labels_has_no_width_and_empty_is_nan():
    assert percentile_interval(prompt_replicates([[1, 1], [1, 1, 1]], np.random.default_rng(0), 200)) == (100.0, 100.0)
    lo, hi = percentile_interval(prompt_replicates([], np.random.default_rng(0), 200))
    assert np.isnan(lo) and np.isnan(hi)


def test_bootstrap_over_prompts_is_wider_than_wilson_when_prompts_disagree():
    # Ten prompts drawn always, ten never: 50% over 400 images, but the prompts, not the seeds, vary.
    prompts = [[1] * 20] * 10 + [[0] * 20] * 10
    lo, hi = percentile_interval(prompt_replicates(prompts, np.random.default_rng(0), 4000))
    w_lo, w_hi = wilson(200, 400)
    assert lo < 50 < hi
    assert hi - lo > 3 * (w_hi - w_lo)
    # Same 50% with every prompt at 50%: only the seeds vary, and the bootstrap is close to Wilson.
    mixed = [[1, 0] * 10] * 20
    lo, hi = percentile_interval(prompt_replicates(mixed, np.random.default_rng(0), 4000))
    assert 0.7 * (w_hi - w_lo) < hi - lo < 1.5 * (w_hi - w_lo)


def synthetic_scores(seed, p_erase=0.1, p_other=0.9):
    rng = random.Random(seed)
    rows, pid = [], 0
    for concept in ("heart", "ring", "star"):
        for kind, n_prompts in (("erase", 1), ("associated", 4)):
            for _ in range(n_prompts):
                p = p_erase if concept == "heart" else p_other
                rows += [{"id": str(pid), "concept": concept, "kind": kind, "correct": str(int(rng.random() < p))}
                         for _ in range(30)]
                pid += 1
    return rows


def test_metrics_rows_carry_intervals_and_split_columns():
    rows = synthetic_scores(0)
    held_out = sorted({int(r["id"]) for r in rows if r["kind"] == "associated"})
    splits = {i: ("tuning" if j % 2 == 0 else "report") for j, i in enumerate(held_out)}
    m = metrics(rows, "heart", splits, seed=3)
    for key in ("acc_e", "acc_s", "acc_g", "acc_sg", "acc_g_tuning", "acc_g_report", "h_o"):
        assert m[f"{key}_lo"] <= m[key] <= m[f"{key}_hi"], key
    heart_tuning = [int(r["correct"]) for r in rows if r["concept"] == "heart" and splits.get(int(r["id"])) == "tuning"]
    assert m["acc_g_tuning"] == pytest.approx(100 * sum(heart_tuning) / len(heart_tuning))
    assert (m["acc_e_lo"], m["acc_e_hi"]) == wilson(sum(int(r["correct"]) for r in rows if r["id"] == "0"), 30)
    assert metrics(rows, "heart", splits, seed=3)["h_o_lo"] == m["h_o_lo"]   # seeded


def test_average_interval_covers_the_average_and_is_seeded():
    per_concept = [{"method": "cf", "concept": c, **metrics(synthetic_scores(i), "heart", {}, seed=1)}
                   for i, c in enumerate(("heart", "ring"))]
    (avg,) = average_rows(per_concept, ["cf"], seed=5)
    for key in ("acc_e", "acc_g", "h_o"):
        assert avg[f"{key}_lo"] <= avg[key] <= avg[f"{key}_hi"], key
    assert avg["acc_e"] == pytest.approx((per_concept[0]["acc_e"] + per_concept[1]["acc_e"]) / 2)
    assert average_rows(per_concept, ["cf"], seed=5)[0]["h_o_hi"] == avg["h_o_hi"]


def test_split_halves_are_disjoint_balanced_and_independent_of_order():
    prompts = [f"prompt number {i}" for i in range(7)]
    halves = split_halves(prompts)
    assert set(halves) == set(prompts) and set(halves.values()) == {"tuning", "report"}
    counts = [list(halves.values()).count(s) for s in ("tuning", "report")]
    assert counts == [4, 3]
    shuffled = prompts[:]
    random.Random(1).shuffle(shuffled)
    assert split_halves(shuffled) == halves


def test_h_o_is_not_a_number_without_held_out_prompts():
    import math
    from erasure.metrics import harmonic_overall, harmonic_overall_array
    assert math.isnan(harmonic_overall(0.0, 100.0, float("nan")))      # no data: n/a, not 0
    assert harmonic_overall(100.0, 90.0, 0.0) == 0.0                    # nothing erased: 0
    assert harmonic_overall(0.0, 100.0, 0.0) == pytest.approx(100.0)
    got = harmonic_overall_array(np.array([0.0, 100.0]), np.array([100.0, 90.0]), np.array([np.nan, 0.0]))
    assert np.isnan(got[0]) and got[1] == 0.0


def _per_prompt(path, rates):
    """A per_prompt.csv of an original-only run: prompt -> (k correct, n images)."""
    from erasure import io
    rows = []
    for prompt, (k, n) in rates.items():
        lo, hi = wilson(k, n)
        rows.append(["original", "heart", "associated", prompt, n, 100 * k / n, lo, hi])
    io.write_csv(path, ["method", "concept", "kind", "prompt", "n", "acc", "acc_lo", "acc_hi"], rows)
    return path


def test_a_cheaper_sampler_agrees_only_if_every_prompt_overlaps(tmp_path):
    from erasure.agreement import compare, read_prompt_rates
    ref = read_prompt_rates(_per_prompt(tmp_path / "ref.csv", {"a love symbol": (180, 200), "I love you": (100, 200)}))
    # 170/200 = 85% [79.4, 89.3] overlaps 90% [85.1, 93.4]; 70/200 = 35% [28.7, 41.8] misses 50% [43.1, 56.9].
    near = read_prompt_rates(_per_prompt(tmp_path / "near.csv", {"a love symbol": (170, 200), "I love you": (110, 200)}))
    far = read_prompt_rates(_per_prompt(tmp_path / "far.csv", {"a love symbol": (180, 200), "I love you": (70, 200)}))
    res = compare(ref, near)
    assert res["agrees"] and res["mean_abs_difference"] == pytest.approx(5.0)
    res = compare(ref, far)
    assert not res["agrees"] and res["disagree"] == ["I love you"]
    assert res["mean_abs_difference"] == pytest.approx(7.5)
    other = read_prompt_rates(_per_prompt(tmp_path / "other.csv", {"a love symbol": (180, 200)}))
    with pytest.raises(ValueError, match="different prompts"):
        compare(ref, other)
