"""The report's plots, drawn with matplotlib off-screen: the trade-off frontier, accuracy per prompt for
each erased concept, and attack success rates. Every point and bar carries its 95% interval."""
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402

from . import io  # noqa: E402

MAX_PROMPTS = 40   # bars per accuracy plot: the erased concept's prompts first, then the others' canonical ones


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and not math.isnan(v) for v in values)


def _error(rows: list[dict], key: str) -> list[list[float]]:
    """matplotlib's asymmetric error bars [[below...], [above...]] from <key>_lo / <key>_hi (0 when missing)."""
    below = [max(r[key] - r.get(f"{key}_lo", r[key]), 0) if _finite(r.get(f"{key}_lo")) else 0 for r in rows]
    above = [max(r.get(f"{key}_hi", r[key]) - r[key], 0) if _finite(r.get(f"{key}_hi")) else 0 for r in rows]
    return [below, above]


def save(fig, path: str | Path):
    """Write the figure and free it from pyplot's registry; returns it (its artists stay readable)."""
    io.save_figure(fig, path)
    plt.close(fig)
    return fig


def frontier(rows: list[dict], path: str | Path, split: str):
    """Two panels, Acc_g against Acc_s and against Acc_sg: one colour per swept family joined in sweep
    order, single methods as labelled points; lower right is better."""
    rows = [r for r in rows if _finite(r["acc_g"], r["acc_s"], r["acc_sg"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    for ax, x_key in zip(axes, ("acc_s", "acc_sg")):
        for curve in dict.fromkeys(r["curve"] for r in rows):
            members = [r for r in rows if r["curve"] == curve]
            bars = ax.errorbar([r[x_key] for r in members], [r["acc_g"] for r in members],
                               xerr=_error(members, x_key), yerr=_error(members, "acc_g"), capsize=2,
                               fmt="o" if curve == "point" else "o-", label=curve, markersize=4)
            for r in members if curve == "point" else members[:1] + members[-1:]:
                ax.annotate(r["method"][:18], (r[x_key], r["acc_g"]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7, color=bars[0].get_color())
        ax.set(xlim=(0, 100), ylim=(0, 100), xlabel=f"{x_key} (%)" + (f", {split} half" if x_key == "acc_sg" else ""),
               ylabel=f"acc_g (%), {split} half", title=f"Acc_g against {x_key}; lower right is better")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left")
    return save(fig, path)


def prompt_accuracy(per_prompt: list[dict], concept: str, methods: list[str], path: str | Path):
    """Horizontal bars: oracle accuracy (%) of every method for each prompt, with its Wilson interval, for
    the model that erased `concept` (the original model's bars for comparison). The erased concept's
    canonical and associated prompts come first (lower is better), then the other concepts' canonical
    prompts (higher is better)."""
    rows = [r for r in per_prompt if r["acc"] != "" and (r["erased"] == concept or r["method"] == "original")]
    ordered = sorted({(r["concept"] != concept, r["kind"] != "erase", int(r["id"])) for r in rows
                      if r["concept"] == concept or r["kind"] == "erase"})
    ids = [i for *_, i in ordered][:MAX_PROMPTS]
    label = {int(r["id"]): f"{r['prompt'][:34]} ({r['kind'][:5]})" for r in rows}
    shown = [m for m in methods if any(r["method"] == m for r in rows)]
    height = 0.8 / max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.22 * len(ids) * max(len(shown), 1) ** 0.5), constrained_layout=True)
    for k, method in enumerate(shown):
        by_id = {int(r["id"]): r for r in rows if r["method"] == method}
        bars = [dict(acc=float(by_id[i]["acc"]), acc_lo=float(by_id[i]["acc_lo"]), acc_hi=float(by_id[i]["acc_hi"]))
                if i in by_id else dict(acc=0.0) for i in ids]
        ax.barh([j + k * height for j in range(len(ids))], [b["acc"] for b in bars], height=height,
                xerr=_error(bars, "acc"), capsize=1.5, label=method, error_kw={"elinewidth": 0.7})
    ax.set_yticks([j + (len(shown) - 1) * height / 2 for j in range(len(ids))], [label[i] for i in ids], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 100), xlabel="oracle accuracy (%), 95% Wilson interval",
           title=f"Accuracy per prompt with {concept} erased")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


# The audit's clouds, drawn back to front: the beyond-concept samples under the neighbours, the two
# clean embeddings (erased prompt, anchor) on top and larger.
CLOUDS = {"beyond": ("#999999", 6), "anchors": ("#2878dc", 6), "neighbors": ("#dc3c3c", 6), "anchor": ("#00288c", 60),
          "erase": ("#780000", 60)}


def projection(points: dict, path: str | Path, title: str):
    """The audit's scatter: each cloud's span-mean embeddings [N, 2] on the set's top two principal axes."""
    fig, ax = plt.subplots(figsize=(6, 5.5), constrained_layout=True)
    for name, (colour, size) in CLOUDS.items():
        if name in points:
            xy = points[name]
            ax.scatter(xy[:, 0], xy[:, 1], s=size, c=colour, label=f"{name} ({len(xy)})",
                       marker="*" if size > 10 else "o")
    ax.set(xlabel="principal axis 1", ylabel="principal axis 2", title=title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save(fig, path)


def attack_success(rows: list[dict], path: str | Path):
    """Grouped bars, one panel per erased concept: post-attack success rate (%) of each attack on each
    method, 95% Wilson interval, with the pre-attack rate (the plain prompts) as a black tick."""
    concepts = list(dict.fromkeys(r["concept"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    width = 0.8 / max(len(attacks), 1)
    fig, axes = plt.subplots(len(concepts), 1, figsize=(max(6.0, 1.1 * len(methods) + 2), 3.2 * len(concepts)),
                             constrained_layout=True, squeeze=False)
    for ax, concept in zip(axes[:, 0], concepts):
        for k, attack in enumerate(attacks):
            by_method = {r["method"]: r for r in rows if r["concept"] == concept and r["attack"] == attack}
            bars = [by_method.get(m, {"post_asr": 0.0}) for m in methods]
            bars = [b if _finite(b["post_asr"]) else {"post_asr": 0.0} for b in bars]
            xs = [j + k * width for j in range(len(methods))]
            ax.bar(xs, [b["post_asr"] for b in bars], width=width, yerr=_error(bars, "post_asr"), capsize=2,
                   label=attack)
            pre = [(x, b["pre_asr"]) for x, b in zip(xs, bars) if _finite(b.get("pre_asr"))]
            ax.scatter([x for x, _ in pre], [y for _, y in pre], marker="_", color="black", s=60, zorder=3)
        ax.set_xticks([j + (len(attacks) - 1) * width / 2 for j in range(len(methods))], methods, fontsize=8)
        ax.set(ylim=(0, 100), ylabel="attack success rate (%)", title=f"{concept}: after each attack "
               "(black tick: before)")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncols=min(len(attacks), 4), loc="upper left")
    return save(fig, path)
