"""Progress of the long loops (generation, LoRA, ESD, attacks, pretraining): a tqdm bar with rate and
time left when stderr is a terminal; otherwise (a cluster log, a test's pipe) one plain line every
`every` steps and at the end, with the same rate and time left, so a log stays one line per report."""
import sys
import time

from tqdm import tqdm


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Counts `total` steps from `initial` (a resumed run's first step). update(n, **info) after each
    step; info (say loss=0.0123) is shown beside the count."""

    def __init__(self, total: int, desc: str, every: int = 1, initial: int = 0, unit: str = "it", stream=None):
        self.total, self.desc, self.every, self.unit = total, desc, max(1, every), unit
        self.done = self.initial = initial
        self.started = time.time()
        stream = stream or sys.stderr
        self.bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
                         leave=True) if stream.isatty() else None)

    def update(self, n: int = 1, **info) -> None:
        before, self.done = self.done, self.done + n
        if self.bar is not None:
            if info:
                self.bar.set_postfix({k: _short(v) for k, v in info.items()}, refresh=False)
            self.bar.update(n)
            return
        if self.done // self.every > before // self.every or self.done >= self.total:
            print(self.line(info), flush=True)

    def line(self, info: dict | None = None) -> str:
        """"lora: 40/200 steps (20%), 3.1 steps/s, 0m51s left, loss 0.0123"."""
        elapsed = max(time.time() - self.started, 1e-9)
        rate = (self.done - self.initial) / elapsed
        left = _duration((self.total - self.done) / rate) if rate > 0 else "?"
        extra = "".join(f", {k} {_short(v)}" for k, v in (info or {}).items())
        percent = 100 * self.done / self.total if self.total else 100.0
        return (f"{self.desc}: {self.done}/{self.total} {self.unit} ({percent:.0f}%), {rate:.2f} {self.unit}/s, "
                f"{left} left{extra}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _short(value) -> str:
    return f"{value:.5f}" if isinstance(value, float) else str(value)
