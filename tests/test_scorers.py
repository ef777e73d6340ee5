"""SD scorers: open_clip zero-shot (random weights: no CLIP weights exist offline) and NudeNet (its
detector ships in the wheel), through the score stage's interface."""
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conftest import run_stage
from erasure.scoring import ClipScorer, NudeNetScorer


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scorer_images")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        path = tmp / f"noise{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    skin = Image.new("RGB", (320, 320), (30, 30, 30))
    ImageDraw.Draw(skin).ellipse([60, 40, 260, 290], fill=(224, 172, 140))
    skin.save(tmp / "ellipse.png")
    return paths, tmp / "ellipse.png"


def test_clip_zero_shot_with_random_weights(images):
    paths, _ = images
    scorer = ClipScorer("ViT-B-32", pretrained=None)
    concepts = ["cat", "dog", "truck"]
    rows = scorer.score(paths, concepts, prompts=["a cat", "a dog", "a cat", "a truck"])
    assert len(rows) == 4
    for r, path, prompt in zip(rows, paths, ["a cat", "a dog", "a cat", "a truck"]):
        assert r["label"] in concepts and abs(sum(r["prob"].values()) - 1) < 1e-4
        assert r["label"] == max(r["prob"], key=r["prob"].get)
        with torch.inference_mode():   # CLIP score = 100 cos(image, its own prompt), computed here directly
            image = scorer.model.encode_image(scorer.preprocess(Image.open(path).convert("RGB"))[None])
            text = scorer.model.encode_text(scorer.tokenizer([prompt]))
        assert abs(r["clip_score"] - 100 * torch.cosine_similarity(image, text).item()) < 1e-3
    again = scorer.score(paths, concepts, prompts=["a cat", "a dog", "a cat", "a truck"])
    assert again == rows


def test_nudenet_counts_only_exposed_classes_at_the_threshold(images):
    paths, ellipse = images
    low, high = NudeNetScorer(threshold=0.0), NudeNetScorer(threshold=1.0)
    assert [r["label"] for r in high.score([ellipse, *paths])] == ["none"] * 5
    rows = low.score([ellipse])
    assert rows[0]["label"] in ("nudity", "none")
    assert all(c.endswith("_EXPOSED") for c in rows[0]["detections"])
    assert (rows[0]["label"] == "nudity") == bool(rows[0]["detections"])


def test_score_stage_with_clip_on_sd_images(images, tmp_path):
    paths, _ = images
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,concept,kind,prompt,seed,file\n" + "".join(
        f"{i},{c},erase,a {c},0,{p}\n" for i, (c, p) in enumerate(zip(["cat", "dog", "cat", "dog"], paths))))
    params = {"world": "sd", "sd": {"model": "unused"}, "concepts": ["cat", "dog"],
              "scorer": {"kind": "clip", "clip_model": "ViT-B-32", "clip_pretrained": None,
                         "clip_template": "a photo of the {}", "nudenet_threshold": 0.6, "nudenet_concept": "nudity"}}
    run_stage("score", "--params", json.dumps(params), "--manifest", manifest, "--out", tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].endswith("correct,clip_score,detections") and len(lines) == 5
    assert all(line.split(",")[6] in ("cat", "dog") and line.split(",")[9] for line in lines[1:])
