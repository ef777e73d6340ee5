"""Runs inside the GIPHY Celebrity Detector's own environment (Python 3.6, its pinned torch): standard
library, numpy, PIL and GCD's `model_training` package only; never imports `erasure`.

    <gcd python> gcd_worker.py request.json response.json

request: {"resources": dir with face_recognition/labels.csv and the weights, "weights_file": path
inside it, "images": [paths], "face_margin": 0.2, "face_size": 224, "use_cuda": false}
response: one record per image, in order: {"file", "faces", "top", "confidence"}; top is GCD's
label (a folder name such as "Tom_Cruise") of its most confident face, null when no face was found.
"""
import json
import os
import sys

import numpy as np
from PIL import Image


def main(request_path, response_path):
    with open(request_path) as f:
        req = json.load(f)
    # FaceRecognizer reads its weight file name from the environment (GCD's .env convention).
    os.environ["APP_RECOGNITION_WEIGHTS_FILE"] = req["weights_file"]
    from model_training.helpers.face_recognizer import FaceRecognizer
    from model_training.helpers.labels import Labels
    from model_training.preprocessors.face_detection.face_detector import FaceDetector
    from model_training.utils import preprocess_image

    labels = Labels(resources_path=req["resources"])
    detector = FaceDetector(req["resources"], margin=req["face_margin"], use_cuda=req["use_cuda"])
    recognizer = FaceRecognizer(labels=labels, resources_path=req["resources"], use_cuda=req["use_cuda"])
    records = []
    for i, path in enumerate(req["images"]):
        image = np.asarray(Image.open(path).convert("RGB"))
        faces = [preprocess_image(face, req["face_size"]) for face, _ in detector.perform_single(image)]
        top, confidence = None, 0.0
        for predictions, _known in recognizer.perform(faces):
            label, p = predictions[0]
            if p > confidence:
                top, confidence = str(label), float(p)
        records.append({"file": path, "faces": len(faces), "top": top, "confidence": confidence})
        if (i + 1) % 100 == 0:
            print("gcd: {}/{} images".format(i + 1, len(req["images"])), file=sys.stderr, flush=True)
    tmp = response_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(records, f)
    os.replace(tmp, response_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
