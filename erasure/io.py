"""File names and writing: safe names for untrusted text, sidecar names, and atomic writes (nothing
half-written is ever left under a final name)."""
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

    from .errors import DiskFull


def slug(name: object) -> str:
    """A file-safe name for untrusted text: [a-z0-9_-] only, plus a short hash whenever characters were
    changed so that different names never share a file."""
    text = str(name)
    safe = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:48] or "concept"
    if safe != text:
        safe += "-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
    return safe


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar beside an output file: every parameter and statistic that made it."""
    return Path(path).with_suffix(".json")


def _atomic(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if out_of_space(e):
            raise disk_full(path) from None
        raise


def out_of_space(e: BaseException) -> bool:
    """ENOSPC, as Python raises it or as safetensors' Rust writer words it (a SafetensorError)."""
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "(os error 28)" in str(e)


def disk_full(path: str | Path) -> "DiskFull":
    """The one-line error for a full disk: the file that could not be written and the space left."""
    from .errors import DiskFull
    where = Path(path).parent
    while not where.exists():   # the free space of the filesystem the file was going to
        where = where.parent
    free = shutil.disk_usage(where).free
    return DiskFull(errno.ENOSPC, f"disk full writing {path} ({free / 2 ** 20:.1f} MiB free there); free some space "
                                  "or move out_dir to a larger disk, then rerun: finished outputs are kept")


def save_safetensors(tensors: dict, path: str | Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file  # here, so that naming files never imports torch
    _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_text(path: str | Path, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_bytes(path: str | Path, data: bytes) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path: str | Path, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def read_json(path: str | Path) -> object:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: str | Path, header: list[str], rows: Iterable[list]) -> None:
    """A CSV with a header row; values are quoted as needed."""
    import csv
    import io as _io
    buf = _io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def save_figure(figure, path: str | Path) -> None:
    """Save a matplotlib figure as PNG atomically."""
    _atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))


def save_image(image: "Image.Image", path: str | Path) -> None:
    """Save a PIL image as PNG atomically."""
    _atomic(path, lambda tmp: image.save(tmp, format="PNG"))
