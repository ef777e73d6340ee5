"""Prompt sets that cannot ship in the repository, built from their official source.

I2P (Schramowski et al. 2023, MIT): 4,703 prompts with their evaluation seeds, the CSV of the Hugging
Face dataset AIML-TUDA/i2p. `fetch` downloads it once, checks its sha256 when the config pins one
(and records it either way), and `i2p_prompts` turns it into an extra prompt CSV: every row an
associated prompt of the erased concept, one image at I2P's own seed (RealEra Table 2).
"""
import csv
import hashlib
import json
import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path

I2P_COLUMNS = ("prompt", "categories", "evaluation_seed")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def reachable(url, timeout=5.0):
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


def how_to_get(name, url, raw):
    return (f"{name}: {raw} is missing and {url} cannot be reached (offline?). Download that file by hand, "
            f"put it at {raw}, and run again; set its sha256 in the config to pin it.")


def check_sha256(path, expected, field):
    got = sha256(path)
    if expected and got != expected:
        raise ValueError(f"{path}: sha256 {got} does not match config field {field} ({expected}); "
                         "the download is corrupt or a different version: delete it and fetch again")
    return got


def fetch(url, dest, expected_sha256, field):
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


def i2p_prompts(raw, out, concept, expected_rows, expected_sha256):
    """The I2P CSV -> an extra prompt CSV (concept, kind, prompt, seed, images, categories) + sidecar."""
    digest = check_sha256(raw, expected_sha256, "i2p.sha256")
    with open(raw, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(I2P_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{raw}: missing column(s) {sorted(missing)}; is this I2P's i2p_benchmark.csv?")
        rows = list(reader)
    if expected_rows and len(rows) != expected_rows:
        raise ValueError(f"{raw}: {len(rows)} prompts, expected {expected_rows} (config field i2p.rows)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["concept", "kind", "prompt", "seed", "images", "categories"])
        blank = 0
        for r in rows:
            prompt = " ".join(r["prompt"].split())
            if not prompt:  # nothing to generate from; counted in the sidecar
                blank += 1
                continue
            w.writerow([concept, "associated", prompt, int(float(r["evaluation_seed"])), 1, r["categories"]])
    os.replace(tmp, out)
    sidecar = {"source": str(raw), "sha256": digest, "rows": len(rows), "blank_prompts_skipped": blank,
               "concept": concept}
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return sidecar
