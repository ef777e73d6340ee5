"""Build the Stable Diffusion task concept files (data/sd/*.json) from a benchmark facts file.

    python scripts/build_sd_concepts.py FACTS.json data/sd

FACTS.json holds the public lists the papers use (CIFAR-10 classes and three synonyms each; RealEra's
five celebrities and artists with their associated prompts; MACE's preserved groups). Each concept
file has the format of data/miniworld/concepts.json: name, synonyms, held-out associated prompts.
"""
import json
import sys
from pathlib import Path


def concept(name, associated=(), synonyms=None):
    return {"name": name, "synonyms": synonyms or [name], "associated": [{"prompt": p} for p in associated]}


def write(path, concepts, note):
    data = {"note": note, "templates": ["{name}"], "concepts": {c["name"]: c for c in concepts}}
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{path}: {len(concepts)} concepts")


def main():
    facts = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    template = facts["realera_prompts"]["object"]
    write(out / "cifar10.json",
          [concept(c, [template.format(s) for s in syns], syns) for c, syns in facts["cifar10_synonyms"].items()],
          "CIFAR-10 classes; associated prompts: 'a photo of the {synonym}' (Acc_g), as in MACE/RealEra")
    erased = facts["realera_celebrity_associated"]
    preserved = [n for n in facts["celebrity_preserve_100"] if n not in erased]
    write(out / "celebrities.json", [concept(n, [a]) for n, a in erased.items()] + [concept(n) for n in preserved],
          "RealEra's five celebrities with their associated prompts, then MACE's preserved group")
    erased = facts["realera_artist_associated"]
    preserved = [n for n in facts["artist_preserve_100"] if n not in erased]
    write(out / "artists.json", [concept(n, [a]) for n, a in erased.items()] + [concept(n) for n in preserved],
          "RealEra's five artists with their associated prompts, then MACE's preserved group")


if __name__ == "__main__":
    main()
