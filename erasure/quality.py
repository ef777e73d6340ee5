"""General image quality after an edit: FID and CLIP score over the COCO-30k captions (prompt kind coco).

FID uses clean-fid (Parmar et al. 2022, the implementation MACE and RealEra's tables cite): its
"clean" resizing to 299 px and the TF-Inception pool features, from clean-fid's own
inception-2015-12-05.pt in a folder the config names (no download at run time). The reference
folder's statistics are computed once and shared by every method; FID between two sets of features is
clean-fid's Frechet distance.
"""
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from . import io
from .io import sidecar_path

INCEPTION_FILE = "inception-2015-12-05.pt"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def inception(inception_dir: str | Path, device: str = "cpu") -> torch.nn.Module:
    """clean-fid's Inception (images in [0, 255] at 299 px -> 2048 features), from a local file."""
    from cleanfid.inception_torchscript import InceptionV3W
    path = Path(inception_dir) / INCEPTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (config field coco.inception_dir)")
    return InceptionV3W(str(inception_dir), download=False).to(device).eval()


def features(paths: list[str | Path], model: torch.nn.Module, batch_size: int = 32, device: str = "cpu") -> np.ndarray:
    """[N, 2048] float64 Inception features of image files, resized the clean-fid way."""
    from cleanfid.fid import get_files_features
    feats = get_files_features([str(p) for p in paths], model=model, num_workers=0, batch_size=batch_size,
                               device=torch.device(device), mode="clean", verbose=False)
    return feats.astype(np.float64)


def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [F], covariance [F, F]) of features; FID compares two of these."""
    if len(feats) < 2:
        raise ValueError(f"FID needs at least 2 images, got {len(feats)}")
    return feats.mean(0), np.cov(feats, rowvar=False)


def fid(stats: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]) -> float:
    from cleanfid.fid import frechet_distance
    return float(frechet_distance(stats[0], stats[1], reference[0], reference[1]))


def folder_images(folder: str | Path) -> list[Path]:
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {folder} (config field coco.reference_dir)")
    return files


def save_statistics(stats: tuple[np.ndarray, np.ndarray], path: str | Path, info: dict) -> None:
    io.save_safetensors({"mu": torch.from_numpy(stats[0]), "sigma": torch.from_numpy(stats[1])}, path)
    io.write_json(sidecar_path(path), info)


def load_statistics(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    t = load_file(str(path))
    return t["mu"].numpy(), t["sigma"].numpy()
