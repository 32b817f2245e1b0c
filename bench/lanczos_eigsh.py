#!/usr/bin/python3
"""HVPs that SciPy's eigsh (ARPACK) spends on the top of the Hessian spectrum.

Loads a normsharp weights directory into PyTorch with bench/torch_sharpness.py's loaders
(same data preparation, same loss), and counts the Hessian-vector products (double
backward, float64) of eigsh(k=1, tol=TOL) for which='LM' (the sharpness max|lambda|) and
which='LA' (lambda_max), from v0 = ones/sqrt(n) and from a seeded Gaussian v0. Prints one
JSON object per line.
"""
import argparse
import json
import os
import sys

import numpy as np
import scipy.sparse.linalg as sla
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_sharpness as ts  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(1)
    meta = json.load(open(os.path.join(a.weights, "model.json")))
    saved = meta.get("data") or {}
    loss = saved.get("loss") or "mse"
    xtr, ytr, _, _ = ts.load_data(saved.get("dataset") or "fashion-mnist", saved.get("data_dir"), a.n, None,
                                  saved.get("classes"))
    X = torch.from_numpy(xtr).reshape((-1,) + tuple(meta["input_shape"]))
    Y = torch.from_numpy(ytr)
    model = ts.build_sequential(meta)
    ts.load_weights(model, a.weights, meta)
    params = list(model.parameters())
    L = ts.loss_fn(loss, model(X), Y, meta["classes"])
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(L, params, create_graph=True)])
    n = g.numel()
    calls = [0]

    def hvp(v):
        calls[0] += 1
        v = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
        return torch.cat([h.reshape(-1) for h in torch.autograd.grad(g @ v, params, retain_graph=True)]).numpy()

    op = sla.LinearOperator((n, n), matvec=hvp, dtype=np.float64)
    starts = {"ones": np.ones(n) / np.sqrt(n), "gaussian": np.random.default_rng(0).standard_normal(n)}
    for which in ("LM", "LA"):
        for name, v0 in starts.items():
            calls[0] = 0
            lam = sla.eigsh(op, k=1, which=which, tol=a.tol, v0=v0, return_eigenvectors=False)[0]
            print(json.dumps({"weights": a.weights, "which": which, "v0": name, "tol": a.tol,
                              "eigenvalue": float(lam), "hvps": calls[0]}), flush=True)


if __name__ == "__main__":
    main()
