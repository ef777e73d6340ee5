"""Benchmarks: figures (medians of several runs) to results/bench/<name>.json and a BENCHMARKS.md table.

    .venv/bin/python scripts/bench.py                 # everything but the end-to-end run (~10 min)
    .venv/bin/python scripts/bench.py --only e2e      # the default run, then a rerun after a scoring change
    .venv/bin/python scripts/bench.py --only generation closed_form

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
from pathlib import Path

import torch

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

def bench_generation(repeats):
    """Our batched sampler (prompts x seeds with guidance in one UNet call) vs diffusers'
    StableDiffusionPipeline called once per prompt, same tiny SD, steps, guidance, size and seeds."""
    from diffusers import StableDiffusionPipeline
    from tiny_sd import build_tiny_sd
    from erasure.sampling import sample
    from erasure.world import load_miniworld, load_sd

    prompts = [f"a {w}" for w in ("heart", "star", "circle", "ring", "cross", "square", "moon", "tree")]
    n, steps, guidance = 8, 10, 5.0
    out = {"prompts": len(prompts), "images_per_prompt": n, "steps": steps, "guidance": guidance}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_sd(Path(tmp))
        pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None)
        pipe.set_progress_bar_config(disable=True)
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor

        def diffusers_per_prompt():
            for p in prompts:
                gens = [torch.Generator().manual_seed(k) for k in range(n)]
                pipe(p, num_images_per_prompt=n, generator=gens, num_inference_steps=steps, guidance_scale=guidance,
                     height=size, width=size, output_type="np")

        world = load_sd(str(model), dtype="float32")
        out.update(_ours_vs(world, sample, prompts, n, steps, guidance, diffusers_per_prompt, repeats, "sd_tiny"))
    world = load_miniworld(ROOT / "weights/miniworld")
    out.update(_ours_vs(world, sample, prompts[:8], n, steps, guidance, None, repeats, "miniworld"))
    return out


def _ours_vs(world, sample, prompts, n, steps, guidance, baseline, repeats, name):
    emb = world.encoder.encode(prompts)
    null = world.null_embedding()
    total = len(prompts) * n

    def ours():
        cond = emb.repeat_interleave(n, 0)
        with torch.inference_mode():
            lat = sample(world.unet, world.make_scheduler(), cond, null, list(range(n)) * len(prompts),
                         world.latent_shape, steps=steps, guidance=guidance)
            world.decode(lat)

    def per_prompt():   # the same sampler called once per prompt (what a simple script does)
        for i in range(len(prompts)):
            with torch.inference_mode():
                lat = sample(world.unet, world.make_scheduler(), emb[i:i + 1].repeat(n, 1, 1), null, list(range(n)),
                             world.latent_shape, steps=steps, guidance=guidance)
                world.decode(lat)

    t_ours, _ = median_time(ours, repeats)
    base_fn, base_name = (baseline, "diffusers_pipeline_per_prompt") if baseline else (per_prompt, "per_prompt_loop")
    t_base, _ = median_time(base_fn, repeats)
    return {f"{name}_ours_img_per_s": total / t_ours, f"{name}_{base_name}_img_per_s": total / t_base,
            f"{name}_ratio": t_base / t_ours}


# --- closed form -------------------------------------------------------------------------------------

SD_ATTN2_WIDTHS = [320] * 4 + [640] * 4 + [1280] * 4 + [1280] * 2 + [1280] * 6 + [640] * 6 + [320] * 6  # 32


def bench_closed_form(repeats):
    """One concept: M from realistic row counts (77 tokens x (1 + 50 neighbours) erase rows, 100 preserve
    prompts x 77 tokens), then deltas for the 32 SD v1.x to_k/to_v matrices. Then SepME increments for
    1, 10 and 100 concepts (shared Gram matrices), with per-module deltas."""
    from erasure.closed_form import mixing_matrix, weight_deltas
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
    for k in (1, 10, 100):
        rows = {f"c{i}": (torch.randn(77, d, generator=g), torch.randn(77, d, generator=g)) for i in range(k)}

        def many():
            for delta in sepme.increments(rows, preserve, 1.0, 100.0, 0.1).values():
                sepme.module_increments(modules, delta)
        out[f"sepme_{k}_concepts_s"], _ = median_time(many, 1 if k == 100 else repeats)
    return out


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
    params = lora.add_lora(world.unet, 4, 0)
    opt = torch.optim.AdamW(params, lr=1e-3)
    x = torch.randn(8, *world.latent_shape)
    cond = world.encoder.encode(["a heart"] * 8)
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
    return {"default_run_s": full, "rerun_after_scoring_change_s": rerun}


# --- GPU-hour estimate ------------------------------------------------------------------------------------

def bench_flops(repeats):
    """FLOPs of one SD v1.x UNet forward at 64x64 latents (batch 1), counted on the meta device."""
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)
        x, ctx, t = torch.randn(1, 4, 64, 64), torch.randn(1, 77, 768), torch.tensor([500])
        with FlopCounterMode(display=False) as counter:
            unet(x, t, ctx)
    return {"unet_forward_tflops": counter.get_total_flops() / 1e12}


BENCHES = {"generation": bench_generation, "closed_form": bench_closed_form, "mining": bench_mining,
           "lora": bench_lora, "flops": bench_flops, "e2e": bench_e2e}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(BENCHES))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or [b for b in BENCHES if b != "e2e"]:
        print(f"bench {name} ...", flush=True)
        result = {"machine": platform.processor() or platform.machine(), "threads": 1, "repeats": args.repeats,
                  "date": time.strftime("%Y-%m-%d"), **BENCHES[name](args.repeats)}
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    main()
