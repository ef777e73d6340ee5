"""Generation: N images per evaluation prompt for one model, cached, resumable and shared out over
processes on CPU.

Prompts x seeds are batched with classifier-free guidance in UNet calls of one fixed size (call_size), so an
image depends on its prompt and seed, not on its batch; image k of a prompt uses
seed + k, so every method sees the same noise. Images go to a cache directory named by a hash of the
edit and the generation settings; finished images are skipped, so a killed run resumes where it
stopped. On CPU a job given N threads draws with N one-thread processes (see cpu_workers). On a
cluster a set can be split into shards, one job each (every n-th batch), gathered into one manifest.
"""
import ctypes
import hashlib
import json
import multiprocessing
import signal
import sys
from pathlib import Path

import torch
from PIL import Image

from . import cli, io, placeholders
from .edits import apply_edit, fingerprint
from .io import slug
from .progress import Progress
from .sampling import sample, solver
from .truncation import check_lengths
from .world import World, load_world_from_params

MANIFEST_COLUMNS = ["id", "concept", "kind", "prompt", "seed", "file"]


def select_prompts(rows: list[dict], concept: str, associated_of: list[str] | None, other_associated: bool,
                   splits: list[str]) -> list[dict]:
    """The prompt rows a model draws. Acc_e, Acc_s and Acc_g need only the erased concepts' associated
    prompts and every canonical one; `associated_of` names the concepts whose associated prompts to draw
    (a SepME set), else with other_associated false only `concept`'s ('all': the unedited model, every row).
    Held-out prompts of a half not in `splits` are left out (a tuning sweep never draws the report half)."""
    rows = [r for r in rows if not r.get("split") or r["split"] in splits]
    if associated_of:
        return [r for r in rows if r["kind"] != "associated" or r["concept"] in associated_of]
    if concept != "all" and not other_associated:
        return [r for r in rows if r["kind"] != "associated" or slug(r["concept"]) == concept]
    return rows


def image_jobs(prm: dict, prompt_rows: list[dict], deltas: str | None, lora: str | None,
               out: str | Path, tokens: str | None = None, erased: list[str] | None = None) -> list[tuple[dict, int, Path]]:
    """Every (prompt row, seed, png path) of a manifest. The cache directory beside `out` is keyed by
    what changes pixels only: the model, the sampler and the rows per UNet call (call_size; the image
    count does not: image k uses seed + k); file names hash the prompt text, so adding or reordering
    prompts never reuses another prompt's image. `erased`: the concepts this model erases (set_erased),
    whose prompts get the full image count when generate.images_per_preserved is set."""
    g = prm["generate"]
    counts = [(row, images_for(row, g, erased)) for row in prompt_rows]
    pixels = {"model": prm[prm["world"]], "steps": g["steps"], "guidance": g["guidance"], "eta": g["eta"],
              "sampler": g["sampler"], "rows_per_call": call_size(g, sum(n for _, n in counts))}
    if g["compile"]:   # compiled kernels give other pixels (the key of an eager set is left as it was)
        pixels["compile"] = True
    key = fingerprint(deltas, lora, tokens, extra=json.dumps(pixels, sort_keys=True))
    cache = Path(out).parent / f"{Path(out).stem}-{key}"
    return [(row, row["seed"] + k, cache / f"{_prompt_key(row['prompt'])}_{row['seed'] + k}.png")
            for row, n in counts for k in range(n)]


def generate(prm: dict, prompt_rows: list[dict], deltas: str | None, lora: str | None, out: str | Path,
             threads: int, label: str, tokens: str | None = None, shard: tuple[int, int] | None = None,
             shard_out: str | Path | None = None, erased: list[str] | None = None) -> None:
    """Draw every missing image of `prompt_rows` with the edited model, then write the manifest `out`.
    `tokens`: an attack's placeholder-token file (erasure.placeholders) its prompts use.
    `shard` (k, n): draw only shard k of n (shard_jobs) and write its rows to `shard_out` instead of
    `out`; once every shard has run, the same call without `shard` finds every image drawn and writes
    `out` without loading the model. `erased`: as image_jobs."""
    g = prm["generate"]
    jobs = image_jobs(prm, prompt_rows, deltas, lora, out, tokens, erased)
    size = call_size(g, len(jobs))
    if shard:
        jobs = shard_jobs(jobs, size, *shard)
        label = f"{label} shard {shard[0]}/{shard[1]}"
    todo = [j for j in jobs if not _complete(j[2])]
    cli.progress(f"generate {label}: {len(jobs) - len(todo)} of {len(jobs)} images done")
    if todo:
        # The model with the method's edits (a bad edit file stops here, before any image is drawn).
        world = edited_world(prm, deltas, lora, tokens)
        check_lengths(prompt_rows, world.encoder.tokenizer, world.encoder.max_length)
        batches = batched(todo, size)
        workers = cpu_workers(threads, len(batches))
        helpers = [start_worker(prm, (deltas, lora, tokens), batches[w::workers], size, f"worker {w + 1}/{workers}")
                   for w in range(1, workers)]
        if helpers:
            cli.set_threads(1)
        draw(world, g, batches[::workers], size, f"worker 1/{workers}" if helpers else "")
        for proc in helpers:
            proc.join()
        failed = [proc.exitcode for proc in helpers if proc.exitcode != 0]
        if failed:
            raise RuntimeError(f"{len(failed)} generate worker(s) failed (exit codes {failed}, see the log above); "
                               "rerun to draw the missing images")
    io.write_csv(shard_out if shard else out, MANIFEST_COLUMNS,
                 [[row["id"], row["concept"], row["kind"], row["prompt"], seed, path.as_posix()]
                  for row, seed, path in jobs])


def shard_jobs(jobs: list, batch_size: int, k: int, n: int) -> list:
    """Shard k of n of an image set: its batches k, k + n, k + 2n, ... (as one job would batch them), so
    n cluster jobs draw the set between them, each image once, with the batches of one job."""
    if not 0 <= k < n:
        raise ValueError(f"--shard {k}/{n}: the shard number must be from 0 to {n - 1}")
    return [job for batch in batched(jobs, batch_size)[k::n] for job in batch]


def cpu_workers(threads: int, n_batches: int) -> int:
    """Processes to draw with. On CPU a job given N threads runs N one-thread processes, each drawing
    every N-th batch: on 2 cores two one-thread processes draw the mini world 1.4x faster than one
    two-thread process (9.1 vs 6.6 img/s), and the batches, hence the images, stay those of one process."""
    if torch.cuda.is_available():
        return 1
    return max(1, min(threads, n_batches))


def call_size(g: dict, n_images: int) -> int:
    """Rows of every UNet call of an image set: generate.batch_size, or the set's image count when smaller.
    Every call of a set has exactly this many rows (draw pads the last, short batch): with the shapes fixed,
    an image depends only on its prompt, its seed and this size, not on which images share its call, nor on
    a resume, a shard or a helper process drawing it. A call of another size gives other pixels (in bfloat16
    on the mini world, 17% of pixels moved by up to 16 of 255 between calls of 8 and of 2 images), so the
    size is part of the image cache's key."""
    return max(1, min(g["batch_size"], n_images))


def batched(jobs: list, size: int) -> list[list]:
    """Consecutive batches of `size` jobs (the last may be shorter)."""
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


def draw(world: World, g: dict, batches: list[list[tuple[dict, int, Path]]], size: int, label: str = "") -> None:
    """Draw and save the images of `batches` (lists of (prompt row, seed, path), at most `size` each), with
    progress; each UNet call has `size` rows, a short batch padded with copies of its last image (dropped)."""
    jobs = [job for batch in batches for job in batch]
    prompts = sorted({row["prompt"] for row, _, _ in jobs})
    emb = dict(zip(prompts, world.encoder.encode(prompts)))
    null = world.null_embedding()
    scheduler = solver(world.make_scheduler(), g["sampler"])
    if g["compile"] and not getattr(world.unet, "_compiled_call_impl", None):
        world.unet.compile()   # in place, once: the module keeps its class (sample tells a Flux transformer by it)
    with Progress(len(jobs), f"generate{' ' + label if label else ''}", unit="images") as bar:
        for batch in batches:
            padded = batch + [batch[-1]] * (size - len(batch))
            cond = torch.stack([emb[row["prompt"]] for row, _, _ in padded])
            latents = sample(world.unet, scheduler, cond, null, [s for _, s, _ in padded], world.latent_shape,
                             steps=g["steps"], guidance=g["guidance"], eta=g["eta"])
            for (_, _, path), image in zip(batch, world.decode(latents)):
                io.save_image(Image.fromarray(image), path)
            bar.update(len(batch))


def edited_world(prm: dict, deltas: str | None, lora: str | None, tokens: str | None) -> World:
    """The world with a method's edits, and an attack's placeholder tokens taught to its text encoder."""
    world = apply_edit(load_world_from_params(prm), deltas, lora)
    if tokens:
        names, vectors = placeholders.load(tokens, placeholders.input_dim(world.encoder))
        placeholders.install(world.encoder, names, vectors)
    return world


def start_worker(prm: dict, edit: tuple, batches: list[list], size: int, label: str) -> multiprocessing.Process:
    proc = multiprocessing.get_context("spawn").Process(
        target=worker, args=(prm, edit, batches, size, label), daemon=True)
    proc.start()
    return proc


def worker(prm: dict, edit: tuple, batches: list[list], size: int, label: str) -> None:
    """A helper process: its own one-thread copy of the edited model. It ends with its parent, so a
    killed job leaves no process drawing behind it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    cli.set_threads(1)
    world = edited_world(prm, *edit)
    draw(world, prm["generate"], batches, size, label)


def set_erased(run_erase: list[str] | None, concept: str, associated_of: list[str] | None) -> list[str] | None:
    """The concepts a set's model erases, whose prompts get the full image count: a SepME set's concepts
    (--associated-of), else the set's own concept (a concept is erased on its own), else, for the unedited
    model ('all') and any other set, every concept the run erases."""
    if associated_of:
        return list(associated_of)
    own = [c for c in run_erase or [] if slug(c) == concept]
    return own or run_erase


def images_for(row: dict, g: dict, erased: list[str] | None) -> int:
    """Images of a prompt row: its own `images` when its CSV set one; images_per_preserved (when set) for
    the prompts (canonical and associated) of every concept the model does not erase (RealEra draws 200
    per erased prompt and 5 per preserved concept; the mini world's tables draw 200 and 50); else
    images_per_prompt."""
    if row.get("images"):  # the prompt CSV fixed it (I2P: one image at its own seed)
        return int(row["images"])
    few = g["images_per_preserved"]
    if few and erased is not None and row["kind"] in ("erase", "associated") and row["concept"] not in erased:
        return few
    return g["images_per_prompt"]


def _prompt_key(prompt):
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:12]


def _complete(path):
    """A PNG that exists and decodes (atomic writes make partial files unlikely; this makes them harmless)."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:
        return False
