"""normsharp from Python: read what the C program writes, and move weights between
normsharp and PyTorch.

Standard library and NumPy only; pandas is used when installed (``as_frame=True``) and
PyTorch only by :mod:`normsharp.torchnet`.

    import normsharp as ns
    run = ns.load_run("run")                 # summary.json + trajectory.csv
    sweep = ns.load_sweep("results")         # sweep.csv (+ flow.csv) of every sweep below
    flow = ns.load_flow("flow")
    names, tensors, meta = ns.read_weights("w")   # model.json + one .npy per tensor
    ns.write_weights("w2", tensors, arch="fc-tanh-200-200")

    from normsharp.torchnet import build_module, load_into, save_module
    net = build_module("fc-tanh-200-200")    # torch.nn.Module with normsharp's tensor names
    load_into(net, "w")                      # a weights folder into it
    save_module(net, "w3", arch="fc-tanh-200-200")   # back, for `normsharp sharpness --weights w3`

The conventions (preprocessing, loss scaling, architectures, parameterizations, the
units of every column) are in docs/CONVENTIONS.md.
"""
from .results import Table, load_flow, load_run, load_sweep, read_csv
from .weights import arch_tensors, parse_arch, read_weights, write_weights
from .data import load_data, loss_of_outputs

__all__ = ["Table", "load_flow", "load_run", "load_sweep", "read_csv", "arch_tensors", "parse_arch",
           "read_weights", "write_weights", "load_data", "loss_of_outputs"]
