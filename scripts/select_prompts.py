"""Protocol v2's prompt selection for the mini world (docs/protocol.md, erasure/selection.py).

Draws every held-out candidate of data/miniworld/candidates.json (100 images each), every anchor
candidate (200 images each) and each concept's canonical prompt (100 images each: does the world draw
its concepts?) with the unedited model, labels them with the oracle, and writes:
  results/miniworld/prompt_selection.{csv,md}   every candidate's rate with its Wilson interval, and
                                                whether the selection meets the protocol
  data/miniworld/concepts.json                  the kept held-out prompts (tuning/report split), only
                                                when it does (else the file in force stays)
The anchor it picks is printed and listed in the .md; config.yaml's `anchor` is set from it by hand.
To try a world that is not the default (say freshly trained weights), pass --config with a YAML that
sets miniworld.weights and --results DIR: both tables and the concepts file then go to DIR.
The selection draws with seeds 10,000,000 + k, never the evaluation's seeds (config seed + k), so no
table reports images its prompts were chosen on. Resumable: drawn images are kept under --out-dir.

    python scripts/select_prompts.py [--images 100] [--anchor-images 200] [--canonical-images 100] [--threads 2]
                                     [--config EXTRA.yaml] [--results DIR]
"""
import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from erasure import cli, io, params  # noqa: E402
from erasure.config import load_config  # noqa: E402
from erasure.generation import generate  # noqa: E402
from erasure.scoring import load_scorer  # noqa: E402
from erasure.selection import (MIN_NONE, MIN_RATE, choose_anchor, choose_held_out, contains_name,  # noqa: E402
                               protocol_met, rate_rows)

DATA = ROOT / "data" / "miniworld"
RESULTS = ROOT / "results" / "miniworld"
SELECTION_SEED = 10_000_000
COMMAND = "python scripts/select_prompts.py"


def candidate_rows(spec, images, anchor_images, canonical_images=0, template="a {}"):
    """Prompt rows to draw: the held-out candidates that do not repeat a training name, the anchors, and
    (a check of the world itself) each concept's canonical prompt."""
    rows = [{"concept": c, "kind": "canonical", "prompt": template.format(c), "images": canonical_images}
            for c in spec["concepts"] if canonical_images]
    for concept, v in spec["concepts"].items():
        for prompt in v["candidates"] if images else []:
            if not contains_name(prompt, v["names"]):
                rows.append({"concept": concept, "kind": "associated", "prompt": prompt, "images": images})
    rows += [{"concept": "", "kind": "anchor", "prompt": p, "images": anchor_images} for p in spec["anchor_candidates"]]
    for i, row in enumerate(rows):
        row.update(id=i, seed=SELECTION_SEED, split="")
    return rows


def draw_and_label(config, rows, out_dir, threads):
    manifest = Path(out_dir) / "images" / "candidates.csv"
    generate(params.generate(config, "original"), rows, None, None, manifest, threads, "prompt selection")
    with open(manifest, newline="", encoding="utf-8") as f:
        images = list(csv.DictReader(f))
    scores = load_scorer(params.score(config)).score([r["file"] for r in images], [], None)
    return [{**r, "label": s["label"]} for r, s in zip(images, scores)]


def rates_by_concept(labelled, spec, kind):
    """{concept: {prompt: rate entry}}: how often each prompt of that kind was drawn as its concept."""
    return {c: rate_rows([r for r in labelled if r["concept"] == c and r["kind"] == kind], c) for c in spec["concepts"]}


def shown(path: Path) -> str:
    """A path as the tables print it: relative to the repository when it is inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def label_shares(entry):
    """"star 60%, none 40%": every label an image of a prompt got, most frequent first."""
    return ", ".join(f"{k} {100 * n / entry['n']:.0f}%" for k, n in sorted(entry["labels"].items(), key=lambda kv: -kv[1]))


def write_tables(spec, rates, held_out, anchor_rates, anchor, problems, results, concepts_file, command,
                 canonical):
    concepts_file = shown(concepts_file)
    table, md = [], ["# Mini world: prompt selection (protocol v2)\n", f"Regenerate: `{command}`\n",
                     f"Unedited model, seeds from {SELECTION_SEED} (never the evaluation's). A held-out candidate is "
                     f"kept when the oracle labels at least {MIN_RATE:.0f}% of its images as its concept and it repeats "
                     f"no training name; the anchor is the candidate labelled none most often (at least {MIN_NONE:.0f}%). "
                     "Rates in %, Wilson 95% intervals.\n",
                     "| concept | candidate | images | rate [95% CI] | kept | split |", "|---|---|---|---|---|---|"]
    for concept, v in spec["concepts"].items():
        kept = {e["prompt"]: e["split"] for e in held_out[concept]}
        for prompt in v["candidates"]:
            if prompt not in rates[concept]:
                why = "repeats a training name" if contains_name(prompt, v["names"]) else "not drawn (--images 0)"
                table.append([concept, prompt, 0, "", "", "", why, ""])
                md.append(f"| {concept} | {prompt} | 0 | - | no: {why} | |")
                continue
            e = rates[concept][prompt]
            verdict = "yes" if prompt in kept else "no"
            table.append([concept, prompt, e["n"], f"{e['rate']:.2f}", f"{e['lo']:.2f}", f"{e['hi']:.2f}", verdict,
                          kept.get(prompt, "")])
            md.append(f"| {concept} | {prompt} | {e['n']} | {e['rate']:.1f} [{e['lo']:.1f}, {e['hi']:.1f}] | {verdict} | "
                      f"{kept.get(prompt, '')} |")
    md += ["\n## Anchor candidates\n", "| anchor | images | labelled none [95% CI] | labels |", "|---|---|---|---|"]
    for prompt, e in sorted(anchor_rates.items(), key=lambda kv: -kv[1]["rate"]):
        labels = label_shares(e)
        table.append(["(anchor)", prompt, e["n"], f"{e['rate']:.2f}", f"{e['lo']:.2f}", f"{e['hi']:.2f}",
                      "yes" if prompt == anchor else "no", ""])
        md.append(f"| {json.dumps(prompt)} | {e['n']} | {e['rate']:.1f} [{e['lo']:.1f}, {e['hi']:.1f}] | {labels} |")
    if any(canonical.values()):
        md += ["\n## Canonical prompts (the world itself: drawn as their concept)\n",
               "| concept | prompt | images | rate [95% CI] | labels |", "|---|---|---|---|---|"]
        for concept, by_prompt in canonical.items():
            for prompt, e in by_prompt.items():
                table.append([concept, prompt, e["n"], f"{e['rate']:.2f}", f"{e['lo']:.2f}", f"{e['hi']:.2f}",
                              "canonical", ""])
                md.append(f"| {concept} | {prompt} | {e['n']} | {e['rate']:.1f} [{e['lo']:.1f}, {e['hi']:.1f}] | "
                          f"{label_shares(e)} |")
    md.append(f"\nAnchor chosen: {json.dumps(anchor) if anchor is not None else f'none reaches {MIN_NONE:.0f}%'}.")
    md.append("\nProtocol v2 " + (f"met: {concepts_file} was written from this selection." if not problems
                                  else f"not met, so {concepts_file} was left as it was: " + "; ".join(problems) + "."))
    io.write_csv(results / "prompt_selection.csv", ["concept", "prompt", "images", "rate", "rate_lo", "rate_hi", "kept",
                                                    "split"], table)
    io.write_text(results / "prompt_selection.md", "\n".join(md) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=100,
                   help="images per held-out candidate (0: draw the anchor candidates only, a first look at a world)")
    p.add_argument("--anchor-images", type=int, default=200, help="images per anchor candidate")
    p.add_argument("--canonical-images", type=int, default=100,
                   help="images per concept's canonical prompt (a check that the world draws its concepts; 0: none)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default=str(ROOT / "outputs" / "miniworld_selection"))
    p.add_argument("--config", action="append", default=[], help="YAML merged over config.yaml (repeatable)")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="where the tables (and, from a world that is not the default, the concepts file) go")
    args = p.parse_args()
    cli.set_threads(args.threads)
    config = load_config([str(ROOT / "config.yaml"), *args.config])
    concepts_file = DATA / "concepts.json" if args.results == RESULTS else args.results / "concepts.json"
    spec = json.loads((DATA / "candidates.json").read_text())
    rows = candidate_rows(spec, args.images, args.anchor_images, args.canonical_images, config["prompt_template"])
    labelled = draw_and_label(config, rows, args.out_dir, args.threads)
    rates, canonical = rates_by_concept(labelled, spec, "associated"), rates_by_concept(labelled, spec, "canonical")
    held_out = choose_held_out({c: [p for p in v["candidates"] if p in rates[c]] for c, v in spec["concepts"].items()},
                               {c: v["names"] for c, v in spec["concepts"].items()}, rates)
    anchor_rates = rate_rows([r for r in labelled if r["kind"] == "anchor"], "none")
    anchor = choose_anchor(anchor_rates)
    problems = protocol_met(held_out, anchor)
    write_tables(spec, rates, held_out, anchor_rates, anchor, problems, args.results, concepts_file,
                 " ".join([COMMAND, *([f"--images {args.images}"] if args.images != 100 else []),
                           *([f"--anchor-images {args.anchor_images}"] if args.anchor_images != 200 else []),
                           *([f"--canonical-images {args.canonical_images}"] if args.canonical_images != 100 else []),
                           *[f"--config {shown(Path(c))}" for c in args.config],
                           *([f"--results {shown(args.results)}"] if args.results != RESULTS else [])]), canonical)
    if not problems:
        concepts = {c: {"name": c, "synonyms": v["names"], "associated": held_out[c]} for c, v in spec["concepts"].items()}
        io.write_text(concepts_file, json.dumps({"templates": spec["templates"], "protocol": 2,
                                                          "concepts": concepts}, indent=1) + "\n")
    for c, kept in held_out.items():
        print(f"{c:9s} {len(kept)} kept: {[e['prompt'] for e in kept]}")
    print(f"anchor: {anchor!r} ({anchor_rates[anchor]['rate']:.1f}% none)" if anchor else "no anchor reaches the bar")
    print("protocol v2 met" if not problems else "protocol v2 not met: " + "; ".join(problems))


if __name__ == "__main__":
    main()
