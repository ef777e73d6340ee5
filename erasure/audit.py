"""The audit of an embedding set: what mining asked for, what it accepted, and where the samples landed.

audit.md has requested vs accepted counts and acceptance rates; text histograms of distance (against
D1, D2) and cosine (against S2, S1); for a sample of mined neighbours, the nearest prompts of a prompt
bank (span-mean cosine); and projection_p<i>.png, a 2-D PCA projection of the erase, neighbour, anchor
and beyond-concept clouds.
"""
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from . import embedding_set, io, plots
from .world import load_text_encoder


def histogram(values: torch.Tensor, lo: float, hi: float, marks: dict, bins: int = 20, width: int = 40) -> str:
    counts = torch.histc(values, bins=bins, min=lo, max=hi)
    lines = []
    for i, c in enumerate(counts.tolist()):
        left = lo + (hi - lo) * i / bins
        right = lo + (hi - lo) * (i + 1) / bins
        tag = " ".join(f"<{name}" for name, v in marks.items() if left <= v < right)
        lines.append(f"  {left:8.3f} | {'#' * int(width * c / max(counts.max().item(), 1)):<{width}} {int(c):5d} {tag}")
    return "\n".join(lines)


def projection_png(clouds: dict, path: str | Path, title: str) -> None:
    """Scatter of the span-mean embeddings of each cloud on their top two principal axes."""
    pooled = {k: v.mean(dim=-2) if v.dim() == 3 else v.mean(dim=0, keepdim=True) for k, v in clouds.items()}
    allx = torch.cat(list(pooled.values()))
    mean = allx.mean(0)
    _, _, vh = torch.linalg.svd(allx - mean, full_matrices=False)
    xy = {k: ((v - mean) @ vh[:2].T).numpy() for k, v in pooled.items()}
    plots.projection(xy, path, title)


def audit(embeddings: str | Path, out: str | Path, bank: Sequence[str] = (), sample: int = 5) -> str:
    """Write out/audit.md and the projections for the embedding set `embeddings`; returns the text."""
    prompts, meta = embedding_set.load(embeddings)
    out = Path(out)
    report = [f"# Audit of {embeddings}", "",
              f"sampler {meta['sampler']}, concept {meta['concept']!r}, anchor {meta['anchor']!r}, seed {meta['seed']}",
              f"mining settings: {json.dumps(meta['mining'])}", ""]

    # 1. Counts, acceptance, histograms against the thresholds.
    for i, (entry, info) in enumerate(zip(prompts, meta["prompts"])):
        report.append(f"## prompt {i}: {info['prompt']!r} (span from token {info['span_start']}, {info['span_tokens']} tokens)")
        if "stats" not in info:
            report.append("no mined samples (sampler none)\n")
            continue
        st = info["stats"]
        for k in ("neighbors", "anchors", "beyond"):
            s = st[k]
            report.append(f"- {k}: requested {s['requested']}, token draws {s['drawn']}, accepted {s['accepted']} "
                          f"(rate {s['acceptance_rate']:.3f}); distance {s['distance']}; cosine {s['cosine']}")
        e = entry["erase"]
        for k in ("neighbors", "beyond"):
            d = (entry[k] - e).norm(dim=-1).flatten()
            c = torch.nn.functional.cosine_similarity(entry[k], e.expand_as(entry[k]), dim=-1).flatten()
            report += [f"\n{k}: distance (D1 = {st['d1_abs']:.3f}, D2 = {st['d2_abs']:.3f})", "```",
                       histogram(d, 0.0, st["d2_abs"] * 1.05, {"D1": st["d1_abs"], "D2": st["d2_abs"]}), "```",
                       f"{k}: cosine (S2 = {meta['mining']['s2']}, S1 = {meta['mining']['s1']})", "```",
                       histogram(c, -1.0, 1.0, {"S2": meta["mining"]["s2"], "S1": meta["mining"]["s1"]}), "```"]

        # 2. Nearest prompts of the bank for a few mined neighbours (span-mean cosine).
        if bank:
            encoder, _ = load_text_encoder(meta)
            emb = encoder.encode(bank)
            start, n = info["span_start"], info["span_tokens"]
            bank_vec = torch.nn.functional.normalize(emb[:, start:start + n].mean(1), dim=-1)
            report.append(f"\nnearest bank prompts ({len(bank)} prompts) for {sample} mined neighbours:")
            for j in range(min(sample, len(entry["neighbors"]))):
                v = torch.nn.functional.normalize(entry["neighbors"][j].mean(0), dim=-1)
                top = (bank_vec @ v).topk(min(3, len(bank)))
                report.append(f"- neighbour {j}: " + ", ".join(f"{bank[k]!r} {s:.3f}" for s, k in
                                                                zip(top.values.tolist(), top.indices.tolist())))
        # 3. Projection of the clouds.
        clouds = {k: entry[k] for k in ("neighbors", "anchors", "beyond", "erase", "anchor") if entry[k] is not None}
        projection_png(clouds, out / f"projection_p{i}.png", f"{meta['concept']}: prompt {i}, sampler {meta['sampler']}")
        report.append(f"\nprojection: {out / f'projection_p{i}.png'}\n")
    text = "\n".join(report) + "\n"
    io.write_text(out / "audit.md", text)
    return text

