#!/usr/bin/python3
"""Independent check of `normsharp sharpness` with PyTorch and SciPy.

Loads a normsharp weights directory (model.json + one .npy per tensor) into the
equivalent torch.nn.Sequential, prepares the data itself exactly as SPEC §1 says
(pixels/255, per-feature standardization with the mean and population std of the full
training split, --classes filter, first N), builds the training loss of SPEC §2, and
computes the top of the Hessian spectrum with Hessian-vector products by double
backward and scipy.sparse.linalg.eigsh, in float64.

    /usr/bin/python3 bench/torch_sharpness.py --weights /tmp/w --n 5000 \
        [--compare out.json]   # a `normsharp sharpness --json` output to check against

Prints one JSON object. With --compare it also prints the relative differences and
exits 1 if max|lambda| differs by more than --rtol (default 1e-3).
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import scipy.sparse.linalg as sla
import torch

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
SHAPES = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


# ---- data (SPEC §1), written independently of the C loader ---------------------------
def read_idx(path):
    """An IDX file (raw or gzip) as a numpy uint8 array of its dims."""
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 8:
        raise ValueError(f"{path}: not a uint8 IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data for dims {dims}")
    return data.reshape(dims)


def find(data_dir, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{stem}[.gz] not found in {data_dir}")


def read_cifar(data_dir):
    def batch(name):
        rec = np.fromfile(os.path.join(data_dir, name), dtype=np.uint8).reshape(-1, 3073)
        return rec[:, 1:], rec[:, 0].astype(np.int64)
    parts = [batch(f"data_batch_{i}.bin") for i in range(1, 6)]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = batch("test_batch.bin")
    return xtr, ytr, xte, yte


def load_data(dataset, data_dir, n, n_test, classes):
    if dataset == "cifar10":
        xtr, ytr, xte, yte = read_cifar(data_dir)
    else:
        data_dir = data_dir or FASHION_DIR
        xtr = read_idx(find(data_dir, "train-images-idx3-ubyte"))
        ytr = read_idx(find(data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
        xte = read_idx(find(data_dir, "t10k-images-idx3-ubyte"))
        yte = read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    xtr = xtr.reshape(len(xtr), -1).astype(np.float64) / 255.0
    xte = xte.reshape(len(xte), -1).astype(np.float64) / 255.0
    mean = xtr.mean(axis=0)
    std = xtr.std(axis=0)          # population std of the full training split
    std[std == 0] = 1.0            # a constant feature is centred, not divided
    xtr = (xtr - mean) / std
    xte = (xte - mean) / std
    if classes and classes > 0:
        keep, keep_t = ytr < classes, yte < classes
        xtr, ytr, xte, yte = xtr[keep], ytr[keep], xte[keep_t], yte[keep_t]
    if n > len(xtr):
        raise ValueError(f"--n {n} is larger than the {len(xtr)} training examples")
    xtr, ytr = xtr[:n], ytr[:n]
    if n_test is not None and n_test >= 0:
        xte, yte = xte[:n_test], yte[:n_test]
    return xtr, ytr, xte, yte


# ---- the model, from model.json ---------------------------------------------------------
ACTS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU,
        "softplus": torch.nn.Softplus, "gelu": torch.nn.GELU, "linear": torch.nn.Identity}


def build_sequential(meta):
    fields = meta["arch"].split("-")
    kind, act = fields[0], ACTS[fields[1]]
    c, h, w = meta["input_shape"]
    k = meta["classes"]
    if meta.get("param", "standard") != "standard":
        raise SystemExit(f"this check supports --param standard only, not {meta['param']}")
    layers = []
    if kind == "fc":
        layers.append(torch.nn.Flatten())
        width = c * h * w
        for f in fields[2:]:
            layers += [torch.nn.Linear(width, int(f)), act()]
            width = int(f)
        layers.append(torch.nn.Linear(width, k))
    else:
        pool = torch.nn.MaxPool2d if fields[-1] == "maxpool" else torch.nn.AvgPool2d
        chans = [int(f) for f in fields[2:] if f not in ("avgpool", "maxpool")]
        for co in chans:
            layers += [torch.nn.Conv2d(c, co, 3, padding=1), act(), pool(2)]
            c, h, w = co, h // 2, w // 2
        layers += [torch.nn.Flatten(), torch.nn.Linear(c * h * w, k)]
    return torch.nn.Sequential(*layers).double()


def load_weights(model, wdir, meta):
    """Copy each <name>.npy into the Sequential's state_dict, in order, checking shapes."""
    names = [t["name"] for t in meta["tensors"]]
    sd = model.state_dict()
    if len(sd) != len(names):
        raise SystemExit(f"torch has {len(sd)} tensors, model.json lists {len(names)}")
    new = {}
    for (tkey, tval), name in zip(sd.items(), names):
        arr = np.load(os.path.join(wdir, name + ".npy"))
        if tuple(arr.shape) != tuple(tval.shape):
            raise SystemExit(f"{name}.npy has shape {arr.shape}, torch's {tkey} is {tuple(tval.shape)}")
        new[tkey] = torch.from_numpy(arr.astype(np.float64))
    model.load_state_dict(new)
    return [(tkey, name, tuple(tval.shape)) for (tkey, tval), name in zip(sd.items(), names)]


def loss_fn(kind, out, y, k):
    if kind == "mse":  # (1/n) sum_i 0.5 ||f(x_i) - onehot(y_i)||^2
        t = torch.nn.functional.one_hot(y, k).double()
        return 0.5 * ((out - t) ** 2).sum() / out.shape[0]
    return torch.nn.functional.cross_entropy(out, y)


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
    shape = (-1,) + tuple(meta["input_shape"])
    X = torch.from_numpy(xtr).reshape(shape)
    Y = torch.from_numpy(ytr)
    model = build_sequential(meta)
    mapping = load_weights(model, a.weights, meta)
    params = [p for p in model.parameters()]
    nparams = sum(p.numel() for p in params)
    t_load = time.time() - t_start

    t0 = time.time()
    out = model(X)
    L = loss_fn(loss, out, Y, meta["classes"])
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
