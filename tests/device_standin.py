"""A device stand-in for CPU-only machines: finds the tensors a stage would put on the wrong device on a GPU.

On a CPU every tensor lives on the same device, so a stage that feeds a host tensor to a model on
"cuda" passes every test here and fails on the first GPU. The stand-in accelerator is the device
"cpu:0" (STANDIN: `sd.device: cpu:0` loads the world there; torch runs it on the CPU). While
`DeviceStandIn` is active, tensors on it are *tagged* and every torch call is inspected:

  * a tensor moved with `.to(STANDIN)` (or to a tagged tensor) or created with `device=STANDIN` is
    tagged, and a tagged tensor's `.device` reads STANDIN, so code that follows a model's device
    (`x.to(w.device)`) tags too; `.cpu()` or `.to("cpu")` gives an untagged tensor. A move returns a new
    tensor, as it would between real devices (torch returns the input itself when the device does not
    change); views, casts and every other op's outputs are tagged when an input is;
  * an op that mixes a tagged tensor with an untagged tensor of one or more dimensions is a *violation*:
    CUDA kernels accept a host tensor only as a 0-dim scalar. Indices of `x[idx]` and the source of a
    `copy_` may live anywhere, as on a GPU.

Each violation is recorded once with a count, keyed by the op and the innermost frame of this
repository's code (erasure/, stages/), else the innermost frame outside torch. Used by scripts/gpu_check.py --device-standin.
"""
import traceback
import weakref
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

ROOT = Path(__file__).resolve().parents[1]
OURS = (str(ROOT / "erasure"), str(ROOT / "stages"))
TORCH = str(Path(torch.__file__).parent)

FACTORIES = {torch.randn, torch.rand, torch.randint, torch.zeros, torch.ones, torch.empty, torch.full,
             torch.arange, torch.linspace, torch.logspace, torch.eye, torch.tensor, torch.as_tensor,
             torch.randperm, torch.normal, torch.empty_strided, torch.scalar_tensor}
TO_HOST = {torch.Tensor.cpu, torch.Tensor.tolist, torch.Tensor.item}
UNCHECKED = {torch.Tensor.copy_, torch.Tensor.__getitem__,   # a copy may cross devices; indices may be on the host
             torch._C._VariableFunctions._has_compatible_shallow_copy_type}
STANDIN = torch.device("cpu", 0)


def on_standin(device) -> bool:
    return device is not None and not isinstance(device, bool) and torch.device(device) == STANDIN


def descriptor(func) -> str | None:
    """The attribute a tensor property's getter or setter stands for ("device", "data"), else None."""
    return getattr(getattr(func, "__self__", None), "__name__", None) if type(func).__name__ == "method-wrapper" else None


class DeviceStandIn(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self._tagged: dict[int, weakref.ref] = {}
        self.violations: dict[str, int] = {}   # "op at file:line" -> how many times

    def __enter__(self):
        # nn.Parameter(t) (and a parameter's deepcopy) wraps t with Tensor._make_subclass, which torch
        # function modes do not see: the parameter lives where t does.
        make = torch.Tensor._make_subclass   # a static method of torch._C.TensorBase

        def make_subclass(cls, data, *args, **kwargs):
            out = make(cls, data, *args, **kwargs)
            if self.tagged(data):
                self.tag(out)
            return out
        torch.Tensor._make_subclass = staticmethod(make_subclass)
        return super().__enter__()

    def __exit__(self, *exc):
        del torch.Tensor._make_subclass   # torch.Tensor inherits it again
        return super().__exit__(*exc)

    def tagged(self, t) -> bool:
        ref = self._tagged.get(id(t))
        return ref is not None and ref() is t

    def tag(self, out) -> None:
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._tagged[id(t)] = weakref.ref(t)
        if len(self._tagged) > 2_000_000:   # drop the entries of tensors that are gone
            self._tagged = {k: r for k, r in self._tagged.items() if r() is not None}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        attribute = descriptor(func)
        if attribute == "device" and self.tagged(args[0]):
            return STANDIN
        out = func(*args, **kwargs)
        if attribute == "data" and len(args) == 2:   # param.data = t: the parameter moves to where t is
            if self.tagged(args[1]):
                self.tag(args[0])
            else:
                self._tagged.pop(id(args[0]), None)
            return out
        if func is torch.Tensor.numpy and self.tagged(args[0]):
            self._record(func, "numpy() of a device tensor")   # no numpy view of GPU memory: .cpu() first
        if func in TO_HOST:
            return out.clone() if out is args[0] and self.tagged(args[0]) else out
        if func is torch.Tensor.to:
            target = self._target(args, kwargs)
            if target is None:
                target = self.tagged(args[0])
            elif out is args[0] and target != self.tagged(args[0]):
                out = out.clone()   # a move between devices makes a new tensor
            if target:
                self.tag(out)
            return out
        if func in FACTORIES:
            if on_standin(kwargs.get("device")):
                self.tag(out)
            return out
        if func is torch.Tensor.__setitem__:
            checked = [args[0], args[2]]
        elif func in UNCHECKED:
            checked = [args[0]]
        else:
            checked = tree_flatten((args, kwargs))[0]
        tensors = [t for t in checked if isinstance(t, torch.Tensor)]
        on_device = [t for t in tensors if self.tagged(t)]
        if on_device:
            host = [t for t in tensors if t.dim() > 0 and not self.tagged(t)]
            if host:
                self._record(func, f"host tensor {list(host[0].shape)}")
            self.tag(out)
        return out

    def _target(self, args, kwargs) -> bool | None:
        """Where a .to() call sends its tensor: True (the stand-in), False (the host), None (no device named)."""
        if kwargs.get("device") is not None:
            return on_standin(kwargs["device"])
        for a in args[1:]:
            if isinstance(a, (torch.device, str)) or (isinstance(a, int) and not isinstance(a, bool)):
                return on_standin(a)
            if isinstance(a, torch.Tensor):
                return self.tagged(a)
        return None

    def _record(self, func, what: str) -> None:
        frames = traceback.extract_stack()[:-2]   # without this method and __torch_function__
        ours = [f for f in frames if f.filename.startswith(OURS)]
        outside = [f for f in frames if not f.filename.startswith(TORCH) and f.filename != __file__]
        frame = (ours or outside or frames)[-1]
        name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
        path = Path(frame.filename).relative_to(ROOT) if frame.filename.startswith(str(ROOT)) else frame.filename
        where = f"{name} at {path}:{frame.lineno} ({what})"
        self.violations[where] = self.violations.get(where, 0) + 1
