#!/usr/bin/env python3
"""The built-ins resnet18 and p4cnn run by PyTorch, for tests/test_equivariant.c.

    torch_parity.py resnet18|p4cnn WEIGHTS.safetensors INPUT.npy OUTPUT.npy

Loads lensnet.h's weights into a PyTorch module by their state_dict names (strictly: a missing,
extra or misshapen tensor fails), runs it in eval mode on INPUT [N,C,H,W] and writes the outputs.
resnet18 is torchvision's when torchvision is installed, else the same layout written here
(He et al. 2016 as torchvision arranges it). p4cnn follows lensnet.h's p4 layers as documented
there: the expanded weight of orientation r is torch.rot90(W, r, (2, 3)) for p4_lift and
torch.rot90(W.roll(r, 2), r, (3, 4)) for p4_conv, plane c*4 + r of a [N, 4C, H, W] map is
[N, C, 4, H, W]'s (c, r), and batch norm over orientations is BatchNorm3d. Exit status 3 when
PyTorch is missing (the test then says SKIP).
"""
import json
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"torch_parity.py: {e}", file=sys.stderr)
    sys.exit(3)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        a, b = info["data_offsets"]
        data = np.frombuffer(blob[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(data.copy())
    return out


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    def __init__(self, blocks, bands, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(bands, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            layers = []
            for b in range(n):
                layers.append(BasicBlock(inplanes, planes, 2 if i > 0 and b == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(bands, classes):
    try:
        import torchvision
        m = torchvision.models.resnet18(num_classes=classes)
        if bands != 3:
            m.conv1 = nn.Conv2d(bands, 64, 7, 2, 3, bias=False)
        return m, "torchvision"
    except ImportError:
        return ResNet((2, 2, 2, 2), bands, classes), "the layout of torchvision (torchvision is not installed)"


class P4Lift(nn.Module):
    def __init__(self, cin, cout, k, padding):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.padding = padding

    def forward(self, x):
        w = torch.stack([torch.rot90(self.weight, r, (2, 3)) for r in range(4)], 1)
        return F.conv2d(x, w.reshape(-1, *self.weight.shape[1:]), padding=self.padding)


class P4Conv(nn.Module):
    def __init__(self, cin, cout, k, padding):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, 4, k, k))
        self.padding = padding

    def forward(self, x):
        w = torch.stack([torch.rot90(self.weight.roll(r, 2), r, (3, 4)) for r in range(4)], 1)
        co, _, ci, _, k, _ = w.shape
        return F.conv2d(x, w.reshape(co * 4, ci * 4, k, k), padding=self.padding)


class P4CNN(nn.Module):
    def __init__(self, bands, classes, channels=(8, 16, 32, 64)):
        super().__init__()
        self.lift = P4Lift(bands, channels[0], 5, 2)
        self.bn0 = nn.BatchNorm3d(channels[0])
        for i in range(1, 4):
            setattr(self, f"conv{i}", P4Conv(channels[i - 1], channels[i], 3, 1))
            setattr(self, f"bn{i}", nn.BatchNorm3d(channels[i]))
        self.fc = nn.Linear(channels[3], classes)

    @staticmethod
    def bn_relu(bn, x):
        n, c, h, w = x.shape
        return F.relu(bn(x.view(n, c // 4, 4, h, w)).view(n, c, h, w))

    @staticmethod
    def pool(x):  # halving so that a quarter turn maps the sampled grid onto itself
        return F.max_pool2d(x, 2) if x.shape[2] % 2 == 0 else F.max_pool2d(x, 3, 2, 1)

    def forward(self, x):
        x = self.pool(self.bn_relu(self.bn0, self.lift(x)))
        for i in range(1, 4):
            x = self.bn_relu(getattr(self, f"bn{i}"), getattr(self, f"conv{i}")(x))
            if i < 3:
                x = self.pool(x)
        n, c, h, w = x.shape
        x = x.view(n, c // 4, 4, h, w).amax(2)
        return self.fc(x.mean((2, 3)))


def main():
    arch, weights, inp, out = sys.argv[1:5]
    state = read_safetensors(weights)
    x = torch.from_numpy(np.load(inp).astype(np.float32))
    if arch == "resnet18":
        model, source = resnet18(x.shape[1], state["fc.weight"].shape[0])
    else:
        model, source = P4CNN(x.shape[1], state["fc.weight"].shape[0]), "the documented p4 expansion"
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        print(f"torch_parity.py: missing {missing}, unexpected {unexpected}", file=sys.stderr)
        sys.exit(1)
    model.eval()
    with torch.no_grad():
        y = model(x).numpy().astype("<f4")
    np.save(out, y)
    print(f"{arch}: {source}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
