#!/usr/bin/python3
"""Independent check of `normsharp sharpness` with PyTorch and SciPy.

Loads a normsharp weights directory (model.json + one .npy per tensor) into the
equivalent PyTorch module (python/normsharp/torchnet.py), prepares the data in NumPy as
docs/CONVENTIONS.md says (pixels/255, per-feature standardization with the mean and
population std of the full training split, --classes filter, first N), builds the
training loss (MSE halved and averaged, or cross-entropy), and
computes the top of the Hessian spectrum with Hessian-vector products by double
backward and scipy.sparse.linalg.eigsh, in float64.

    /usr/bin/python3 bench/torch_sharpness.py --weights /tmp/w --n 5000 \
        [--compare out.json]   # a `normsharp sharpness --json` output to check against

Prints one JSON object. With --compare it also prints the relative differences and
exits 1 if max|lambda| differs by more than --rtol (default 1e-3).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import scipy.sparse.linalg as sla
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from normsharp import load_data  # noqa: E402  (the data as normsharp prepares it)
from normsharp.torchnet import from_weights, loss as loss_of  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--n", type=int)
    ap.add_argument("--n-test", type=int)
    ap.add_argument("--classes", type=int)
    ap.add_argument("--loss", choices=["mse", "ce"])
    ap.add_argument("--data-dir")
    ap.add_argument("--tol", type=float, default=1e-8, help="eigsh tolerance")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", help="normsharp sharpness --json output to compare with")
    ap.add_argument("--rtol", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    t_start = time.time()
    meta = json.load(open(os.path.join(a.weights, "model.json")))
    saved = meta.get("data") or {}
    dataset = saved.get("dataset") or "fashion-mnist"
    n = a.n or saved.get("n") or 5000
    n_test = a.n_test if a.n_test is not None else saved.get("n_test")
    classes = a.classes if a.classes is not None else saved.get("classes")
    loss = a.loss or saved.get("loss") or "mse"
    xtr, ytr, xte, yte = load_data(dataset, a.data_dir or saved.get("data_dir"), n, n_test, classes)
    X = torch.from_numpy(xtr)
    Y = torch.from_numpy(ytr)
    if meta.get("param", "standard") != "standard":
        raise SystemExit(f"this check supports --param standard only, not {meta['param']}")
    model = from_weights(a.weights)  # tensors by normsharp's names: fc1.weight, ...
    mapping = [(k, k, tuple(v.shape)) for k, v in model.state_dict().items()]
    params = [p for p in model.parameters()]
    nparams = sum(p.numel() for p in params)
    t_load = time.time() - t_start

    t0 = time.time()
    out = model(X)
    L = loss_of(model, X, Y, loss)
    acc = (out.argmax(1) == Y).double().mean().item()
    grads = torch.autograd.grad(L, params, create_graph=True)
    gflat = torch.cat([g.reshape(-1) for g in grads])
    calls = [0]

    def hvp(v):
        calls[0] += 1
        v = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        hv = torch.autograd.grad(gflat @ v, params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).numpy()

    t_graph = time.time() - t0
    op = sla.LinearOperator((nparams, nparams), matvec=hvp, dtype=np.float64)
    v0 = np.ones(nparams) / np.sqrt(nparams)
    t1 = time.time()
    lm = sla.eigsh(op, k=1, which="LM", tol=a.tol, v0=v0, return_eigenvectors=False)[0]
    t_lm, calls_lm = time.time() - t1, calls[0]
    t1 = time.time()
    la = sla.eigsh(op, k=1, which="LA", tol=a.tol, v0=v0, return_eigenvectors=False)[0]
    t_la = time.time() - t1
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    res = {
        "weights": a.weights, "arch": meta["arch"], "nparams": nparams, "dataset": dataset, "n": n,
        "loss": loss, "train_loss": L.item(), "train_acc": acc,
        "l1": theta.abs().sum().item(), "l2": theta.norm().item(),
        "sharpness": abs(float(lm)), "lambda_max": float(la),
        "hvps_sharpness": calls_lm, "hvps_total": calls[0],
        "torch_state_dict": [[tk, name, list(s)] for tk, name, s in mapping],
        "seconds": {"load": t_load, "graph": t_graph, "sharpness": t_lm, "lambda_max": t_la,
                    "total": time.time() - t_start},
    }
    if a.compare:
        c = json.load(open(a.compare))
        f = c["final"]
        res["normsharp"] = {"sharpness": f["sharpness"], "lambda_max": f["lambda_max"],
                            "train_loss": f["train_loss"]}
        res["rel_diff"] = {k: abs(f[k] - res[k]) / max(abs(res[k]), 1e-300)
                           for k in ("sharpness", "lambda_max", "train_loss", "l1", "l2")}
    print(json.dumps(res, indent=1))
    if a.compare and res["rel_diff"]["sharpness"] > a.rtol:
        print(f"max|lambda| differs by {res['rel_diff']['sharpness']:.3g} > {a.rtol}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
