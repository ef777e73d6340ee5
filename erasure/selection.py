"""Protocol v2's prompt selection (docs/protocol.md): which held-out prompts and which anchor the mini
world's tables use, chosen by what the unedited model draws rather than by what a text encoder says.

  * A held-out candidate must not contain a training name of its concept as whole words (else it is a
    canonical prompt in disguise), and the oracle must label the unedited model's images of it as the
    concept at least `min_rate` of the time (Six-CD filters its prompts the same way: a prompt that does
    not trigger the concept before erasure cannot show it after).
  * The anchor is the candidate whose images the oracle labels "none" most often; it qualifies at
    `min_none` or more. An anchor drawn as a concept would make that concept's erasure unmeasurable.
"""
import re

from .intervals import wilson
from .prompts import split_halves

MIN_RATE = 50.0   # % of the unedited model's images labelled as the concept
MIN_NONE = 80.0   # % of the anchor's images labelled none of the concepts
MIN_PROMPTS, MIN_CONCEPTS = 3, 7   # held-out prompts per concept, for this many of the concepts


def contains_name(prompt: str, names: list[str]) -> bool:
    """Whether any training name appears in the prompt as whole words ("a gold star" has "star";
    "a starfish" does not)."""
    words = re.findall(r"[a-z]+", prompt.lower())
    text = " " + " ".join(words) + " "
    return any(" " + " ".join(re.findall(r"[a-z]+", n.lower())) + " " in text for n in names)


def rate_rows(score_rows: list[dict], target: str) -> dict[str, dict]:
    """{prompt: {n, k, rate, lo, hi, labels}}: how often the images of each prompt got label `target`
    (a concept, or "none"), with its Wilson interval and the count of every label."""
    out = {}
    for r in score_rows:
        entry = out.setdefault(r["prompt"], {"n": 0, "k": 0, "labels": {}})
        entry["n"] += 1
        entry["k"] += int(r["label"] == target)
        entry["labels"][r["label"]] = entry["labels"].get(r["label"], 0) + 1
    for entry in out.values():
        entry["rate"] = 100 * entry["k"] / entry["n"]
        entry["lo"], entry["hi"] = wilson(entry["k"], entry["n"])
    return out


def choose_held_out(candidates: dict[str, list[str]], names: dict[str, list[str]], rates: dict[str, dict],
                    min_rate: float = MIN_RATE) -> dict[str, list[dict]]:
    """{concept: [{prompt, rate, lo, hi, n, split}]} of the kept held-out prompts, highest rate first;
    each rate is the candidate's own concept's (rates[concept][prompt])."""
    chosen = {}
    for concept, prompts in candidates.items():
        kept = [p for p in prompts if not contains_name(p, names[concept]) and rates[concept][p]["rate"] >= min_rate]
        halves = split_halves(kept)
        chosen[concept] = sorted(({"prompt": p, "split": halves[p], "n": rates[concept][p]["n"],
                                   **{k: round(rates[concept][p][k], 2) for k in ("rate", "lo", "hi")}}
                                  for p in kept), key=lambda e: (-e["rate"], e["prompt"]))
    return chosen


def choose_anchor(anchor_rates: dict[str, dict], min_none: float = MIN_NONE) -> str | None:
    """The anchor candidate drawn as none of the concepts most often, if that reaches min_none."""
    best = max(anchor_rates, key=lambda p: (anchor_rates[p]["rate"], p))
    return best if anchor_rates[best]["rate"] >= min_none else None


def protocol_met(held_out: dict[str, list[dict]], anchor: str | None) -> list[str]:
    """What keeps a selection from protocol v2 ([] when it meets it): an anchor, and MIN_PROMPTS
    held-out prompts for at least MIN_CONCEPTS concepts."""
    problems = [] if anchor is not None else [f"no anchor candidate is labelled none at {MIN_NONE:.0f}% or more"]
    short = sorted(c for c, kept in held_out.items() if len(kept) < MIN_PROMPTS)
    if len(held_out) - len(short) < MIN_CONCEPTS:
        problems.append(f"only {len(held_out) - len(short)} concepts have {MIN_PROMPTS} held-out prompts "
                        f"(need {MIN_CONCEPTS}; short: {', '.join(short)})")
    return problems
