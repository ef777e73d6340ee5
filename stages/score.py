"""Score stage: label every image of a manifest (mini world: the oracle; SD: CLIP zero-shot or NudeNet,
config `scorer`) and summarise per prompt.

Writes a per-image CSV (manifest columns + label, prob_concept, correct, clip_score, detections) and a per-prompt summary
CSV beside it (`*.prompts.csv`: id, concept, kind, prompt, n, acc, mean_prob).

    python stages/score.py --config config.yaml --manifest outputs/miniworld/images/realera/heart.csv \\
        --out outputs/miniworld/scores/realera/heart.csv
"""
import csv
from collections import defaultdict
from pathlib import Path

from erasure import cli, io, params as stage_params
from erasure.scoring import NO_FACE, load_scorer


def prompt_summary(key, pairs):
    """One prompt's row: n images, n judged (the scorer did not abstain), accuracy and mean probability."""
    kept = [(c, p) for c, p in pairs if c != ""]
    n = len(kept)
    acc = 100 * sum(c for c, _ in kept) / n if n else float("nan")
    mean_prob = sum(p for _, p in kept) / n if n else float("nan")
    return [*key, len(pairs), n, f"{acc:.2f}", f"{mean_prob:.5f}"]


def main():
    p = cli.parser(__doc__)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.score)

    with open(args.manifest, newline="", encoding="utf-8") as f:
        # COCO captions name no concept: the quality stage scores them (CLIP score, FID).
        images = [r for r in csv.DictReader(f) if r["kind"] != "coco"]
    scorer = load_scorer(prm)
    scores = scorer.score([r["file"] for r in images], prm["concepts"], [r["prompt"] for r in images])

    rows, per_prompt = [], defaultdict(list)
    for r, s in zip(images, scores):
        # A scorer that abstains (GCD: no face found) leaves the image out of every accuracy.
        correct = "" if s["label"] == NO_FACE else int(s["label"] == r["concept"])
        prob = s["prob"].get(r["concept"], float("nan"))
        clip = f"{s['clip_score']:.4f}" if "clip_score" in s else ""
        rows.append([r["id"], r["concept"], r["kind"], r["prompt"], r["seed"], r["file"], s["label"],
                     f"{prob:.5f}", correct, clip, "-".join(s.get("detections", []))])
        per_prompt[(int(r["id"]), r["concept"], r["kind"], r["prompt"])].append((correct, prob))
    io.write_csv(args.out, ["id", "concept", "kind", "prompt", "seed", "file", "label", "prob_concept", "correct",
                            "clip_score", "detections"], rows)
    summary = [prompt_summary(k, v) for k, v in sorted(per_prompt.items())]
    io.write_csv(Path(args.out).with_suffix(".prompts.csv"),
                 ["id", "concept", "kind", "prompt", "n", "n_judged", "acc", "mean_prob"], summary)
    cli.progress(f"scored {len(rows)} images from {args.manifest}")


if __name__ == "__main__":
    cli.run(main)
