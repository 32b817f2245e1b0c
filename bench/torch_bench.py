#!/usr/bin/python3
"""PyTorch reference for the normsharp benchmark: the same workload, timed the way
researchers do it today (autograd gradient, double-backward HVP, SciPy eigsh).

    /usr/bin/python3 bench/torch_bench.py [--n 5000] [--threads 2] [--reps 10] [--weights DIR]

Workload: fc-tanh-200-200 on the first N Fashion-MNIST training images, preprocessed as
SPEC §1 (/255, standardize with full-training-split statistics), MSE scaled as SPEC §2
(L = (1/n) sum_i 0.5 ||f(x_i) - y_i||^2), float32. Prints one JSON object.
"""
import argparse, gzip, json, os, sys, time
import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(n):
    x = read_idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")).reshape(60000, -1).astype(np.float64) / 255.0
    y = read_idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz"))
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    x = ((x - mean) / std)[:n]
    t = np.zeros((n, 10))
    t[np.arange(n), y[:n]] = 1.0
    return torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)


def model(weights):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 200), torch.nn.Tanh(),
                              torch.nn.Linear(200, 200), torch.nn.Tanh(),
                              torch.nn.Linear(200, 10))
    if weights:
        names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
        with torch.no_grad():
            for p, name in zip(net.parameters(), names):
                p.copy_(torch.from_numpy(np.load(os.path.join(weights, name + ".npy")).astype(np.float32)))
    return net


def timeit(fn, reps):
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--weights")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, t = load(a.n)
    net = model(a.weights)
    params = list(net.parameters())
    nparam = sum(p.numel() for p in params)

    def loss_fn():
        return 0.5 * ((net(x) - t) ** 2).sum() / x.shape[0]

    def grad():
        return torch.autograd.grad(loss_fn(), params)

    v = [torch.randn_like(p) for p in params]

    def hvp(vs=v):
        g = torch.autograd.grad(loss_fn(), params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
        return torch.autograd.grad(dot, params)

    t_grad = timeit(grad, a.reps)
    t_hvp = timeit(hvp, a.reps)

    count = [0]

    def matvec(u):
        count[0] += 1
        u = torch.from_numpy(np.asarray(u, dtype=np.float32).ravel())
        vs, o = [], 0
        for p in params:
            vs.append(u[o:o + p.numel()].view_as(p))
            o += p.numel()
        return torch.cat([h.reshape(-1) for h in hvp(vs)]).double().numpy()

    op = LinearOperator((nparam, nparam), matvec=matvec, dtype=np.float64)
    t0 = time.perf_counter()
    lam = eigsh(op, k=1, which="LM", tol=a.tol, return_eigenvectors=False)
    t_eig = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "n": a.n,
                      "params": nparam, "loss": float(loss_fn()), "grad_ms": 1e3 * t_grad,
                      "hvp_ms": 1e3 * t_hvp, "sharpness": float(abs(lam[0])),
                      "sharpness_s": t_eig, "sharpness_hvps": count[0]}))


if __name__ == "__main__":
    sys.exit(main())
