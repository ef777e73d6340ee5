"""Does a cheaper way of drawing (a solver at fewer steps, the UNet in bfloat16) give the unedited
model's table the reference draws?

The protocol (docs/protocol.md, "Image counts and seeds") adopts a cheaper setting only if, on the world
the tables are drawn with, every prompt of the unedited model's table (each concept's canonical prompt
and every held-out prompt, 200 images each) agrees with the reference (25-step float32 DDIM): the two
Wilson 95% intervals of that prompt's accuracy overlap. Overlap is a loose test for one prompt (it
passes differences up to about 1.4 times the larger half-width), and so it stays meaningful over
the ~60 prompts of a table without a multiple-comparison correction; a setting that moves many prompts a
little shows in the mean absolute difference, which is reported beside it.
"""
import csv
from pathlib import Path


def read_prompt_rates(per_prompt: str | Path, method: str = "original") -> dict[str, dict]:
    """prompt -> {concept, kind, acc, acc_lo, acc_hi, n} for one method of a report's per_prompt.csv."""
    with open(per_prompt, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == method]
    if not rows:
        raise ValueError(f"{per_prompt}: no rows of method {method!r}; give the per_prompt.csv of an "
                         f"original-only run (configs/miniworld_original.yaml)")
    return {r["prompt"]: {"concept": r["concept"], "kind": r["kind"], "acc": float(r["acc"]),
                          "acc_lo": float(r["acc_lo"]), "acc_hi": float(r["acc_hi"]), "n": int(r["n"])}
            for r in rows}


def overlap(a: dict, b: dict) -> bool:
    return a["acc_lo"] <= b["acc_hi"] and b["acc_lo"] <= a["acc_hi"]


def compare(reference: dict[str, dict], candidate: dict[str, dict]) -> dict:
    """Per prompt, whether the candidate's interval overlaps the reference's; the verdict needs the same
    prompts in both and every one to overlap."""
    missing = sorted(set(reference) ^ set(candidate))
    if missing:
        raise ValueError(f"the two tables draw different prompts ({', '.join(missing[:5])}); draw both with "
                         f"the same concepts file")
    rows = []
    for prompt, ref in reference.items():
        cand = candidate[prompt]
        rows.append({"prompt": prompt, "concept": ref["concept"], "kind": ref["kind"], "reference": ref,
                     "candidate": cand, "difference": cand["acc"] - ref["acc"], "overlap": overlap(ref, cand)})
    disagree = [r["prompt"] for r in rows if not r["overlap"]]
    mean_abs = sum(abs(r["difference"]) for r in rows) / len(rows)
    return {"rows": rows, "disagree": disagree, "mean_abs_difference": mean_abs, "agrees": not disagree}
