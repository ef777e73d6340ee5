"""Prompt sets that cannot ship in the repository, built from their official source.

`fetch` downloads a source once, checks its sha256 when the config pins one (and records it either
way); the builders below turn it into an extra prompt CSV with a JSON sidecar.

I2P (Schramowski et al. 2023, MIT): 4,703 prompts with their evaluation seeds, the CSV of the Hugging
Face dataset AIML-TUDA/i2p. Every row becomes an associated prompt of the erased concept, one image at
I2P's own seed (RealEra Table 2).

COCO-30k: 30,000 captions of MS-COCO 2014 val (the official annotations_trainval2014.zip, or its
captions_val2014.json), one caption each of 30,000 images drawn with the config's seed, one image per
caption at a seed drawn alongside (prompt kind `coco`: scored for CLIP score and FID, never for a
concept). A CSV that already lists the captions (columns prompt, evaluation_seed, as the COCO-30k files
of the UCE/MACE repositories) is taken as it is instead, so a paper's exact list can be reused.
"""
import csv
import hashlib
import json
import os
import random
import socket
import urllib.parse
import urllib.request
import zipfile
from collections import defaultdict
from pathlib import Path

from . import io

I2P_COLUMNS = ("prompt", "categories", "evaluation_seed")


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether the source can be reached at all (so an offline run stops before any work)."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path)).is_file()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def how_to_get(name: str, url: str, raw: str | Path) -> str:
    return (f"{name}: {raw} is missing and {url} cannot be reached (offline?). Download that file by hand, "
            f"put it at {raw}, and run again; set its sha256 in the config to pin it.")


def check_sha256(path: str | Path, expected: str | None, field: str) -> str:
    got = sha256(path)
    if expected and got != expected:
        raise ValueError(f"{path}: sha256 {got} does not match config field {field} ({expected}); "
                         "the download is corrupt or a different version: delete it and fetch again")
    return got


def fetch(url: str, dest: str | Path, expected_sha256: str | None, field: str) -> str:
    """Download url to dest (temp file, then rename) and check it; returns its sha256."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
        digest = check_sha256(tmp, expected_sha256, field)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    return digest


def write_prompts(out: str | Path, rows: list[list], sidecar: dict, extra_columns: tuple[str, ...] = ()) -> dict:
    """An extra prompt CSV (concept, kind, prompt, seed, images, *extra_columns) and its JSON sidecar."""
    io.write_csv(out, ["concept", "kind", "prompt", "seed", "images", *extra_columns], rows)
    io.write_json(io.sidecar_path(out), sidecar)
    return sidecar


def read_csv_rows(path: str | Path, needed: set[str], what: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(needed) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; is this {what}?")
        return list(reader)


def i2p_prompts(raw: str | Path, out: str | Path, concept: str, expected_rows: int | None,
                expected_sha256: str | None) -> dict:
    """The I2P CSV -> an extra prompt CSV (concept, kind, prompt, seed, images, categories) + sidecar."""
    digest = check_sha256(raw, expected_sha256, "i2p.sha256")
    rows = read_csv_rows(raw, I2P_COLUMNS, "I2P's i2p_benchmark.csv")
    if expected_rows and len(rows) != expected_rows:
        raise ValueError(f"{raw}: {len(rows)} prompts, expected {expected_rows} (config field i2p.rows)")
    out_rows = []
    for r in rows:
        prompt = " ".join(r["prompt"].split())
        if prompt:  # a blank prompt has nothing to generate from; counted in the sidecar
            out_rows.append([concept, "associated", prompt, int(float(r["evaluation_seed"])), 1, r["categories"]])
    return write_prompts(out, out_rows, {"source": str(raw), "sha256": digest, "rows": len(rows),
                                         "blank_prompts_skipped": len(rows) - len(out_rows), "concept": concept},
                         ["categories"])


def i2p_attack_prompts(raw: str | Path, out: str | Path, concept: str, min_nudity: float, max_prompts: int,
                       expected_sha256: str | None = None) -> dict:
    """A fixed subset of I2P as attack prompts (attacks.prompts_file: concept, prompt): the rows whose
    nudity_percentage is at least `min_nudity`, blank and repeated prompts left out, the first
    `max_prompts` in the file's order; its sidecar records the source, its sha256 and the selection."""
    digest = check_sha256(raw, expected_sha256, "i2p.sha256")
    rows = read_csv_rows(raw, {"prompt", "nudity_percentage"}, "I2P's i2p_benchmark.csv")
    kept, seen = [], set()
    for i, r in enumerate(rows, start=2):
        try:
            nudity = float(r["nudity_percentage"])
        except ValueError:
            raise ValueError(f"{raw} line {i}: nudity_percentage {r['nudity_percentage']!r} is not a number") from None
        prompt = " ".join(r["prompt"].split())
        if nudity >= min_nudity and prompt and prompt not in seen:
            seen.add(prompt)
            kept.append([concept, prompt])
    if not kept:
        raise ValueError(f"{raw}: no prompt has nudity_percentage >= {min_nudity}; lower --min-nudity")
    io.write_csv(out, ["concept", "prompt"], kept[:max_prompts])
    sidecar = {"source": str(raw), "sha256": digest, "rows": len(rows), "min_nudity_percentage": min_nudity,
               "eligible": len(kept), "kept": min(len(kept), max_prompts), "concept": concept}
    io.write_json(io.sidecar_path(out), sidecar)
    return sidecar


COCO_CAPTIONS = "annotations/captions_val2014.json"


def coco_captions(raw: str | Path) -> dict[int, list[str]]:
    """{image id: [its captions, in annotation order]} from the annotations zip or captions_val2014.json."""
    raw = Path(raw)
    try:
        if zipfile.is_zipfile(raw):
            with zipfile.ZipFile(raw) as z:
                data = json.loads(z.read(COCO_CAPTIONS))
        else:
            data = json.loads(raw.read_text(encoding="utf-8"))
        annotations = sorted(data["annotations"], key=lambda a: a["id"])
        by_image = defaultdict(list)
        for a in annotations:
            by_image[int(a["image_id"])].append(" ".join(a["caption"].split()))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{raw}: not COCO's captions ({e!r}); expected annotations_trainval2014.zip "
                         f"(with {COCO_CAPTIONS}) or captions_val2014.json") from None
    return by_image


def coco_prompts(raw: str | Path, out: str | Path, expected_rows: int | None, seed: int,
                 expected_sha256: str | None) -> dict:
    """COCO captions -> an extra prompt CSV of kind coco (concept empty, one image each) + sidecar."""
    digest = check_sha256(raw, expected_sha256, "coco.sha256")
    if Path(raw).suffix.lower() == ".csv":   # a ready list (UCE/MACE's coco_30k.csv): taken as it is
        rows = read_csv_rows(raw, ("prompt", "evaluation_seed"), "a COCO-30k caption list")
        out_rows = [["", "coco", " ".join(r["prompt"].split()), int(float(r["evaluation_seed"])), 1,
                     r.get("coco_id") or r.get("image_id", "")] for r in rows]
        out_rows = out_rows[:expected_rows]
    else:
        captions = coco_captions(raw)
        if expected_rows > len(captions):
            raise ValueError(f"{raw}: {len(captions)} images with captions, fewer than config field coco.rows "
                             f"({expected_rows})")
        rng = random.Random(seed)
        out_rows = [["", "coco", rng.choice(captions[i]), rng.randrange(2 ** 31), 1, i]
                    for i in rng.sample(sorted(captions), expected_rows)]
    if len(out_rows) < expected_rows:
        raise ValueError(f"{raw}: {len(out_rows)} captions, expected {expected_rows} (config field coco.rows)")
    return write_prompts(out, out_rows, {"source": str(raw), "sha256": digest, "rows": len(out_rows),
                                         "seed": seed}, ["coco_id"])
