"""The prompts of a run: the concept table, the evaluation prompt table and the prompt banks.

Concept names and prompts are untrusted text: they are only ever formatted into prompts and turned into
file names through io.slug, never into paths or commands.
"""
import csv
import functools
import hashlib
import io
import json
from pathlib import Path

from .errors import ConfigError
from .io import slug

PROMPT_KINDS = ("erase", "preserve", "associated", "coco")
SPLITS = ("tuning", "report")
CSV_COLUMNS = ("concept", "prompt", "seed", "kind")
# Optional: images (this prompt's image count); categories and coco_id, kept from I2P and COCO-30k.
CSV_OPTIONAL = ("images", "categories", "coco_id")
MAX_SEED = 2 ** 32 - 1       # image k draws with seed + k; torch and numpy both take seeds below 2**64
MAX_IMAGES = 100_000         # per prompt: the papers draw at most a few hundred


def read_text(path: Path, what: str) -> str:
    """A user's text file as UTF-8 (a byte-order mark, as spreadsheets write, is dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                          "save it as UTF-8") from None


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
        data = json.loads(read_text(path, "concepts file"))
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
    """Rows (concept, prompt, seed, kind) of an extra prompt CSV, checked. A config check reads each file
    several times (and I2P's has thousands of rows), so a file is parsed once until it changes."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config field extra_prompts: no such file {path}")
    stat = path.stat()
    return [dict(row) for row in _parse_extra_prompts(str(path), stat.st_mtime_ns, stat.st_size)]


@functools.lru_cache(maxsize=16)
def _parse_extra_prompts(name: str, mtime_ns: int, size: int) -> tuple[dict, ...]:
    """read_extra_prompts' work, cached by the file's name, time and size (a failure is not cached)."""
    path = Path(name)
    reader = csv.DictReader(io.StringIO(read_text(path, "extra prompt CSV"), newline=""))
    columns = reader.fieldnames or []
    missing = set(CSV_COLUMNS) - set(columns)
    if missing:
        raise ConfigError(f"extra prompt CSV {path}: missing column(s) {sorted(missing)}; "
                          "needs concept, prompt, seed, kind")
    unknown = [c for c in columns if c not in CSV_COLUMNS + CSV_OPTIONAL]
    if unknown:
        raise ConfigError(f"extra prompt CSV {path}: unknown column(s) {unknown}; the columns are "
                          f"{', '.join(CSV_COLUMNS)} and optionally {', '.join(CSV_OPTIONAL)}")
    rows = list(reader)
    if not rows:
        raise ConfigError(f"extra prompt CSV {path}: no rows")
    for i, row in enumerate(rows, start=2):
        if row["kind"] not in PROMPT_KINDS:
            raise ConfigError(f"extra prompt CSV {path} line {i}: kind {row['kind']!r} not in {PROMPT_KINDS}")
        if not row["prompt"].strip():
            raise ConfigError(f"extra prompt CSV {path} line {i}: empty prompt")
        if not row["seed"].strip().isdecimal() or int(row["seed"]) > MAX_SEED:
            raise ConfigError(f"extra prompt CSV {path} line {i}: seed {row['seed']!r} is not an integer from 0 "
                              f"to {MAX_SEED}")
        row["seed"] = int(row["seed"])
        if row.get("images"):  # optional column: images of this prompt (I2P: 1), else generate.images_per_prompt
            if not row["images"].isdecimal() or not 1 <= int(row["images"]) <= MAX_IMAGES:
                raise ConfigError(f"extra prompt CSV {path} line {i}: images {row['images']!r} is not an integer "
                                  f"from 1 to {MAX_IMAGES}")
            row["images"] = int(row["images"])
    return tuple(rows)


def read_attack_prompts(path: str | Path, concepts: dict) -> dict[str, list[str]]:
    """{concept: [prompt, ...]} from an attack prompt CSV (columns concept, prompt), in file order, checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config field attacks.prompts_file: no such file {path}")
    reader = csv.DictReader(io.StringIO(read_text(path, "attack prompt CSV"), newline=""))
    if set(reader.fieldnames or []) != {"concept", "prompt"}:
        raise ConfigError(f"attack prompt CSV {path}: columns {reader.fieldnames}; needs exactly concept, prompt")
    out = {}
    for i, row in enumerate(reader, start=2):
        if row["concept"] not in concepts:
            raise ConfigError(f"attack prompt CSV {path} line {i}: unknown concept {row['concept']!r}; "
                              f"known: {sorted(concepts)}")
        prompt = " ".join((row["prompt"] or "").split())
        if not prompt:
            raise ConfigError(f"attack prompt CSV {path} line {i}: empty prompt")
        if prompt in out.get(row["concept"], []):
            raise ConfigError(f"attack prompt CSV {path} line {i}: {prompt!r} is listed twice for {row['concept']!r}")
        out.setdefault(row["concept"], []).append(prompt)
    if not out:
        raise ConfigError(f"attack prompt CSV {path}: no rows")
    return out


def builtin_rows(config: dict, concepts: dict) -> list[dict]:
    """The canonical prompt of every concept (kind erase) and its held-out associated prompts."""
    rows = []
    for name in concepts:
        rows.append(dict(concept=name, kind="erase", prompt=config["prompt_template"].format(name),
                         seed=config["seed"]))
        for a in concepts[name].get("associated", []):
            rows.append(dict(concept=name, kind="associated", prompt=a["prompt"], seed=config["seed"]))
    return rows


def check_duplicates(config: dict, concepts: dict) -> None:
    """A prompt listed twice (same concept, kind, prompt and seed) draws the same images twice and counts
    them twice in every metric: each extra CSV row must be new."""
    seen = {}
    for r in builtin_rows(config, concepts):
        seen.setdefault((r["concept"], r["kind"], r["prompt"], r["seed"]),
                        f"the built-in {r['kind']} prompt of {r['concept']!r}")
    for path in config["extra_prompts"]:
        for i, r in enumerate(read_extra_prompts(path), start=2):
            key = (r["concept"], r["kind"], r["prompt"], r["seed"])
            if key in seen:
                raise ConfigError(f"extra prompt CSV {path} line {i}: {r['prompt']!r} ({r['kind']}, seed {r['seed']}) "
                                  f"repeats {seen[key]}; remove the row or give it another seed")
            seen[key] = f"line {i} of {path}"


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
    rows = builtin_rows(config, load_concepts(config["concepts_file"]))
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
