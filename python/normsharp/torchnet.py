"""PyTorch twins of normsharp's networks (needs ``torch``).

``build_module(arch)`` returns a ``torch.nn.Module`` whose ``state_dict`` has exactly
normsharp's tensor names and layouts (``fc1.weight``, ``conv1.bias``, ...), computing the
same function: 3x3 convolutions with stride 1 and padding 1, each followed by the
activation and a 2x2 pool, then a linear head; ``fc`` layers with biases. Under ``param``
"ntk" every weight is multiplied by 1/sqrt(fan_in) in the forward pass, under "mup" the
head's by 1/fan_in instead (the stored tensors are the raw ones, as normsharp stores them).

ResNets and ViTs (``resnet-...``, ``vit-...``) are the modules of docs/ARCHITECTURES.md, run
from that file (:func:`arch_modules`), with ``use_training_statistics`` for evaluating a test
set as normsharp does (batch norm with the training subset's statistics, in ``eval()`` mode).
"""
import math
import os
import re

import numpy as np
import torch
import torch.nn.functional as F

from .weights import arch_tensors, parse_arch, read_weights, write_weights

_ACT = {"relu": F.relu, "tanh": torch.tanh, "elu": F.elu, "softplus": F.softplus, "gelu": F.gelu,
        "linear": lambda z: z}


class NormsharpNet(torch.nn.Module):
    """The network of an architecture string; see :func:`build_module`."""

    def __init__(self, arch, input_shape=(1, 28, 28), classes=10, param="standard", dtype=torch.float64):
        super().__init__()
        if param not in ("standard", "ntk", "mup"):
            raise ValueError(f"param must be standard, ntk or mup, got '{param}'")
        self.arch, self.param, self.input_shape, self.classes = arch, param, tuple(input_shape), classes
        a = parse_arch(arch)
        self._act, self._kind = _ACT[a["act"]], a["kind"]
        self._pool = F.max_pool2d if a["pool"] == "maxpool" else F.avg_pool2d
        self._layers = []  # (module name, fan_in)
        spec = arch_tensors(arch, input_shape, classes)
        for name, shape in spec[0::2]:
            mod = name.split(".")[0]
            if mod.startswith("conv"):
                layer = torch.nn.Conv2d(shape[1], shape[0], 3, padding=1, dtype=dtype)
                fan = shape[1] * 9
            else:
                layer = torch.nn.Linear(shape[1], shape[0], dtype=dtype)
                fan = shape[1]
            setattr(self, mod, layer)
            self._layers.append((mod, fan))
        head = self._layers[-1][0]
        self._wmul = {}
        for mod, fan in self._layers:
            if param == "standard":
                self._wmul[mod] = 1.0
            else:
                self._wmul[mod] = 1.0 / fan if (param == "mup" and mod == head) else 1.0 / math.sqrt(fan)
                with torch.no_grad():  # normsharp's ntk/mup theta_0: W ~ N(0, 1), b = 0
                    getattr(self, mod).weight.normal_()
                    getattr(self, mod).bias.zero_()

    def forward(self, x):
        x = x.reshape((-1,) + self.input_shape) if self._kind == "cnn" else x.reshape(x.shape[0], -1)
        last = len(self._layers) - 1
        for i, (mod, _fan) in enumerate(self._layers):
            layer, mul = getattr(self, mod), self._wmul[mod]
            w = layer.weight if mul == 1.0 else layer.weight * mul
            if isinstance(layer, torch.nn.Conv2d):
                x = self._pool(self._act(F.conv2d(x, w, layer.bias, padding=1)), 2)
            else:
                x = F.linear(x.flatten(1), w, layer.bias)
                if i < last:
                    x = self._act(x)
        return x


_DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "ARCHITECTURES.md")


def arch_modules():
    """The namespace of the Python block of docs/ARCHITECTURES.md (its ``build``, ``ResNet``,
    ``ViT``, ``use_training_statistics``): the documented code is the code run."""
    with open(_DOCS) as f:
        code = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    ns = {}
    exec(compile(code, "docs/ARCHITECTURES.md", "exec"), ns)
    return ns


def build_module(arch, input_shape=(1, 28, 28), classes=10, param="standard", dtype=torch.float64):
    """A fresh module for ``arch``: a :class:`NormsharpNet` (fc-ACT-W1-..., cnn-ACT-C1-...
    [-avgpool|-maxpool]), or the ResNet / ViT of docs/ARCHITECTURES.md (resnet-..., vit-...;
    standard parameterization only: under ntk and mup its weights would need their forward
    multipliers, which that module leaves to the loader)."""
    if arch.startswith(("resnet-", "vit-")):
        if param != "standard":
            raise ValueError(f"{arch}: the PyTorch ResNet/ViT module takes the standard parameterization; "
                             f"for {param}, multiply each weight matrix by its wmul while loading "
                             "(docs/ARCHITECTURES.md)")
        c, h, w = input_shape
        return arch_modules()["build"](arch, c, h, w, classes, param).to(dtype)
    return NormsharpNet(arch, input_shape, classes, param, dtype)


def use_training_statistics(module, x):
    """``module`` in ``eval()`` mode as normsharp evaluates a test set: every BatchNorm2d
    normalizes with the mean and biased variance of its input over the training inputs ``x``
    (N, C, H, W) at the current weights. Returns the module."""
    p = next(module.parameters())
    return arch_modules()["use_training_statistics"](module, torch.as_tensor(np.asarray(x), dtype=p.dtype))


def load_into(module, path):
    """Copy the weights folder ``path`` into ``module`` by tensor name (every name and shape
    must match: a NormsharpNet of the same architecture, or any module whose state_dict uses
    normsharp's names). Returns the module."""
    names, tensors, _meta = read_weights(path)
    sd = module.state_dict()
    if sorted(sd) != sorted(names):
        raise ValueError(f"{path} holds tensors {names}, the module has {list(sd)}")
    new = {}
    for name in names:
        if tuple(sd[name].shape) != tuple(tensors[name].shape):
            raise ValueError(f"{name}: {path} has shape {tensors[name].shape}, the module {tuple(sd[name].shape)}")
        new[name] = torch.from_numpy(np.array(tensors[name])).to(sd[name].dtype)
    module.load_state_dict(new)
    return module


def from_weights(path, dtype=torch.float64):
    """The module that a weights folder describes (architecture, parameterization, input shape
    and classes from its model.json), with its weights loaded."""
    _names, _t, meta = read_weights(path)
    net = build_module(meta["arch"], tuple(meta["input_shape"]), meta["classes"], meta.get("param", "standard"), dtype)
    return load_into(net, path)


def save_module(module, path, arch, **kwargs):
    """Write a PyTorch model's weights as a normsharp weights folder for ``arch``. The model's
    ``state_dict`` entries are taken in order (so a plain ``nn.Sequential`` of Linear/Conv2d
    layers of the right shapes works) and shapes are checked. ``kwargs`` go to
    :func:`normsharp.write_weights` (param, dataset, n, loss, classes, precision, ...)."""
    tensors = [t.detach().cpu().double().numpy() for t in module.state_dict().values()]
    if isinstance(module, NormsharpNet):
        kwargs.setdefault("param", module.param)
        kwargs.setdefault("input_shape", module.input_shape)
        kwargs.setdefault("classes", module.classes)
    return write_weights(path, tensors, arch, **kwargs)


def loss(module, x, y, kind="mse"):
    """normsharp's training loss of ``module`` on inputs x (N, C, H, W) and labels y (N,):
    mse (1/N) sum_i 0.5 ||f(x_i) - onehot(y_i)||^2, or ce (mean cross-entropy)."""
    p = next(module.parameters())
    x = torch.as_tensor(np.asarray(x), dtype=p.dtype)
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    out = module(x)
    if kind == "mse":
        t = F.one_hot(y, out.shape[1]).to(out.dtype)
        return 0.5 * ((out - t) ** 2).sum() / out.shape[0]
    if kind == "ce":
        return F.cross_entropy(out, y)
    raise ValueError(f"loss must be mse or ce, got '{kind}'")
