"""The datasets as normsharp prepares them, and its losses, in NumPy (docs/CONVENTIONS.md).

Preprocessing, in this order: pixels / 255; per-feature standardization with the mean and
the population standard deviation of the *full* training split (a feature with zero spread
is centred, not divided); optional ``classes=K`` keeps labels < K; the first ``n`` training
and the first ``n_test`` test examples.
"""
import gzip
import os
import struct

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
SHAPES = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def read_idx(path):
    """An IDX file (raw or gzip) as a NumPy uint8 array of its dims."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open if gz else open)(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 8:
        raise ValueError(f"{path}: not a uint8 IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data for dims {dims}")
    return data.reshape(dims)


def _find(data_dir, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{stem}[.gz] not found in {data_dir}")


def _read_cifar(data_dir):
    def batch(name):
        rec = np.fromfile(os.path.join(data_dir, name), dtype=np.uint8).reshape(-1, 3073)
        return rec[:, 1:], rec[:, 0].astype(np.int64)
    parts = [batch(f"data_batch_{i}.bin") for i in range(1, 6)]
    xte, yte = batch("test_batch.bin")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xte, yte


def load_data(dataset="fashion-mnist", data_dir=None, n=5000, n_test=None, classes=None):
    """``(x_train, y_train, x_test, y_test)``: float64 inputs of shape (N, C, H, W) prepared as
    normsharp does, int64 labels. ``n_test`` None keeps the whole test split."""
    if dataset == "cifar10":
        if not data_dir:
            raise ValueError("cifar10 needs data_dir (the CIFAR-10 binary version)")
        xtr, ytr, xte, yte = _read_cifar(data_dir)
    elif dataset in ("fashion-mnist", "mnist"):
        if dataset == "mnist" and not data_dir:
            raise ValueError("mnist needs data_dir")
        data_dir = data_dir or FASHION_DIR
        xtr = read_idx(_find(data_dir, "train-images-idx3-ubyte"))
        ytr = read_idx(_find(data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
        xte = read_idx(_find(data_dir, "t10k-images-idx3-ubyte"))
        yte = read_idx(_find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    else:
        raise ValueError(f"unknown dataset '{dataset}': fashion-mnist, mnist or cifar10")
    xtr = xtr.reshape(len(xtr), -1)
    xte = xte.reshape(len(xte), -1)
    mean = xtr.mean(axis=0, dtype=np.float64) / 255.0
    std = xtr.std(axis=0, dtype=np.float64) / 255.0  # population std of the full training split
    std[std == 0] = 1.0                             # a constant feature is centred, not divided
    if classes:
        keep, keep_t = ytr < classes, yte < classes
        xtr, ytr, xte, yte = xtr[keep], ytr[keep], xte[keep_t], yte[keep_t]
    if n > len(xtr):
        raise ValueError(f"n = {n} is larger than the {len(xtr)} training examples")
    if n_test is not None:
        xte, yte = xte[:n_test], yte[:n_test]
    shape = (-1,) + SHAPES[dataset]
    prep = lambda x: ((x.astype(np.float64) / 255.0 - mean) / std).reshape(shape)  # noqa: E731
    return prep(xtr[:n]), ytr[:n], prep(xte), yte


def loss_of_outputs(outputs, labels, loss="mse"):
    """normsharp's training loss of network outputs (N, K) against labels (N,):
    mse  L = (1/N) sum_i 0.5 ||f(x_i) - onehot(y_i)||^2 (halved, summed over outputs, averaged);
    ce   L = (1/N) sum_i -log softmax(f(x_i))[y_i]."""
    out = np.asarray(outputs, dtype=np.float64)
    y = np.asarray(labels)
    n, k = out.shape
    if loss == "mse":
        t = np.zeros((n, k))
        t[np.arange(n), y] = 1.0
        return 0.5 * float(((out - t) ** 2).sum()) / n
    if loss == "ce":
        m = out.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(out - m).sum(axis=1))
        return float((logz - out[np.arange(n), y]).mean())
    raise ValueError(f"loss must be mse or ce, got '{loss}'")
