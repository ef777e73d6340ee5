"""The device stand-in (tests/device_standin.py) that the GPU check runs every stage under on a CPU: it
must report the ops a GPU would refuse, and only those."""
import copy

import torch

from device_standin import STANDIN, DeviceStandIn


def test_a_host_tensor_fed_to_a_model_on_the_device_is_reported():
    lin = torch.nn.Linear(4, 4)
    with DeviceStandIn() as mode:
        lin.to(STANDIN)
        assert lin.weight.device == STANDIN
        lin(torch.randn(2, 4))                                    # a GPU refuses this
        lin.weight.detach().double() @ torch.eye(4, dtype=torch.float64)   # and this
    assert len(mode.violations) == 2
    assert all("host tensor" in where and "test_device_standin.py" in where for where in mode.violations)


def test_moves_scalars_copies_and_parameters_are_not_reported():
    lin = torch.nn.Linear(4, 4)
    with DeviceStandIn() as mode:
        lin.to(STANDIN)
        out = lin(torch.randn(2, 4).to(lin.weight.device)) * torch.tensor(2.0)   # moved; a 0-dim host scalar
        host = out.cpu()
        host @ torch.eye(4)                                       # all on the host
        out[torch.tensor([0])] = lin(torch.randn(1, 4, device=STANDIN))   # host indices are fine
        teacher = copy.deepcopy(lin)                              # the copy stays on the device
        teacher(out)
        extra = torch.nn.Parameter(torch.zeros(4, device=STANDIN))
        lin(out) + extra
        lin.weight.data.copy_(torch.zeros(4, 4))                  # a copy may cross devices
    assert mode.violations == {}
    assert "_make_subclass" not in torch.Tensor.__dict__          # the patch is undone on exit


def test_numpy_of_a_device_tensor_is_reported():
    with DeviceStandIn() as mode:
        torch.zeros(3, device=STANDIN).numpy()
        torch.zeros(3).numpy()
    assert len(mode.violations) == 1 and "numpy()" in next(iter(mode.violations))
