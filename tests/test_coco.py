"""COCO-30k: captions built from the official annotations (sampled with the config's seed, checksum,
or a ready caption list taken as it is) and FID / CLIP score through the quality stages. COCO's files
and clean-fid's Inception weights cannot be downloaded here: a small captions file in COCO's format
and a random TorchScript network with the Inception file's interface (tests/fid_standin.py) stand in."""
import csv
import hashlib
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import run_stage
from erasure import datasets, quality
from fid_standin import write_standin_inception


def captions_json(images=6, per_image=2):
    annotations = [{"id": 100 * i + k, "image_id": 1000 + i, "caption": f"  a photo  of scene {i}, take {k} "}
                   for i in range(images) for k in range(per_image)]
    return {"images": [{"id": 1000 + i} for i in range(images)], "annotations": annotations}


@pytest.fixture
def coco_zip(tmp_path):
    path = tmp_path / "source" / "annotations_trainval2014.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(datasets.COCO_CAPTIONS, json.dumps(captions_json()))
    return path


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_coco_captions_are_drawn_with_the_seed_one_per_image(coco_zip, tmp_path):
    info = datasets.coco_prompts(coco_zip, tmp_path / "a.csv", 4, 7, "")
    rows = read_rows(tmp_path / "a.csv")
    assert info["rows"] == 4 and info["sha256"] == hashlib.sha256(coco_zip.read_bytes()).hexdigest()
    assert len({r["coco_id"] for r in rows}) == 4                     # four different images
    assert all(r["kind"] == "coco" and r["concept"] == "" and r["images"] == "1" for r in rows)
    assert all(r["prompt"] == f"a photo of scene {int(r['coco_id']) - 1000}, take {r['prompt'][-1]}" for r in rows)
    datasets.coco_prompts(coco_zip, tmp_path / "b.csv", 4, 7, "")
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    datasets.coco_prompts(coco_zip, tmp_path / "c.csv", 4, 8, "")
    assert read_rows(tmp_path / "c.csv") != rows


def test_coco_bad_sources_stop_with_the_field_to_fix(coco_zip, tmp_path):
    with pytest.raises(ValueError, match="6 images with captions, fewer than config field coco.rows"):
        datasets.coco_prompts(coco_zip, tmp_path / "x.csv", 30000, 0, "")
    with pytest.raises(ValueError, match="does not match config field coco.sha256"):
        datasets.coco_prompts(coco_zip, tmp_path / "x.csv", 4, 0, "0" * 64)
    not_coco = tmp_path / "other.json"
    not_coco.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="not COCO's captions"):
        datasets.coco_prompts(not_coco, tmp_path / "x.csv", 4, 0, "")
    assert not (tmp_path / "x.csv").exists()


def test_a_ready_caption_list_is_taken_as_it_is(tmp_path):
    ready = tmp_path / "coco_30k.csv"
    ready.write_text("case_number,prompt,evaluation_seed,coco_id\n0,a dog on a couch,42,9\n1,two  trains,7,3\n")
    datasets.coco_prompts(ready, tmp_path / "p.csv", 2, 0, "")
    assert [(r["prompt"], r["seed"], r["coco_id"]) for r in read_rows(tmp_path / "p.csv")] == [
        ("a dog on a couch", "42", "9"), ("two trains", "7", "3")]


def write_images(folder, n, shift=0, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = np.clip(rng.normal(110 + shift, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"{i:03d}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


@pytest.mark.slow   # three 2048-dim FIDs (about 45 s idle); the quality stage's test computes one in make test
def test_fid_is_zero_for_the_reference_itself_and_grows_with_a_shift(tmp_path):
    model = quality.inception(write_standin_inception(tmp_path / "inception"))
    ref = quality.statistics(quality.features(write_images(tmp_path / "ref", 12), model, batch_size=5))
    same = quality.statistics(quality.features(sorted((tmp_path / "ref").glob("*.png")), model))
    near = quality.statistics(quality.features(write_images(tmp_path / "near", 12, seed=1), model))
    far = quality.statistics(quality.features(write_images(tmp_path / "far", 12, shift=90, seed=1), model))
    assert ref[0].shape == (2048,) and ref[1].shape == (2048, 2048)
    # The same images in other batches give the same statistics, so their FID is the Frechet distance of
    # a Gaussian to itself, 0 (each FID is a 2048 x 2048 matrix square root, about 15 s on 2 cores).
    assert np.allclose(same[0], ref[0], atol=1e-5) and np.allclose(same[1], ref[1], atol=1e-5)
    assert 0 < quality.fid(near, ref) < quality.fid(far, ref)
    with pytest.raises(FileNotFoundError, match="coco.inception_dir"):
        quality.inception(tmp_path)


def test_quality_stages_score_only_the_coco_images(tmp_path):
    inception = write_standin_inception(tmp_path / "inception")
    write_images(tmp_path / "ref", 6)
    gen = write_images(tmp_path / "gen", 5, shift=30)
    params = {"coco": {"reference_dir": str(tmp_path / "ref"), "inception_dir": str(inception), "batch_size": 4},
              "clip": {"model": "ViT-B-32", "pretrained": None}}
    ref = tmp_path / "quality" / "reference.safetensors"
    run_stage("fid_reference", "--params", json.dumps(params), "--out", ref)
    assert json.loads(ref.with_suffix(".json").read_text())["images"] == 6
    manifest = tmp_path / "m.csv"
    kinds = ["coco", "coco", "coco", "erase", "coco"]
    manifest.write_text("id,concept,kind,prompt,seed,file\n" + "".join(
        f"{i},{'' if k == 'coco' else 'cat'},{k},caption {i},{i},{p}\n" for i, (k, p) in enumerate(zip(kinds, gen))))
    out = tmp_path / "quality" / "uce" / "cat.json"
    run_stage("quality", "--params", json.dumps(params), "--manifest", manifest, "--reference", ref, "--out", out)
    result = json.loads(out.read_text())
    assert result["images"] == 4 and result["reference_images"] == 6
    assert -100 <= result["clip_score"] <= 100 and result["fid"] > 0
    no_coco = tmp_path / "n.csv"
    no_coco.write_text(f"id,concept,kind,prompt,seed,file\n0,cat,erase,a cat,0,{gen[0]}\n")
    bad = run_stage("quality", "--params", json.dumps(params), "--manifest", no_coco, "--out", tmp_path / "x.json",
                    check=False)
    assert bad.returncode == 2 and "no images of COCO captions" in bad.stderr
