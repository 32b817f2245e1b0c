#!/usr/bin/python3
"""PyTorch's first and second derivatives at every kink, tie and branch point of normsharp's
activations and pooling (the table of docs/CONVENTIONS.md), by double backward in float64.

    /usr/bin/python3 bench/torch_kinks.py

The C tests (tests/test_layers.c, tests/test_hvp.c) hold these values worked by hand; this
script is how they were checked against PyTorch, and does not run in the test suite.
"""
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

ACTS = {"relu": F.relu, "elu": F.elu, "softplus": F.softplus, "gelu": F.gelu,
        "tanh": torch.tanh}
POINTS = {"relu": [0.0, -0.0], "elu": [0.0, -0.0], "softplus": [0.0, 19.5, 20.0, 20.5],
          "gelu": [0.0], "tanh": [0.0]}


def derivatives(f, z):
    """(f(z), f'(z), f''(z)) by backward and double backward."""
    x = torch.tensor([z], requires_grad=True)
    y = f(x)
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    h, = torch.autograd.grad(g.sum(), x)
    return y.item(), g.item(), h.item()


def main():
    print("activation  z       sigma(z)                 sigma'(z)              sigma''(z)")
    for name, f in ACTS.items():
        for z in POINTS[name]:
            v, d1, d2 = derivatives(f, z)
            print(f"{name:10s}  {z:<6}  {v:<23.17g}  {d1:<21.17g}  {d2:.17g}")
    print("\nmax_pool2d(2) on one 2x2 window, row-major: output, routed position")
    nan = float("nan")
    for w in ([1, 1, 1, 1], [0, 0, 0, 0], [0, 2, 2, 1], [1, nan, 2, nan], [nan, 3, 1, 1],
              [1, 2, nan, 3]):
        x = torch.tensor([float(v) for v in w]).reshape(1, 1, 2, 2).requires_grad_()
        y, idx = F.max_pool2d(x, 2, return_indices=True)
        g, = torch.autograd.grad(y.sum(), x)
        print(f"{str(w):22s} -> {y.item()}, position {idx.item()}, gradient {g.flatten().tolist()}")


if __name__ == "__main__":
    main()
