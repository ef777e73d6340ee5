"""A stand-in for clean-fid's inception-2015-12-05.pt (no weights can be downloaded here): a random
TorchScript network with the same interface (`.layers` maps [B, 3, 299, 299] to 2048 features per
image), so the real loading and feature code runs on it."""
import torch


class _Layers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=4)
        self.pool = torch.nn.AdaptiveAvgPool2d(16)

    def forward(self, x):
        return self.pool(torch.tanh(self.conv(x)))   # [B, 8, 16, 16]: 2048 features


class _Inception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, x):
        return self.layers(x)


def write_standin_inception(folder):
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.script(_Inception()).save(str(folder / "inception-2015-12-05.pt"))
    return folder
