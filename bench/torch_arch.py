#!/usr/bin/python3
"""The PyTorch modules of docs/ARCHITECTURES.md, run from that file, for ResNets and ViTs.

    /usr/bin/python3 bench/torch_arch.py --check DIR [--normsharp BIN]
        Load the weights directory DIR (normsharp init/train) into the module, evaluate the
        training loss (train() mode), the test loss (eval() mode, batch norm with the training
        statistics: use_training_statistics) and the top Hessian eigenvalue (autograd
        double-backward HVPs + SciPy eigsh) on DIR's data in float64, and compare them with
        `BIN sharpness` on the same weights. Prints one JSON object; exits 1 if they disagree.
The timing of these modules beside normsharp is bench/compare.py's (bench/run_arch.sh).
"""
import argparse, json, os, subprocess, sys
import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from normsharp import load_data  # noqa: E402  (the data as normsharp prepares it)
from normsharp.torchnet import arch_modules as modules  # noqa: E402  (the code of docs/ARCHITECTURES.md)


def fashion(n, n_test=None):
    """The first n training and n_test (None: all) test images of Fashion-MNIST, prepared as
    normsharp does (python/normsharp/data.py): (x, y, x_test, y_test) as float64 tensors of
    shape (N, 1, 28, 28) and int64 labels."""
    return tuple(torch.tensor(a) for a in load_data("fashion-mnist", n=n, n_test=n_test))


def loss_of(kind):
    if kind == "ce":
        return lambda f, y: torch.nn.functional.cross_entropy(f, y)
    return lambda f, y: 0.5 * ((f - torch.nn.functional.one_hot(y, f.shape[1]).to(f.dtype)) ** 2).sum() / f.shape[0]


def fan_in(name, shape):
    if name.endswith("in_proj_weight") or name.endswith("weight") and len(shape) >= 2:
        return int(np.prod(shape[1:]))
    return None


def load_weights(net, wdir, meta):
    """The .npy tensors, each weight matrix times its wmul under ntk/mup. Returns the
    multipliers, tensor by tensor: the torch parameters are theta times them."""
    param = meta["param"]
    names = [t["name"] for t in meta["tensors"]]
    assert names == list(net.state_dict().keys()), (names, list(net.state_dict().keys()))
    sd, muls = {}, []
    last = names[-2]  # the head's weight
    for t in meta["tensors"]:
        a = np.load(os.path.join(wdir, t["file"])).astype(np.float64)
        fin, mul = fan_in(t["name"], a.shape), 1.0
        if param in ("ntk", "mup") and fin:
            mul = 1.0 / fin if param == "mup" and t["name"] == last else fin ** -0.5
        sd[t["name"]] = torch.from_numpy(a * mul)
        muls.append(mul)
    net.load_state_dict(sd, strict=True)
    return muls


def hvp_fn(net, params, loss):
    def hvp(vs):
        g = torch.autograd.grad(loss(), params, create_graph=True)
        return torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, vs)), params)
    return hvp


def check(a):
    meta = json.load(open(os.path.join(a.check, "model.json")))
    c, h, w = meta["input_shape"]
    data = meta.get("data", {})
    n, n_test, kind = data.get("n", 5000), data.get("n_test"), data.get("loss", "mse")
    torch.set_default_dtype(torch.float64)
    mods = modules()
    net = mods["build"](meta["arch"], c, h, w, meta["classes"], meta["param"]).double()
    muls = load_weights(net, a.check, meta)
    x, y, xt, yt = fashion(n, n_test)
    lf = loss_of(kind)
    params = list(net.parameters())
    with torch.no_grad():
        train_loss = float(lf(net(x), y))
        test_loss = float(lf(mods["use_training_statistics"](net, x)(xt), yt))
    net.train()
    hvp = hvp_fn(net, params, lambda: lf(net(x), y))
    p = sum(q.numel() for q in params)

    def matvec(u):  # the Hessian in normsharp's coordinates theta: D H D, D the multipliers
        u = torch.from_numpy(np.asarray(u, dtype=np.float64).ravel())
        vs, o = [], 0
        for q, mul in zip(params, muls):
            vs.append(mul * u[o:o + q.numel()].view_as(q))
            o += q.numel()
        return torch.cat([mul * r.reshape(-1) for r, mul in zip(hvp(vs), muls)]).numpy()

    lam = float(eigsh(LinearOperator((p, p), matvec=matvec, dtype=np.float64), k=1, which="LA",
                      tol=1e-8, return_eigenvectors=False)[0])
    out = subprocess.run([a.normsharp, "sharpness", "--weights", a.check, "--k", "1", "--tol", "1e-8",
                          "--max-iter", "300", "--trace-probes", "0", "--json"],
                         capture_output=True, text=True, check=True)
    ns = json.loads(out.stdout)["final"]
    rel = lambda u, v: abs(u - v) / max(abs(u), abs(v), 1e-300)
    res = {"arch": meta["arch"], "param": meta["param"], "loss": kind, "n": n, "n_test": n_test,
           "params": p, "torch_train_loss": train_loss, "normsharp_train_loss": ns["train_loss"],
           "torch_test_loss": test_loss, "normsharp_test_loss": ns["test_loss"],
           "torch_lambda_max": lam, "normsharp_lambda_max": ns["lambda_max"]}
    worst = max(rel(train_loss, ns["train_loss"]), rel(test_loss, ns["test_loss"]),
                rel(lam, ns["lambda_max"]))
    res["max_rel_diff"] = worst
    res["agree"] = worst < a.tol
    print(json.dumps(res))
    return 0 if res["agree"] else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check")
    ap.add_argument("--normsharp", default=os.path.join(HERE, "..", "build", "double", "normsharp"))
    ap.add_argument("--tol", type=float, default=1e-6)
    a = ap.parse_args()
    if not a.check:
        ap.error("give --check DIR")
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
