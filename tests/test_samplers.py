"""generate.sampler: diffusers' solvers on the world's DDIM schedule, drawn as diffusers' own pipeline
draws with them, one seed per image whatever the batch."""
import numpy as np
import pytest
import torch

from erasure.sampling import image_generators, sample, solver

SOLVERS = ["dpmpp_2m", "dpmpp_2m_sde", "unipc", "euler_a"]


@pytest.fixture(scope="module")
def sd(tiny_sd):
    from diffusers import StableDiffusionPipeline
    from erasure.world import load_sd
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    return load_sd(str(tiny_sd)), pipe


@pytest.mark.parametrize("name", SOLVERS)
def test_each_solver_draws_the_pipelines_images(sd, name):
    """Our loop (guidance, input scaling, initial sigma, the solver's own per-image noise) against
    StableDiffusionPipeline given the same scheduler and one generator per image."""
    world, pipe = sd
    scheduler = solver(world.make_scheduler(), name)
    assert type(scheduler).__name__ != "DDIMScheduler"
    pipe.scheduler = solver(world.make_scheduler(), name)
    prompts, seeds = ["a heart", "a star"], [3, 8]
    latents = sample(world.unet, scheduler, world.encoder.encode(prompts), world.null_embedding(), seeds,
                     world.latent_shape, steps=4, guidance=5.0)
    ours = world.decode(latents).astype(int)
    plain = pipe(prompts, num_inference_steps=4, guidance_scale=5.0, height=16, width=16, output_type="np",
                 generator=image_generators(seeds)).images
    assert np.abs(ours - (plain * 255).round().astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["dpmpp_2m_sde", "euler_a"])
def test_a_stochastic_solvers_images_do_not_depend_on_the_batch(sd, name):
    """Their fresh noise at every step comes from each image's own seed: three images drawn together
    equal the same three drawn one at a time (to float rounding, which depends on the batch), and a
    fourth seed gives another image."""
    world = sd[0]
    cond = world.encoder.encode(["a heart", "a star", "a ring"])

    def draw(c, seeds):
        return sample(world.unet, solver(world.make_scheduler(), name), c, world.null_embedding(), seeds,
                      world.latent_shape, steps=4)
    together = draw(cond, [1, 2, 3])
    alone = torch.cat([draw(cond[i:i + 1], [i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-4)
    other = draw(cond[2:], [4])
    assert (other - together[2:]).abs().max() > 0.1


def test_the_mini_worlds_clip_carries_over_to_the_multistep_solvers():
    from erasure.miniworld import sample_scheduler
    for name in ("dpmpp_2m", "unipc"):
        s = solver(sample_scheduler(), name)
        assert s.config.thresholding and s.config.sample_max_value == 1.0
    assert solver(sample_scheduler(), None).__class__.__name__ == "DDIMScheduler"


def test_a_solvers_images_are_cached_apart_from_ddims(tmp_path):
    from erasure.config import defaults
    from erasure.generation import image_jobs
    rows = [{"id": 0, "concept": "heart", "kind": "erase", "prompt": "a heart", "seed": 0, "images": 1}]
    prm = {"world": "miniworld", "miniworld": {"weights": "weights/miniworld"},
           "generate": {**defaults("generate"), "eta": 0.0}}
    ddim = image_jobs(prm, rows, None, None, tmp_path / "m.csv")[0][2]
    unipc = image_jobs({**prm, "generate": {**prm["generate"], "sampler": "unipc"}}, rows, None, None,
                       tmp_path / "m.csv")[0][2]
    assert ddim.name == unipc.name and ddim.parent != unipc.parent


def test_the_model_cards_code_builds_the_solver_the_evaluation_drew_with(sd, tiny_sd):
    from erasure.model_card import usage
    world, _ = sd
    prm = {"world": "sd", "sd": {"model": str(tiny_sd)},
           "generate": {"steps": 4, "guidance": 5.0, "eta": 0.0, "sampler": "dpmpp_2m_sde"}}
    code = usage(prm, "a heart").split("```python\n")[1].split("image = ")[0].replace("DIR", repr(str(tiny_sd)))
    scope = {}
    exec(code, scope)   # the card's own lines: load the pipeline, swap in the solver
    card, ours = scope["pipe"].scheduler, solver(world.make_scheduler(), "dpmpp_2m_sde")
    keys = ("algorithm_type", "solver_order", "beta_schedule", "beta_start", "beta_end", "timestep_spacing",
            "prediction_type", "thresholding")
    assert type(card) is type(ours) and all(card.config[k] == ours.config[k] for k in keys)
