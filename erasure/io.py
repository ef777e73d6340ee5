"""Atomic file writing and safe loading: nothing half-written is ever left under a final name."""
import json
import os
import tempfile
from pathlib import Path

from safetensors.torch import save_file


def _atomic(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_safetensors(tensors, path, metadata=None):
    _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_text(path, text):
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path, header, rows):
    """A CSV with a header row; values are quoted as needed."""
    import csv
    import io as _io
    buf = _io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def save_image(image, path):
    """Save a PIL image as PNG atomically."""
    _atomic(path, lambda tmp: image.save(tmp, format="PNG"))
