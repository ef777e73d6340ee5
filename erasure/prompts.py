"""The prompts of a run: the concept table, the evaluation prompt table and the prompt banks.

Concept names and prompts are untrusted text: they are only ever formatted into prompts and turned into
file names through io.slug, never into paths or commands.
"""
import csv
import hashlib
import json
from pathlib import Path

from .errors import ConfigError
from .io import slug

PROMPT_KINDS = ("erase", "preserve", "associated", "coco")
SPLITS = ("tuning", "report")


def split_halves(prompts: list[str]) -> dict[str, str]:
    """{prompt: "tuning" | "report"}: one concept's held-out prompts cut into two halves.

    Settings may be chosen on the tuning half only; the report half is never used for a choice. The
    prompts are ordered by the SHA-256 of their text and dealt alternately (tuning first), so the split
    depends only on which prompts there are, not on their order in the file, and is the same everywhere."""
    ordered = sorted(set(prompts), key=lambda p: hashlib.sha256(p.encode("utf-8")).hexdigest())
    return {p: SPLITS[i % 2] for i, p in enumerate(ordered)}


def load_concepts(path: str | Path) -> dict:
    """{name: {"name", "synonyms", "associated": [{"prompt", ...}]}} from a concepts JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config field concepts_file: no such file {path}")
    try:
        data = json.loads(path.read_text())
        concepts = data["concepts"]
        for name, c in concepts.items():
            if not isinstance(c.get("associated", []), list):
                raise KeyError("associated")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"concepts file {path}: malformed ({e}); expected "
                          '{"concepts": {name: {"name", "synonyms", "associated": [{"prompt"}]}}}') from None
    return concepts


def concept_by_slug(config: dict, concept_slug: str) -> str:
    for name in load_concepts(config["concepts_file"]):
        if slug(name) == concept_slug:
            return name
    raise KeyError(f"no concept with file name {concept_slug!r} in {config['concepts_file']}")


def read_extra_prompts(path: str | Path) -> list[dict]:
    """Rows (concept, prompt, seed, kind) of an extra prompt CSV, checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config field extra_prompts: no such file {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"concept", "prompt", "seed", "kind"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"extra prompt CSV {path}: missing column(s) {sorted(missing)}; "
                              "needs concept, prompt, seed, kind")
        rows = list(reader)
    if not rows:
        raise ConfigError(f"extra prompt CSV {path}: no rows")
    for i, row in enumerate(rows, start=2):
        if row["kind"] not in PROMPT_KINDS:
            raise ConfigError(f"extra prompt CSV {path} line {i}: kind {row['kind']!r} not in {PROMPT_KINDS}")
        if not row["prompt"].strip():
            raise ConfigError(f"extra prompt CSV {path} line {i}: empty prompt")
        try:
            row["seed"] = int(row["seed"])
        except ValueError:
            raise ConfigError(f"extra prompt CSV {path} line {i}: seed {row['seed']!r} is not an integer") from None
        if row.get("images"):  # optional column: images of this prompt (I2P: 1), else generate.images_per_prompt
            if not row["images"].isdigit() or int(row["images"]) < 1:
                raise ConfigError(f"extra prompt CSV {path} line {i}: images {row['images']!r} is not a positive integer")
            row["images"] = int(row["images"])
    return rows


def dataset_prompt_files(config: dict) -> list[str]:
    """The prompt CSVs that data rules build from official sources (I2P, COCO-30k), when enabled."""
    return [config[name]["prompts"] for name in ("i2p", "coco") if config[name]["enabled"]]


def prompt_table(config: dict, datasets: bool = True) -> list[dict]:
    """Every evaluation prompt: dicts with id, concept, kind, prompt, seed (the first image's seed),
    split (held-out associated prompts: "tuning" or "report", see split_halves; other rows "") and, for
    rows that set it, images.

    Built-in rows: the canonical prompt of every concept (kind erase) and its held-out associated
    prompts (kind associated); then the extra CSVs' rows; then I2P's and COCO-30k's when enabled
    (datasets=False leaves them out: their rules may not have built them yet). Image k of a prompt uses
    seed + k.
    """
    concepts = load_concepts(config["concepts_file"])
    rows = []
    for name in concepts:
        rows.append(dict(concept=name, kind="erase", prompt=config["prompt_template"].format(name),
                         seed=config["seed"]))
        for a in concepts[name].get("associated", []):
            rows.append(dict(concept=name, kind="associated", prompt=a["prompt"], seed=config["seed"]))
    extra = list(config["extra_prompts"]) + (dataset_prompt_files(config) if datasets else [])
    for path in extra:
        for r in read_extra_prompts(path):
            rows.append(dict(concept=r["concept"], kind=r["kind"], prompt=r["prompt"], seed=r["seed"]))
            if r.get("images"):
                rows[-1]["images"] = r["images"]
    for concept in {r["concept"] for r in rows}:
        held_out = [r for r in rows if r["concept"] == concept and r["kind"] == "associated"]
        halves = split_halves([r["prompt"] for r in held_out])
        for r in held_out:
            r["split"] = halves[r["prompt"]]
    for i, row in enumerate(rows):
        row["id"] = i
        row.setdefault("split", "")
    return rows


def read_prompt_csv(path: str | Path) -> list[dict]:
    """Rows of a prompts.csv the prompts rule wrote (id and seed as integers)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{**r, "id": int(r["id"]), "seed": int(r["seed"]), "split": r.get("split", "")}
                for r in csv.DictReader(f)]


def prompt_bank(config: dict) -> list[str]:
    """Prompts whose token embeddings span "how prompts vary" for the data sampler and the audit.
    Built from every concept's training names; never from the held-out associated prompts."""
    concepts = load_concepts(config["concepts_file"])
    return [config["prompt_template"].format(s) for c in concepts.values() for s in c.get("synonyms", [c["name"]])]


def preserve_prompts(config: dict, *erased: str) -> list[str]:
    """The preserve prompts: "others" = canonical prompts of every concept not in `erased`."""
    if config["preserve"] == "others":
        names = [n for n in load_concepts(config["concepts_file"]) if n not in erased]
        return [config["prompt_template"].format(n) for n in names]
    return list(config["preserve"])
