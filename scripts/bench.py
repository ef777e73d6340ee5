"""Benchmarks: figures (medians of several runs) to results/bench/<name>.json and a BENCHMARKS.md table.

    .venv/bin/python scripts/bench.py                 # everything but the end-to-end run (~10 min)
    .venv/bin/python scripts/bench.py --only e2e      # the default run, then a rerun after a scoring change
    .venv/bin/python scripts/bench.py --only generation closed_form
    .venv/bin/python scripts/bench.py --markdown      # rewrite BENCHMARKS.md from results/bench/*.json

Run it on an otherwise idle machine: every figure is wall time. Comparisons are measured in the
same run and given as ratios. Threads: 1 (what every pipeline rule uses by default).
"""
import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "results" / "bench"


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


# --- generation -------------------------------------------------------------------------------------

# Images per prompt and prompts per case: I2P-like (one image per prompt), the default run's few, the
# papers' 200 per prompt.
GENERATION_CASES = ((1, 16), (8, 8), (200, 2))


def matmul_peak(dtype, repeats, n=1024):
    """GFLOP/s of an n x n matrix product on this process's threads: the machine's own peak for the
    dense layers and convolutions a UNet is made of."""
    a = torch.randn(n, n).to(dtype)
    a @ a
    t, _ = median_time(lambda: a @ a, repeats + 4)
    return 2 * n ** 3 / t / 1e9


def image_gflop(world, steps, guidance):
    """FLOPs of one image (both guidance branches at every step, and the decode), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode
    from erasure.sampling import sample
    cond = world.encoder.encode(["a heart"])
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        world.decode(sample(world.unet, world.make_scheduler(), cond, world.null_embedding(), [0], world.latent_shape,
                            steps=steps, guidance=guidance))
    return counter.get_total_flops() / 1e9


def bench_generation(repeats):
    """The generate stage's drawing (erasure.generation.draw: prompts x seeds batched in calls of
    generate.batch_size rows, PNGs written) against the same sampler called once per prompt with all its images
    (mini world) or diffusers' StableDiffusionPipeline called once per prompt (tiny SD), at 1, 8 and 200
    images per prompt; each with its achieved GFLOP/s and the fraction of this machine's float32 matmul
    peak measured in the same run."""
    from diffusers import StableDiffusionPipeline
    from tiny_sd import build_tiny_sd
    from erasure.world import load_miniworld, load_sd

    steps, guidance = 10, 5.0
    out = {"steps": steps, "guidance": guidance, "cases": [list(c) for c in GENERATION_CASES],
           "float32_matmul_gflops": matmul_peak(torch.float32, repeats),
           "bfloat16_matmul_gflops": matmul_peak(torch.bfloat16, repeats)}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_sd(Path(tmp) / "model")
        pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None)
        pipe.set_progress_bar_config(disable=True)
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor

        def diffusers_per_prompt(prompts, n, folder):
            for i, p in enumerate(prompts):
                gens = [torch.Generator().manual_seed(k) for k in range(n)]
                images = pipe(p, num_images_per_prompt=n, generator=gens, num_inference_steps=steps,
                              guidance_scale=guidance, height=size, width=size, output_type="pil").images
                for k, image in enumerate(images):
                    image.save(folder / f"{i}_{k}.png")

        worlds = {"sd_tiny": (load_sd(str(model), dtype="float32"), diffusers_per_prompt),
                  "miniworld": (load_miniworld(ROOT / "weights/miniworld"), None),
                  "miniworld_bf16": (load_miniworld(ROOT / "weights/miniworld", "bfloat16"), None)}
        for name, (world, baseline) in worlds.items():
            out[f"{name}_image_gflop"] = image_gflop(world, steps, guidance)
            for n, n_prompts in GENERATION_CASES:
                out |= _ours_vs(world, n, n_prompts, steps, guidance, baseline, 1 if n == 200 else repeats,
                                f"{name}_{n}img", Path(tmp))
    return out


def _ours_vs(world, n, n_prompts, steps, guidance, baseline, repeats, name, tmp):
    from erasure.config import defaults
    from erasure.generation import batched, call_size, draw
    from erasure.sampling import sample
    prompts = [f"a {c} {w}" for c in ("red", "blue", "green", "small") for w in ("heart", "star", "circle", "ring")]
    prompts = prompts[:n_prompts]
    g = {**defaults("generate"), "steps": steps, "guidance": guidance, "eta": 0.0}   # batch_size: the default
    folder = tmp / name
    size = call_size(g, len(prompts) * n)

    def ours():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        jobs = [({"prompt": p}, k, folder / f"{i}_{k}.png") for i, p in enumerate(prompts) for k in range(n)]
        with torch.inference_mode():
            draw(world, g, batched(jobs, size), size)

    def per_prompt(prompts, n, folder):   # the same sampler called once per prompt (what a simple script does)
        emb, null = world.encoder.encode(prompts), world.null_embedding()
        for i in range(len(prompts)):
            with torch.inference_mode():
                lat = sample(world.unet, world.make_scheduler(), emb[i:i + 1].repeat(n, 1, 1), null, list(range(n)),
                             world.latent_shape, steps=steps, guidance=guidance)
            for k, image in enumerate(world.decode(lat)):
                Image.fromarray(image).save(folder / f"{i}_{k}.png")

    def base():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (baseline or per_prompt)(prompts, n, folder)

    t_ours, _ = median_time(ours, repeats)
    t_base, _ = median_time(base, repeats)
    total = len(prompts) * n
    return {f"{name}_prompts": len(prompts), f"{name}_ours_img_per_s": total / t_ours,
            f"{name}_baseline_img_per_s": total / t_base, f"{name}_ratio": t_base / t_ours,
            f"{name}_batch": size}


def bench_compile(repeats):
    """The tables' drawing (the mini world in bfloat16, DDIM 25 steps, guidance 5, calls of 100 images, as
    configs/miniworld_*.yaml draw) eager and with generate.compile: img/s on one thread once warm, each
    with its achieved GFLOP/s against the bfloat16 matmul peak, and what the first call costs on top
    (the compile, from inductor's on-disk cache when an earlier process filled it)."""
    from erasure.config import defaults
    from erasure.generation import draw
    from erasure.world import load_miniworld
    g = {**defaults("generate"), "steps": 25, "guidance": 5.0, "eta": 1.0, "batch_size": 100}
    out = {"steps": 25, "images_per_call": 100, "bfloat16_matmul_gflops": matmul_peak(torch.bfloat16, repeats)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, compiled in (("eager", False), ("compiled", True)):
            world = load_miniworld(ROOT / "weights/miniworld", "bfloat16")
            out["image_gflop"] = image_gflop(world, g["steps"], g["guidance"])
            jobs = [[({"prompt": p}, k, Path(tmp) / f"{name}_{i}_{k}.png")
                     for i, p in enumerate(("a heart", "a red star")) for k in range(50)]]

            def once():
                with torch.inference_mode():
                    draw(world, {**g, "compile": compiled}, jobs, 100)
            first, _ = median_time(once, 1)
            t, _ = median_time(once, repeats)
            out[f"{name}_img_per_s"] = 100 / t
            out[f"{name}_first_call_extra_s"] = first - t
    return out


# --- closed form -------------------------------------------------------------------------------------

SD_ATTN2_WIDTHS = [320] * 4 + [640] * 4 + [1280] * 4 + [1280] * 2 + [1280] * 6 + [640] * 6 + [320] * 6  # 32


def bench_closed_form(repeats):
    """One concept: M from realistic row counts (77 tokens x (1 + 50 neighbours) erase rows, 100 preserve
    prompts x 77 tokens), then deltas for the 32 SD v1.x to_k/to_v matrices; the same as one joint solve
    for 10 and 100 concepts. Then SepME increments for 1, 10 and 100 concepts (shared Gram matrices) and
    the per-module deltas of the edit that erases all of them."""
    from erasure.closed_form import BLOCK_ROWS, mixing_matrix, weight_deltas
    from erasure import sepme
    g = torch.Generator().manual_seed(0)
    d = 768
    modules = {f"m{i}": torch.nn.Linear(d, w, bias=False) for i, w in enumerate(SD_ATTN2_WIDTHS)}
    erase = torch.randn(77 * 51, d, generator=g)
    target = torch.randn(77 * 51, d, generator=g)
    preserve = torch.randn(7700, d, generator=g)

    def one():
        m, _ = mixing_matrix(erase, target, preserve, 1.0, 0.1)
        weight_deltas(modules, m)
    t_one, _ = median_time(one, repeats)
    out = {"matrices": len(modules), "erase_rows": len(erase), "preserve_rows": len(preserve), "one_concept_s": t_one}
    for k in (10, 100):   # one joint solve erasing k concepts at once (k times the erase rows)
        many_erase, many_target = erase.repeat(k, 1), target.repeat(k, 1)

        def joint():
            m, _ = mixing_matrix(many_erase, many_target, preserve, 1.0, 0.1)
            weight_deltas(modules, m)
        out[f"joint_{k}_concepts_s"], _ = median_time(joint, 1 if k == 100 else repeats)
    # The machine's own float64 peak for the Gram products' shape (one block of rows), on the threads a
    # closed_form job gets by default (1) and on both cores (resources.closed_form.threads: 2).
    block = torch.randn(BLOCK_ROWS, d, dtype=torch.float64, generator=g)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t, _ = median_time(lambda: block.T @ block, repeats + 2)
        out[f"float64_matmul_gflops_{threads}t"] = 2 * BLOCK_ROWS * d * d / t / 1e9
    out["joint_100_concepts_2t_s"], _ = median_time(joint, 1)
    torch.set_num_threads(1)
    out.update(float32_alternative(d, g, repeats))
    for k in (1, 10, 100):
        rows = {f"c{i}": (torch.randn(77, d, generator=g), torch.randn(77, d, generator=g)) for i in range(k)}

        def many():   # every increment, then the served edit of all of them (made once)
            deltas = sepme.increments(rows, preserve, 1.0, 100.0, 0.1)
            sepme.module_increments(modules, sepme.compose(deltas))
        out[f"sepme_{k}_concepts_s"], _ = median_time(many, 1 if k == 100 else repeats)
    return out


def bench_speed(repeats):
    """SPEED's edit (erasure/speed.py) of the 16 SD v1.x to_v matrices for 1, 10 and 100 concepts erased
    together: 72 erase rows per concept (the rows of "a photo of <name>" from the name to the end), the
    paper's multi-concept retain set (100 kept prompts x 77 tokens, threshold 1e-4), the null text's 77
    rows as invariants, IPF and DPA on. Text embeddings are correlated: the rows here span 500 of the 768
    dimensions, so the null space is not empty (random full-rank rows would leave nothing to solve)."""
    from erasure import speed
    from erasure.config import defaults
    g = torch.Generator().manual_seed(0)
    d = 768
    basis = torch.randn(500, d, generator=g)
    rows = lambda n: torch.randn(n, 500, generator=g) @ basis / 500 ** 0.5   # noqa: E731
    weights = [torch.randn(w, d, generator=g) / d ** 0.5 for w in SD_ATTN2_WIDTHS[::2]]
    candidates, invariants = [rows(77) for _ in range(100)], rows(77)
    cfg = {**defaults("speed"), "threshold": 1e-4, "ipf": True, "dpa": True, "iec": True}
    out = {"matrices": len(weights), "retain_prompts": len(candidates), "erase_rows_per_concept": 72}
    for k in (1, 10, 100):
        erase, anchors = torch.randn(72 * k, d, generator=g), torch.randn(72 * k, d, generator=g)

        def edit():
            gen = torch.Generator().manual_seed(1)
            for w in weights:
                speed.edit_layer(w, erase, anchors, candidates, invariants, cfg, gen)
        out[f"speed_{k}_concepts_s"], _ = median_time(edit, 1 if k == 100 else repeats)
    return out


def float32_alternative(d, g, repeats):
    """What float32 block products summed in float64 would give: their matmul rate, and how far they move
    the solve (relative to M - I) from the float64 one on 10 concepts' rows with a text encoder's
    spectrum (a shared direction, singular values spread over three decades)."""
    from erasure.closed_form import BLOCK_ROWS, mixing_matrix
    block = torch.randn(BLOCK_ROWS, d, generator=g)
    t, _ = median_time(lambda: block.T @ block, repeats + 2)
    basis, scale = torch.linalg.qr(torch.randn(d, d, generator=g))[0], torch.logspace(0, -3, d)
    e, a, p = ((torch.randn(n, d, generator=g) * scale) @ basis.T + 0.5 * basis[:, 0] for n in (39270, 39270, 7700))
    reference, cond = mixing_matrix(e, a, p, 1.0, 0.1)

    def products(left, right):
        total = torch.zeros(d, d, dtype=torch.float64)
        for start in range(0, len(left), BLOCK_ROWS):
            total += (left[start:start + BLOCK_ROWS].T @ right[start:start + BLOCK_ROWS]).double()
        return total
    keep = products(p, p) + 0.1 * torch.eye(d, dtype=torch.float64)
    m = torch.linalg.solve(products(e, e) + keep, (products(a, e) + keep).T).T
    eye = torch.eye(d, dtype=torch.float64)
    return {"float32_matmul_gflops_1t": 2 * BLOCK_ROWS * d * d / t / 1e9, "text_like_condition": cond,
            "float32_blocks_relative_error": ((m - reference).norm() / (reference - eye).norm()).item()}


def joint_gflop(erase_rows, preserve_rows, d=768):
    """FLOPs of the closed form's products: sum e e^T and sum a e^T over the erase rows, sum p p^T."""
    return (2 * erase_rows + preserve_rows) * d * d * 2 / 1e9


# --- mining ---------------------------------------------------------------------------------------------

def bench_mining(repeats):
    """Accepted perturbations per second, paper sampler, 768-d CLIP-sized tokens of a 10-token span."""
    from erasure.mining import mine
    g = torch.Generator().manual_seed(0)
    e = torch.randn(10, 768, generator=g) * 0.9
    a = torch.randn(10, 768, generator=g) * 0.9
    cfg = {"num_neighbors": 500, "num_beyond": 500, "d1": 0.6, "d1_anchor": 0.3, "d2": 3.0, "s1": 0.999, "s2": 0.3}
    t, _ = median_time(lambda: mine(e, a, cfg, 0), repeats)
    accepted = (cfg["num_neighbors"] + cfg["num_beyond"]) * e.shape[0]
    return {"tokens": e.shape[0], "accepted": accepted, "seconds": t, "accepted_per_s": accepted / t}


# --- LoRA ---------------------------------------------------------------------------------------------

def bench_lora(repeats):
    """Seconds per LoRA step (batch 8, rank 4) on the mini world; peak RSS of this process."""
    import copy
    from erasure import lora
    from erasure.world import load_miniworld
    world = load_miniworld(ROOT / "weights/miniworld")
    teacher = copy.deepcopy(world.unet).eval().requires_grad_(False)
    params = lora.add_lora(world.unet, 4, 0, list(world.edit_sites))
    opt = torch.optim.AdamW(params, lr=1e-3)
    x = torch.randn(8, *world.latent_shape)
    cond = world.encoder.encode(["a heart"] * 8).clone()  # encode() runs in inference mode
    t = torch.full((8,), 500)

    def step():
        with torch.no_grad():
            target = teacher(x, t, cond).sample
        loss = torch.nn.functional.mse_loss(world.unet(x, t, cond).sample, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step()
    times = [median_time(step, 1)[0] for _ in range(10 * repeats)]
    return {"batch": 8, "rank": 4, "step_s": statistics.median(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# --- end to end -----------------------------------------------------------------------------------------

def bench_e2e(repeats):
    """The default run (`snakemake --cores 2 all`) in a fresh copy of the repository, then the rerun
    after a change to the score stage's source (score and report rerun, images come from disk)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", "outputs", ".snakemake", ".git"))
        run = [sys.executable, "-m", "snakemake", "--cores", "2", "all"]
        t0 = time.perf_counter()
        subprocess.run(run, cwd=copy, check=True, capture_output=True)
        full = time.perf_counter() - t0
        score = copy / "stages" / "score.py"
        score.write_text(score.read_text() + "\n# benchmark: a scoring-only change\n")
        t0 = time.perf_counter()
        subprocess.run(run, cwd=copy, check=True, capture_output=True)
        rerun = time.perf_counter() - t0
        jobs = job_seconds(copy / ".snakemake" / "metadata")
    return {"default_run_s": full, "rerun_after_scoring_change_s": rerun, "job_seconds_by_rule": jobs}


def job_seconds(metadata_dir):
    """{rule: [jobs, summed job seconds]} from Snakemake's per-output metadata (last run of each job)."""
    seen, out = set(), {}
    for path in metadata_dir.iterdir():
        m = json.loads(path.read_text())
        key = (m.get("rule"), m.get("starttime"))
        if key in seen or m.get("starttime") is None:
            continue
        seen.add(key)
        jobs, secs = out.get(m["rule"], (0, 0.0))
        out[m["rule"]] = (jobs + 1, secs + m["endtime"] - m["starttime"])
    return {rule: [n, round(secs, 1)] for rule, (n, secs) in sorted(out.items(), key=lambda kv: -kv[1][1])}


# --- GPU-hour estimate ------------------------------------------------------------------------------------

def bench_flops(repeats):
    """FLOPs of one UNet forward, one VAE decode and one text encode at batch 1, counted on the meta device:
    SD v1.x at 512 px (64x64 latents); prefixed sdxl_, SDXL base at 1024 px (128x128 latents, both
    text encoders); prefixed flux_, FLUX.1-dev at 1024 px (its transformer through our FluxDenoiser, as
    the stages call it: 4,096 image tokens and 512 T5 tokens; T5-XXL on 512 tokens and CLIP)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPTextConfig, CLIPTextModel
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_sd import _full_size_sdxl_parts, full_size_flux_parts
    from erasure.flux import FluxDenoiser

    def count(fn):
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / 1e12

    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, max_position_embeddings=77))
        ids = torch.zeros(1, 77, dtype=torch.long)
        out = {"unet_forward_tflops": count(lambda: unet(torch.randn(1, 4, 64, 64), torch.tensor([500]),
                                                         torch.randn(1, 77, 768))),
               "vae_decode_tflops": count(lambda: vae.decode(torch.randn(1, 4, 64, 64))),
               "text_encode_tflops": count(lambda: text(ids))}
        parts = _full_size_sdxl_parts(SimpleNamespace(bos_token_id=49406, eos_token_id=49407))
        text_1, text_2, unet, vae = (part.float() for part in parts)   # built in fp16 for saving
        added = {"text_embeds": torch.randn(1, 1280), "time_ids": torch.randn(1, 6)}
        out |= {"sdxl_unet_forward_tflops": count(lambda: unet(torch.randn(1, 4, 128, 128), torch.tensor([500]),
                                                                torch.randn(1, 77, 2048), added_cond_kwargs=added)),
                "sdxl_vae_decode_tflops": count(lambda: vae.decode(torch.randn(1, 4, 128, 128))),
                "sdxl_text_encode_tflops": count(lambda: (text_1(ids), text_2(ids)))}
        transformer, t5, clip, vae = full_size_flux_parts()
        denoiser = FluxDenoiser(transformer, clip.config.hidden_size)
        out |= {"flux_unet_forward_tflops": count(lambda: denoiser(torch.randn(1, 16, 128, 128), torch.tensor(500.0),
                                                                   torch.randn(1, 512 + 1, 4096), 3.5)),
                "flux_vae_decode_tflops": count(lambda: vae.decode(torch.randn(1, 16, 128, 128))),
                "flux_text_encode_tflops": count(lambda: (t5(torch.zeros(1, 512, dtype=torch.long)), clip(ids)))}
    return out


TASKS = ["sd_objects", "sd_celebrities", "sd_artists", "sd_explicit", "sdxl_objects", "sdxl_explicit",
         "flux_celebrities", "flux_explicit"]
PIPELINES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline", "flux": "FluxPipeline"}
H100_BF16_TFLOPS = 989.0   # dense BF16 peak, H100 SXM
ASSUMED_MFU = 0.35         # fraction of peak a diffusers UNet reaches at batch 16 in bf16 (assumption)


def task_workload(name):
    """Images and UNet forward passes one `all` run of a task config does, counted from the config
    with the generate stage's own rules (I2P and COCO-30k: their configured row counts, one image each;
    every image set draws all COCO captions)."""
    from erasure.config import load_config, read_config_files
    from erasure.generation import images_for, select_prompts, set_erased
    from erasure.io import slug
    from erasure.prompts import prompt_table
    config = read_config_files([ROOT / "configs" / f"{name}.yaml"])
    config["scorer"] = {"kind": "clip"}  # GCD's environment is not needed to count images
    with tempfile.TemporaryDirectory() as stand_in:   # nor the SD weights: a directory that passes the check
        (Path(stand_in) / "model_index.json").write_text(json.dumps({"_class_name": PIPELINES[family_of(name)]}))
        config["sd"] = {**config.get("sd", {}), "model": stand_in}
        config = load_config(config)
    rows = prompt_table(config, datasets=False)
    g, methods, erase = config["generate"], config["run_methods"], config["erase"]
    i2p = config["i2p"]["rows"] if config["i2p"]["enabled"] else 0
    coco = config["coco"]["rows"] if config["coco"]["enabled"] else 0
    original = sum(images_for(r, g, set_erased(erase, "all", None)) for r in rows) + i2p + coco
    per_job = {}
    for concept in erase:
        keep = select_prompts(rows, slug(concept), None, g["other_associated"], g["splits"])
        per_job[concept] = (sum(images_for(r, g, set_erased(erase, slug(concept), None)) for r in keep) + coco
                            + (i2p if concept == config["i2p"]["concept"] else 0))
    edited = [m for m in methods if m != "original"]
    images = original + len(edited) * sum(per_job.values())
    # guidance: conditional and unconditional halves (Flux: one call, the guidance scale is an input)
    per_step = 1 if family_of(name) == "flux" else 2
    unet_calls = images * g["steps"] * per_step
    esd = config["esd"]
    lora = config["lora"]
    train = 0
    for m in edited:
        kind = config["methods"][m]["kind"]
        if kind == "esd":  # per latent: partial sampling (on average half the DDIM steps, 2 calls each),
            # 3 targets, the student's forward and backward (3)
            train += esd["iterations"] * esd["batch_size"] * (esd["ddim_steps"] + 3 + 3) * len(erase)
        elif kind == "realera" and config["methods"][m]["lora"]:
            # anchor images (full sampling) + per step: teacher forward + student forward/backward, per sample
            train += (lora["anchor_images"] * lora["anchor_steps"] * per_step
                      + lora["steps"] * lora["batch_size"] * 4) * len(erase)
    attack = attack_workload(config, per_step)
    return {"images": images + attack["images"], "sampling_unet_calls": unet_calls + attack["sampling_unet_calls"],
            "training_unet_calls": train + attack["training_unet_calls"], "text_encodes": attack["text_encodes"],
            "attack_images": attack["images"], "steps": g["steps"], "methods": len(methods), "erased": len(erase),
            "encodes_per_image": per_step}


def family_of(task: str) -> str:
    """The model family a task config runs: its name's prefix (sd_, sdxl_, flux_)."""
    return task.split("_")[0]


def attack_workload(config, per_step=2):
    """Images, UNet calls and extra text encodes of the attacks (docs/attacks.md) one `all` run does:
    per attacked model and erased concept, the pre-attack prompts and each attack's prompts drawn; the
    white-box attacks' target images and training steps (forward and backward counted as 3 forwards);
    revival's model drawn at every checkpoint; the transfer table's replays; Ring-A-Bell's search
    (population x generations text encodes, once per concept). per_step: UNet calls per sampling step (2 with
    an unconditional branch, Flux 1)."""
    from erasure.params import attacked_methods
    a, g = config["attacks"], config["generate"]
    if not a["run"]:
        return {"images": 0, "sampling_unet_calls": 0, "training_unet_calls": 0, "text_encodes": 0}
    models, concepts, templates = len(attacked_methods(config)), len(config["erase"]), len(a["templates"])
    draw = a["images_per_prompt"]
    sets = templates                                  # pre-attack prompts
    train = encodes = 0
    for name in a["run"]:
        cfg = a[name]
        if name in ("inversion", "unlearndiff"):
            sets += templates
            per_template = templates if name == "unlearndiff" else 1
            train += cfg["target_images"] * g["steps"] * per_step + per_template * cfg["steps"] * cfg["batch_size"] * 3
        elif name == "ringabell":
            sets += cfg["prompts"]
            encodes += cfg["population"] * cfg["generations"]
        elif name == "revival":
            sets += templates * len(cfg["checkpoints"])
            train += cfg["shots"] * g["steps"] * per_step + max(cfg["checkpoints"]) * cfg["batch_size"] * 3
    images = sets * draw * models * concepts
    if a["transfer"] and "inversion" in a["run"]:
        images += templates * draw * models * (models - 1) * concepts
    return {"images": images, "sampling_unet_calls": images * g["steps"] * per_step,
            "training_unet_calls": train * models * concepts, "text_encodes": encodes * concepts}


def gpu_hours(flops):
    tasks = {name: task_workload(name) for name in TASKS}
    per_second = H100_BF16_TFLOPS * ASSUMED_MFU
    for name, t in tasks.items():
        family = "" if family_of(name) == "sd" else f"{family_of(name)}_"
        unet, vae, text = (flops[f"{family}{part}_tflops"] for part in ("unet_forward", "vae_decode", "text_encode"))
        tflop = ((t["sampling_unet_calls"] + t["training_unet_calls"]) * unet
                 + t["images"] * (vae + t["encodes_per_image"] * text)
                 + t["text_encodes"] * text)
        t["tflop"] = tflop
        t["h100_hours"] = tflop / per_second / 3600
    return tasks


# --- BENCHMARKS.md ---------------------------------------------------------------------------------------

def _load(name):
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_markdown():
    """BENCHMARKS.md from whatever results/bench/*.json exist (missing ones say so)."""
    gen, cf, mine, lora, e2e, flops = (_load(n) for n in ("generation", "closed_form", "mining", "lora", "e2e", "flops"))
    spd = _load("speed")
    gen = gen if gen and "cases" in gen else None   # a file from before the 1/8/200-image cases: run it again
    f = lambda x, d=2: "-" if x is None else f"{x:.{d}f}"  # noqa: E731
    lines = ["# Benchmarks", "",
             "Measured by `make bench` (`scripts/bench.py`; the end-to-end figures by `scripts/bench.py --only e2e`) "
             "on the 2-core CPU machines this project is built on, 1 torch thread per process, each figure the "
             "median of several runs; comparisons are measured in the same run. Raw figures: `results/bench/*.json`.", ""]
    lines += ["| what | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    if gen:
        for world, label, base in (("sd_tiny", "tiny SD", "diffusers StableDiffusionPipeline, once per prompt"),
                                   ("miniworld", "mini world", "the same sampler, once per prompt"),
                                   ("miniworld_bf16", "mini world in bfloat16", "the same, once per prompt")):
            if f"{world}_image_gflop" not in gen:
                continue
            precision = "bfloat16" if world.endswith("bf16") else "float32"
            peak = gen[f"{precision}_matmul_gflops"]
            for n, _ in gen["cases"]:
                key = f"{world}_{n}img"
                ours, ratio = gen[f"{key}_ours_img_per_s"], gen[f"{key}_ratio"]
                rate = gen[f"{world}_image_gflop"] * ours
                need = 2 if n == 1 else 1   # one image per prompt: per-call overhead dominates the baseline
                lines.append(f"| generation, {label}, {gen[f'{key}_prompts']} prompts x {n} image(s), {gen['steps']} steps: "
                             f"img/s (achieved GFLOP/s; fraction of the {precision} matmul peak; images per call) | "
                             f"{f(ours)} ({f(rate, 1)}; {rate / peak:.0%} of {f(peak, 1)}; {gen.get(f'{key}_batch', gen.get(f'{key}_batch_chosen'))}) | "
                             f"{f(gen[f'{key}_baseline_img_per_s'])} ({base}) | {f(ratio)}x | >= {need}x | "
                             f"{'yes' if ratio >= need else 'no'} |")
    comp = _load("compile")
    if comp:
        peak = comp["bfloat16_matmul_gflops"]
        for name in ("eager", "compiled"):
            rate = comp["image_gflop"] * comp[f"{name}_img_per_s"]
            lines.append(f"| generation as the tables draw (mini world in bfloat16, {comp['steps']} steps, calls of "
                         f"{comp['images_per_call']} images), {name}: img/s on one thread (achieved GFLOP/s; fraction of "
                         f"the bfloat16 matmul peak; first call's extra s) | {f(comp[f'{name}_img_per_s'])} ({f(rate, 1)}; "
                         f"{rate / peak:.0%} of {f(peak, 1)}; {f(comp[f'{name}_first_call_extra_s'], 0)}) | "
                         + (f"{f(comp['eager_img_per_s'])} (eager) | {comp['compiled_img_per_s'] / comp['eager_img_per_s']:.2f}x"
                            if name == "compiled" else " | ") + " | | |")
    if cf:
        lines.append(f"| closed form, one concept, 32 SD v1.x to_k/to_v ({cf['erase_rows']} erase + {cf['preserve_rows']} "
                     f"preserve rows) s | {f(cf['one_concept_s'])} | | | <= 2 s | {'yes' if cf['one_concept_s'] <= 2 else 'no'} |")
        for k in (10, 100):
            if f"joint_{k}_concepts_s" in cf:
                met = ("yes" if cf["joint_100_concepts_s"] <= 30 else "no") if k == 100 else ""
                lines.append(f"| closed form, {k} concepts in one solve ({k} x {cf['erase_rows']} erase rows) s | "
                             f"{f(cf[f'joint_{k}_concepts_s'])} | | | {'<= 30 s' if k == 100 else ''} | {met} |")
        if "joint_100_concepts_2t_s" in cf:
            gflop = joint_gflop(100 * cf["erase_rows"], cf["preserve_rows"])
            for t, key in ((1, "joint_100_concepts_s"), (2, "joint_100_concepts_2t_s")):
                rate, peak = gflop / cf[key], cf[f"float64_matmul_gflops_{t}t"]
                lines.append(f"| closed form, 100 concepts in one solve on {t} thread(s) s (achieved float64 GFLOP/s; "
                             f"fraction of the float64 matmul peak measured on those threads) | {f(cf[key])} "
                             f"({f(rate)} GFLOP/s; {rate / peak:.0%} of {f(peak)}) | | | <= 10 s | "
                             f"{'yes' if cf[key] <= 10 else 'no'} |")
        for k in (1, 10, 100):
            target = "<= 30 s" if k == 100 else ""
            met = ("yes" if cf["sepme_100_concepts_s"] <= 30 else "no") if k == 100 else ""
            lines.append(f"| SepME: {k} increment(s) + the 32 module deltas erasing all s | {f(cf[f'sepme_{k}_concepts_s'])} | | | {target} | {met} |")
    if spd:
        for k in (1, 10, 100):
            lines.append(f"| SPEED: {k} concept(s) erased together, the 16 SD v1.x to_v ({spd['retain_prompts']} retained prompts, "
                         f"IPF + DPA + IEC) s | {f(spd[f'speed_{k}_concepts_s'])} | 5.0 for 100 (the paper, one A100) | | | |")
    if mine:
        lines.append(f"| mining, paper sampler, {mine['tokens']} tokens x 768-d: accepted perturbations/s | "
                     f"{f(mine['accepted_per_s'], 0)} | | | | |")
    if lora:
        lines.append(f"| LoRA step, mini world, batch {lora['batch']}, rank {lora['rank']}: s (peak RSS {f(lora['peak_rss_mb'], 0)} MB) "
                     f"| {f(lora['step_s'], 3)} | | | | |")
    if e2e:
        # Issue 24: at most 6 minutes with the venv installed (an earlier row read the README's 10).
        lines.append(f"| default run (`snakemake --cores 2 all`, fresh copy) s | {f(e2e['default_run_s'], 0)} | | | <= 360 s | "
                     f"{'yes' if e2e['default_run_s'] <= 360 else 'no'} |")
        lines.append(f"| rerun after a scoring-only change s | {f(e2e['rerun_after_scoring_change_s'], 0)} | | | <= 60 s | "
                     f"{'yes' if e2e['rerun_after_scoring_change_s'] <= 60 else 'no'} |")
    if e2e and e2e.get("job_seconds_by_rule"):
        lines += ["", "Where the default run's time goes (job seconds per rule, from Snakemake's metadata; two jobs "
                  "run at once on 2 cores, so they sum to about twice the wall time):", "",
                  "| rule | jobs | job seconds |", "|---|---|---|"]
        lines += [f"| {rule} | {n} | {secs:.0f} |" for rule, (n, secs) in e2e["job_seconds_by_rule"].items() if secs >= 1]
    if gen and cf:
        sepme_gflop = sum(SD_ATTN2_WIDTHS) * 768 * 768 * 2 / 1e9
        lines += ["", "What the figures say, and what stands in the way of the targets not met:", "",
                  f"- Generation: each UNet call of an image set has generate.batch_size rows (the set's size when "
                  "smaller; a short last batch is padded), so an image depends on its prompt and seed only. The rows "
                  f"above give the rows per call and the FLOP rate it reached: an image is {f(gen['miniworld_image_gflop'], 1)} GFLOP on the mini "
                  f"world and {f(gen['sd_tiny_image_gflop'], 2)} on the tiny SD at {gen['steps']} steps with "
                  f"guidance, against a float32 matmul peak of {f(gen['float32_matmul_gflops'], 1)} GFLOP/s on one "
                  f"thread (bfloat16: {f(gen['bfloat16_matmul_gflops'], 1)}), measured in the same run.",
                  "- SepME stores one 768 x 768 increment per concept and makes the per-module deltas (W0 times "
                  f"their sum, {sepme_gflop:.0f} GFLOP in float64 at SD shapes) once per served edit, so 100 "
                  "concepts cost 100 small solves that share one preserve Gram matrix, plus that one product."]
        if "joint_100_concepts_s" in cf:
            rows = 100 * cf["erase_rows"]
            gram_gflop = 2 * rows * 768 * 768 * 2 / 1e9
            lines.append(f"- One joint closed form for 100 concepts, each with its 50 mined neighbours ({rows:,} erase "
                         f"rows): the two float64 Gram products over those rows ({gram_gflop:.0f} GFLOP) are nearly all "
                         f"of the {f(cf['joint_100_concepts_s'])} s on one thread; the 768 x 768 solve and the 32 "
                         "deltas take about a second. The SepME rows above use each concept's 77 token rows (its "
                         "canonical prompt, no mined neighbours), as the SepME stage does.")
        if "joint_100_concepts_2t_s" in cf:
            floor = joint_gflop(100 * cf["erase_rows"], cf["preserve_rows"]) / cf["float64_matmul_gflops_2t"]
            lines.append(f"- The products run over blocks of rows in float64 (erasure/closed_form.py), so a joint "
                         f"solve never holds a float64 copy of all its rows. At this machine's measured float64 matmul "
                         f"peak on both cores the products alone would take {f(floor)} s, so 10 s is out of reach in "
                         f"float64 here. Float32 block products summed in float64 multiply at "
                         f"{f(cf['float32_matmul_gflops_1t'])} GFLOP/s a thread (float64: "
                         f"{f(cf['float64_matmul_gflops_1t'])}) but move the solve by "
                         f"{cf['float32_blocks_relative_error']:.1e} relative on rows with a text encoder's spectrum "
                         f"(condition number {cf['text_like_condition']:.0e}), far from the 1e-6 asked, so they are "
                         "not used. tests/test_closed_form.py holds the blocked solve to the one-product solve: bit for "
                         "bit within one block (every single-concept edit), 1e-6 across blocks.")
    missing = [n for n, v in zip(("generation", "closed_form", "mining", "lora", "e2e"), (gen, cf, mine, lora, e2e)) if v is None]
    if missing:
        lines += ["", f"Not measured yet: {', '.join(missing)}."]
    if flops:
        tasks = gpu_hours(flops)
        lines += ["", "## GPU hours for the full RealEra benchmark on one H100", "",
                  f"FLOPs counted with torch's FlopCounter on the SD v1.x architecture: UNet forward "
                  f"{f(flops['unet_forward_tflops'], 3)} TFLOP (64x64 latents), VAE decode {f(flops['vae_decode_tflops'], 3)} "
                  f"TFLOP (512 px), text encoder {f(flops['text_encode_tflops'], 4)} TFLOP, each at batch 1; on SDXL base "
                  f"(the sdxl_ tasks): UNet forward {f(flops['sdxl_unet_forward_tflops'], 3)} TFLOP (128x128 latents), "
                  f"VAE decode {f(flops['sdxl_vae_decode_tflops'], 3)} TFLOP (1024 px), both text encoders "
                  f"{f(flops['sdxl_text_encode_tflops'], 4)} TFLOP; on FLUX.1-dev (the flux_ tasks): "
                  "transformer forward "
                  f"{f(flops['flux_unet_forward_tflops'], 3)} TFLOP (4,096 image and 512 text tokens), VAE decode "
                  f"{f(flops['flux_vae_decode_tflops'], 3)} TFLOP (1024 px), T5-XXL and CLIP "
                  f"{f(flops['flux_text_encode_tflops'], 3)} TFLOP. Work is counted "
                  "from each task config with the generate stage's own image rules (every method in `run_methods`, "
                  "guidance doubling the UNet calls and the text encodes, except on Flux, whose guidance is an "
                  "input; ESD and LoRA training from the `esd` and `lora` sections; the attacks "
                  "from the `attacks` section: pre-attack and attack prompts, white-box training steps, revival's "
                  "checkpoints, transfer replays, Ring-A-Bell's text encodes). "
                  f"Assumption: {H100_BF16_TFLOPS:.0f} TFLOP/s dense BF16 peak at {ASSUMED_MFU:.0%} utilisation; "
                  "closed forms, mining, CLIP/NudeNet/GCD scoring are left out (each well under 1% of the FLOPs).", "",
                  "| task | methods | erased | images (of them attacks) | UNet calls (sampling + training) | PFLOP | H100 hours |",
                  "|---|---|---|---|---|---|---|"]
        for name, t in tasks.items():
            lines.append(f"| {name} | {t['methods']} | {t['erased']} | {t['images']:,} ({t['attack_images']:,}) | "
                         f"{t['sampling_unet_calls']:,} + {t['training_unet_calls']:,} | {f(t['tflop'] / 1000, 1)} | "
                         f"{f(t['h100_hours'], 1)} |")
        total = sum(t["h100_hours"] for t in tasks.values())
        lines.append(f"| **total** | | | {sum(t['images'] for t in tasks.values()):,} | | | **{f(total, 1)}** |")
        lines += ["", "sd_explicit includes COCO-30k: every one of its image sets draws the 30,000 captions once "
                  "(FID and CLIP score, RealEra Table 2); Inception features for FID are left out like the other scorers."]
    suite = OUT / "test_suite.md"   # measured by hand, not by this script: kept as written
    if suite.is_file():
        lines += ["", suite.read_text().rstrip()]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")


BENCHES = {"generation": bench_generation, "compile": bench_compile, "closed_form": bench_closed_form, "speed": bench_speed, "mining": bench_mining,
           "lora": bench_lora, "flops": bench_flops, "e2e": bench_e2e}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(BENCHES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--markdown", action="store_true", help="only rewrite BENCHMARKS.md from results/bench/*.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or ([] if args.markdown else [b for b in BENCHES if b != "e2e"]):
        print(f"bench {name} ...", flush=True)
        result = {"machine": platform.processor() or platform.machine(), "threads": 1, "repeats": args.repeats,
                  "date": time.strftime("%Y-%m-%d"), **BENCHES[name](args.repeats)}
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1), flush=True)
    write_markdown()
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
