"""Generation: one seed per image, independent of batching, resumable after a kill."""
import json

import pytest

from conftest import run_stage
from erasure.config import defaults


@pytest.fixture(scope="module")
def setup(tiny_sd, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    prompts = tmp / "prompts.csv"
    prompts.write_text("id,concept,kind,prompt,seed\n0,heart,erase,a heart,10\n1,star,erase,a star,10\n")
    world = {"world": "sd", "sd": {"model": str(tiny_sd), "dtype": "float32", "resolution": None}}
    return tmp, prompts, world


def _generate(setup, out, batch_size, threads=1, new_process=False):
    tmp, prompts, world = setup
    # eta 1: each step draws fresh noise, which must come from the image's own seed too
    params = {**world, "method": "original", "generate": {**defaults("generate"), "steps": 2, "guidance": 5.0,
                                                           "eta": 1.0, "images_per_prompt": 3, "batch_size": batch_size}}
    proc = run_stage("generate", "--params", json.dumps(params), "--prompts", prompts, "--out", tmp / out,
                     "--threads", threads, new_process=new_process)
    files = [line.split(",")[-1] for line in (tmp / out).read_text().splitlines()[1:]]
    return proc, files


def test_images_do_not_depend_on_the_batch(setup):
    _, a = _generate(setup, "a/manifest.csv", batch_size=6)
    _, b = _generate(setup, "b/manifest.csv", batch_size=1)
    from PIL import Image
    import numpy as np
    for fa, fb in zip(a, b):
        assert np.array_equal(np.asarray(Image.open(fa)), np.asarray(Image.open(fb)))


def test_two_threads_draw_with_two_processes_and_the_same_images(setup):
    from pathlib import Path
    _, one = _generate(setup, "e/manifest.csv", batch_size=2)
    proc, two = _generate(setup, "f/manifest.csv", batch_size=2, threads=2, new_process=True)
    assert "worker 2/2: 2/2 images" in proc.stdout and "worker 1/2: 4/4 images" in proc.stdout
    assert [Path(f).read_bytes() for f in one] == [Path(f).read_bytes() for f in two]


def test_a_rerun_regenerates_only_missing_or_truncated_images(setup):
    _, files = _generate(setup, "c/manifest.csv", batch_size=4)
    from pathlib import Path
    originals = {f: Path(f).read_bytes() for f in files}
    Path(files[0]).unlink()
    Path(files[1]).write_bytes(originals[files[1]][:40])  # a truncated PNG, as a kill could leave
    proc, again = _generate(setup, "c/manifest.csv", batch_size=4)
    assert "4 of 6 images done" in proc.stdout
    assert again == files and all(Path(f).read_bytes() == originals[f] for f in files)


def test_associated_of_keeps_only_the_erased_concepts_associated_prompts(setup):
    tmp, _, world = setup
    prompts = tmp / "assoc.csv"
    prompts.write_text("id,concept,kind,prompt,seed\n0,heart,erase,a heart,1\n1,heart,associated,a valentine,1\n"
                       "2,star,erase,a star,1\n3,star,associated,an asterisk,1\n")
    params = {**world, "method": "cf", "generate": {**defaults("generate"), "steps": 1, "guidance": 5.0, "eta": 0.0,
                                                     "images_per_prompt": 1, "batch_size": 4}}
    run_stage("generate", "--params", json.dumps(params), "--associated-of", "heart", "--prompts", prompts,
              "--out", tmp / "d/manifest.csv")
    kept = [line.split(",")[3] for line in (tmp / "d/manifest.csv").read_text().splitlines()[1:]]
    assert kept == ["a heart", "a valentine", "a star"]
