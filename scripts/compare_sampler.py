"""Compare unedited-model tables drawn with cheaper settings against the reference (docs/protocol.md,
"Image counts and seeds"): a setting is adopted only if every prompt's Wilson interval overlaps the
reference's.

    python scripts/compare_sampler.py --reference REF/report/per_prompt.csv \
        --candidate "bf16, dpmpp_2m_sde, 10 steps=CAND/report/per_prompt.csv" \
        --out results/miniworld/sampler_choice

Each per_prompt.csv comes from an original-only run (configs/miniworld_original.yaml with the setting
merged over it). Writes OUT.md (verdicts, then every prompt side by side) and OUT.csv.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from erasure import io  # noqa: E402
from erasure.agreement import compare, read_prompt_rates  # noqa: E402


def candidate(text):
    name, sep, path = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--candidate {text!r}: write NAME=PATH (a label, then a per_prompt.csv)")
    return name, path


def cell(r):
    return f"{r['acc']:.1f} [{r['acc_lo']:.1f}, {r['acc_hi']:.1f}]"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, help="per_prompt.csv of the 25-step float32 DDIM run")
    p.add_argument("--reference-name", default="DDIM 25 steps, float32")
    p.add_argument("--candidate", action="append", type=candidate, required=True, help="NAME=PATH, repeatable")
    p.add_argument("--out", required=True, help="output stem: writes OUT.md and OUT.csv")
    p.add_argument("--command", default="", help="how the runs were drawn, cited in the .md")
    args = p.parse_args()
    ref = read_prompt_rates(args.reference)
    results = [(name, compare(ref, read_prompt_rates(path))) for name, path in args.candidate]

    md = ["# The sampler and precision the tables are drawn with\n",
          "Unedited model, every canonical and held-out prompt, oracle accuracy in % with its Wilson 95% "
          f"interval. Reference: {args.reference_name}. A setting is adopted only if every prompt's "
          "interval overlaps the reference's (`erasure/agreement.py`).\n"]
    if args.command:
        md.append(f"Drawn with: {args.command}\n")
    md += ["| setting | prompts | disagreeing | mean abs. difference (points) | verdict |", "|---|---|---|---|---|"]
    for name, res in results:
        md.append(f"| {name} | {len(res['rows'])} | {', '.join(res['disagree']) or 'none'} | "
                  f"{res['mean_abs_difference']:.1f} | {'agrees' if res['agrees'] else 'does not agree'} |")
    md += ["", "| concept | kind | prompt | " + " | ".join([args.reference_name] + [n for n, _ in results]) + " |",
           "|---|---|---|" + "---|" * (1 + len(results))]
    table = []
    for i, row in enumerate(results[0][1]["rows"]):
        cands = [res["rows"][i] for _, res in results]
        marks = [cell(c["candidate"]) + ("" if c["overlap"] else " **x**") for c in cands]
        md.append(f"| {row['concept']} | {row['kind']} | {row['prompt']} | {cell(row['reference'])} | "
                  + " | ".join(marks) + " |")
        for (name, _), c in zip(results, cands):
            r, k = c["reference"], c["candidate"]
            table.append([name, c["concept"], c["kind"], c["prompt"], r["acc"], r["acc_lo"], r["acc_hi"],
                          k["acc"], k["acc_lo"], k["acc_hi"], int(c["overlap"])])
    io.write_csv(f"{args.out}.csv", ["setting", "concept", "kind", "prompt", "reference_acc", "reference_acc_lo",
                                     "reference_acc_hi", "acc", "acc_lo", "acc_hi", "overlap"], table)
    io.write_text(f"{args.out}.md", "\n".join(md) + "\n")
    for name, res in results:
        print(f"{name}: {'agrees' if res['agrees'] else 'disagrees on ' + ', '.join(res['disagree'])}; "
              f"mean |difference| {res['mean_abs_difference']:.1f} points")


if __name__ == "__main__":
    main()
