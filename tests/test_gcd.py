"""The GIPHY Celebrity Detector up to its environment boundary. GCD needs Python 3.6 and weights that
exist only on users' clusters, so the worker (erasure/gcd_worker.py) is driven here against a stand-in
`model_training` package with GCD's interface: a "face" is a bright image, and its identity is the
colour (red Tom Cruise, green Elon Musk, blue someone outside the task). The real environment runs in
the last test when ERASURE_GCD_PYTHON and ERASURE_GCD_RESOURCES point to it."""
import csv
import json
import os
import stat
import sys

import pytest
from PIL import Image

from conftest import run_stage
from erasure.metrics import metrics
from erasure.scoring import GcdScorer, check_gcd

STAND_IN = {
    "model_training/__init__.py": "",
    "model_training/helpers/__init__.py": "",
    "model_training/preprocessors/__init__.py": "",
    "model_training/preprocessors/face_detection/__init__.py": "",
    "model_training/utils.py": "def preprocess_image(image, size):\n    return image\n",
    "model_training/helpers/labels.py": """
import csv, os
class Label:
    def __init__(self, name):
        self.folder_name = name
    def __repr__(self):
        return self.folder_name
class Labels:
    def __init__(self, resources_path):
        with open(os.path.join(resources_path, "face_recognition", "labels.csv")) as f:
            rows = list(csv.reader(f))[1:]
        self.labels_list = [Label(r[0]) for r in sorted(rows)]
""",
    "model_training/preprocessors/face_detection/face_detector.py": """
class FaceDetector:
    def __init__(self, resources, margin, use_cuda):
        self.margin = margin
    def perform_single(self, image):
        return [(image, (0, 0, 1, 1))] if image.mean() > 40 else []
""",
    "model_training/helpers/face_recognizer.py": """
import os
class FaceRecognizer:
    def __init__(self, labels, resources_path, use_cuda):
        assert os.path.isfile(os.path.join(resources_path, os.environ["APP_RECOGNITION_WEIGHTS_FILE"]))
        self.names = {l.folder_name: l for l in labels.labels_list}
    def perform(self, faces):
        out = []
        for face in faces:
            channel = int(face.reshape(-1, 3).mean(0).argmax())
            name = ["Tom_Cruise", "Elon_Musk", "Aaron_Paul"][channel]
            out.append(([(self.names[name], 0.9), (self.names["Aaron_Paul"], 0.1)], 0.8))
        return out
""",
}


@pytest.fixture
def gcd_env(tmp_path):
    """A 'GCD environment': a python wrapper that sees the stand-in package, and a resources dir."""
    lib = tmp_path / "gcd_lib"
    for rel, text in STAND_IN.items():
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_text(text)
    python = tmp_path / "gcd_python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{lib}" exec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    resources = tmp_path / "resources"
    (resources / "face_recognition").mkdir(parents=True)
    (resources / "face_recognition/labels.csv").write_text("name,tag\nTom_Cruise,1\nElon_Musk,2\nAaron_Paul,3\n")
    (resources / "face_recognition/best_model_states.pkl").write_bytes(b"weights")
    return str(python), str(resources)


@pytest.fixture
def faces(tmp_path):
    colours = {"red": (200, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 200), "dark": (5, 5, 5)}
    paths = {}
    for name, rgb in colours.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", (32, 32), rgb).save(paths[name])
    return paths


def test_gcd_labels_faces_and_abstains_without_one(gcd_env, faces):
    scorer = GcdScorer(*gcd_env)
    rows = scorer.score([faces[c] for c in ("red", "green", "blue", "dark")], ["Tom Cruise", "Elon Musk"])
    assert [r["label"] for r in rows] == ["Tom Cruise", "Elon Musk", "other", "no_face"]
    assert [r["gcd_top"] for r in rows] == ["Tom_Cruise", "Elon_Musk", "Aaron_Paul", ""]


def test_score_stage_and_report_leave_no_face_images_out(gcd_env, faces, tmp_path):
    # Erased Tom Cruise: one image still shows him, one shows no face. Acc_e must be 100 (1 of 1
    # judged), not 50: images without a face are not in the denominator (MACE/RealEra protocol).
    manifest = tmp_path / "m.csv"
    rows = [("Tom Cruise", "erase", faces["red"]), ("Tom Cruise", "erase", faces["dark"]),
            ("Elon Musk", "erase", faces["green"]), ("Elon Musk", "erase", faces["blue"])]
    manifest.write_text("id,concept,kind,prompt,seed,file\n" + "".join(
        f"{i // 2},{c},{k},A portrait of {c},{i},{p}\n" for i, (c, k, p) in enumerate(rows)))
    params = {"world": "sd", "sd": {"model": "unused"}, "concepts": ["Tom Cruise", "Elon Musk"],
              "scorer": {"kind": "gcd", "gcd_python": gcd_env[0], "gcd_resources": gcd_env[1],
                         "gcd_weights_file": "face_recognition/best_model_states.pkl"}}
    out = tmp_path / "s.csv"
    run_stage("score", "--params", json.dumps(params), "--manifest", manifest, "--out", out)
    with open(out, newline="") as f:
        scored = list(csv.DictReader(f))
    assert [r["correct"] for r in scored] == ["1", "", "1", "0"]
    m = metrics(scored, "Tom Cruise")
    assert m["acc_e"] == 100.0 and m["acc_s"] == 50.0
    with open(out.with_suffix(".prompts.csv"), newline="") as f:
        per_prompt = list(csv.DictReader(f))
    assert [(r["n"], r["n_judged"], r["acc"]) for r in per_prompt] == [("2", "1", "100.00"), ("2", "2", "50.00")]


def test_missing_gcd_environment_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="scorer.gcd_python"):
        check_gcd("", str(tmp_path), "w.pkl")
    with pytest.raises(FileNotFoundError, match="scorer.gcd_resources: .*labels.csv not found"):
        check_gcd(sys.executable, str(tmp_path), "w.pkl")


@pytest.mark.skipif(not (os.environ.get("ERASURE_GCD_PYTHON") and os.environ.get("ERASURE_GCD_RESOURCES")),
                    reason="the GIPHY Celebrity Detector environment is absent (Python 3.6 + its weights; "
                           "set ERASURE_GCD_PYTHON and ERASURE_GCD_RESOURCES, docs/sd.md 'Celebrity detector (GCD)')")
def test_real_gcd_environment(faces):
    scorer = GcdScorer(os.environ["ERASURE_GCD_PYTHON"], os.environ["ERASURE_GCD_RESOURCES"])
    rows = scorer.score([faces["dark"], faces["red"]], ["Tom Cruise"])
    assert rows[0]["label"] == "no_face" and all(r["label"] in ("Tom Cruise", "other", "no_face") for r in rows)
