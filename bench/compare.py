#!/usr/bin/python3
"""normsharp against PyTorch at its best, in one process, interleaved.

    /usr/bin/python3 bench/compare.py --lib build/bench/libns_bench.so --arch ARCH --n N
        [--loss mse|ce] [--reps R] [--threads 1,2] --out FILE.json
    /usr/bin/python3 bench/compare.py --summarize FILE.json ...   (prints Markdown)

normsharp (a shared library built by bench/run.sh from the float sources, with its sgemm
calls recorded: bench/gemm_clock.c) is loaded into the PyTorch process with ctypes, so both
use the same OpenBLAS, the same data (the first N Fashion-MNIST training images,
preprocessed as normsharp does) and the same theta_0 (normsharp's, copied into the PyTorch
module). Each repetition times every candidate once, back to back, so that the load of a
shared machine falls on all of them alike; the figure that counts is the per-repetition
ratio PyTorch time / normsharp time, reported as median and range.

PyTorch candidates (the best per operation is kept, and named):
  gradient: autograd.grad of the loss, whole batch or (CNN) in chunks of 250 examples;
  HVP: double backward as autograd.grad(g, params, grad_outputs=v) ("dbl"), as
       torch.autograd.functional.vhp ("vhp"), and forward-over-reverse with functorch's
       jvp of grad ("fwdrev"), whole batch or (CNN) in chunks of 250.
OpenMP/OpenBLAS threads: each count in --threads, set for both (torch.set_num_threads and
openblas_set_num_threads). glibc's malloc tunables act on the whole process: bench/run.sh
runs this script with and without them and --summarize keeps the better, per operation.
normsharp runs with its defaults (the H v primal cache on: a Lanczos run's products all
share theta, as here). Its GEMM floor: each repetition also replays, alone, the sgemm calls
that the pass makes with every convolution on its patch path (recorded once, after the
warm-up; bench/gemm_clock.c), and the ratio pass / replay is reported per repetition.
Networks: fc-... and cnn-... as torch.nn.Sequential; resnet-... and vit-... as the modules
of docs/ARCHITECTURES.md (bench/torch_arch.py runs them from that file). Image networks
(cnn, resnet, vit) also try chunks of --chunk examples; batch norm (-bn) does not, since its
statistics couple the examples.
Clock: wall time, or with NS_BENCH_CPU set in the environment this process's CPU time
(for normsharp's GEMM clock too: bench/gemm_clock.c reads the same variable). On a machine
shared with other jobs, one thread timed in CPU time is what a pass would take alone.
"""
import argparse, ctypes as C, gzip, json, os, statistics, sys, time
import numpy as np

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(n):
    """First n training images: /255, standardized with the full split's statistics."""
    x = read_idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")).reshape(60000, -1) / 255.0
    y = read_idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz")).astype(np.int32)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    x = np.ascontiguousarray(((x - mean) / std)[:n], dtype=np.float32)
    t = np.zeros((n, 10), dtype=np.float32)
    t[np.arange(n), y[:n]] = 1.0
    return x, np.ascontiguousarray(y[:n]), t


class Cfg(C.Structure):
    _fields_ = [("arch", C.c_char * 128), ("param", C.c_char * 16), ("init_scale", C.c_double),
                ("seed", C.c_uint64), ("c", C.c_int), ("h", C.c_int), ("w", C.c_int), ("k", C.c_int)]


class Batch(C.Structure):
    _fields_ = [("x", C.c_void_p), ("y", C.c_void_p), ("t", C.c_void_p), ("n", C.c_long),
                ("loss", C.c_int)]


PASS_FN = C.CFUNCTYPE(C.c_int, C.c_void_p)  # bench_gemm_record's pass


class Normsharp:
    def __init__(self, lib, arch, x, y, t, loss):
        self.lib = L = C.CDLL(lib)
        L.ns_model_theta.restype = C.POINTER(C.c_float)
        L.ns_model_nparams.restype = C.c_size_t
        L.bench_gemm_replay.restype = C.c_double
        L.bench_gemm_record.argtypes = [C.c_int, PASS_FN, C.c_void_p]
        L.bench_sgemm_gflops.restype = C.c_double
        L.ns_errmsg.restype = C.c_char_p
        L.bench_blas_core.restype = C.c_char_p
        cfg = Cfg(arch.encode(), b"standard", 1.0, 0, 1, 28, 28, 10)
        self.m = C.c_void_p()
        if L.ns_model_create(C.byref(cfg), C.byref(self.m)):
            sys.exit("compare.py: " + L.ns_errmsg().decode())
        self.p = L.ns_model_nparams(self.m)
        self.theta = np.ctypeslib.as_array(L.ns_model_theta(self.m), shape=(self.p,))
        self.data = (x, y, t)  # keeps the arrays alive
        self.b = Batch(x.ctypes.data, y.ctypes.data, t.ctypes.data, len(x), 1 if loss == "ce" else 0)
        self.out = np.zeros(self.p, dtype=np.float32)
        self.lossv = C.c_double()

    def call(self, fn, *args):
        if fn(self.m, C.byref(self.b), *args):
            sys.exit("compare.py: " + self.lib.ns_errmsg().decode())

    def grad(self):
        self.call(self.lib.ns_model_grad, self.out.ctypes.data_as(C.c_void_p), C.byref(self.lossv), None)
        return self.out

    def hvp(self, v):
        self.call(self.lib.ns_model_hvp, v.ctypes.data_as(C.c_void_p), self.out.ctypes.data_as(C.c_void_p))
        return self.out


def torch_net(torch, arch):
    if arch.startswith(("resnet-", "vit-")):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
        from normsharp.torchnet import build_module
        return build_module(arch, (1, 28, 28), 10, dtype=torch.float32)
    parts = arch.split("-")
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[parts[1]]
    layers = []
    if parts[0] == "fc":
        d = 784
        for w in map(int, parts[2:]):
            layers += [torch.nn.Linear(d, w), act()]
            d = w
    else:
        pool = torch.nn.MaxPool2d if parts[-1] == "maxpool" else torch.nn.AvgPool2d
        c, hw = 1, 28
        for co in [int(p) for p in parts[2:] if p.isdigit()]:
            layers += [torch.nn.Conv2d(c, co, 3, padding=1), act(), pool(2)]
            c, hw = co, hw // 2
        layers.append(torch.nn.Flatten())
        d = c * hw * hw
    layers.append(torch.nn.Linear(d, 10))
    return torch.nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib")
    ap.add_argument("--arch", default="fc-tanh-200-200")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--loss", default="mse")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--out")
    ap.add_argument("--summarize", nargs="+")
    a = ap.parse_args()
    if a.summarize:
        return summarize(a.summarize)
    import torch
    import functorch
    torch.set_grad_enabled(True)
    x, y, t = load(a.n)
    ns = Normsharp(a.lib, a.arch, x, y, t, a.loss)
    image = not a.arch.startswith("fc")
    net = torch_net(torch, a.arch)
    params = list(net.parameters())
    assert sum(p.numel() for p in params) == ns.p, "the PyTorch module does not match normsharp's"
    with torch.no_grad():  # normsharp's theta_0, in PyTorch's layouts
        o = 0
        for p in params:
            p.copy_(torch.from_numpy(ns.theta[o:o + p.numel()].copy()).view_as(p))
            o += p.numel()
    X = torch.from_numpy(x).view(a.n, 1, 28, 28) if image else torch.from_numpy(x)
    T, Y = torch.from_numpy(t), torch.from_numpy(y).long()
    n = a.n

    def loss_of(f, lo, hi):
        if a.loss == "ce":
            return torch.nn.functional.cross_entropy(f, Y[lo:hi], reduction="sum") / n
        return 0.5 * ((f - T[lo:hi]) ** 2).sum() / n

    fmodel, _ = functorch.make_functional(net)
    names = [k for k, _ in net.named_parameters()]

    def chunks(ch):
        step = ch or n
        return [(lo, min(n, lo + step)) for lo in range(0, n, step)]

    def t_grad(ch):
        def run():
            acc = None
            for lo, hi in chunks(ch):
                g = torch.autograd.grad(loss_of(net(X[lo:hi]), lo, hi), params)
                acc = g if acc is None else [u + w for u, w in zip(acc, g)]
            return acc
        return run

    def t_hvp(method, ch, v):
        def one(lo, hi):
            if method == "dbl":
                g = torch.autograd.grad(loss_of(net(X[lo:hi]), lo, hi), params, create_graph=True)
                return torch.autograd.grad(g, params, grad_outputs=v)
            if method == "vhp":
                f = lambda *ps: loss_of(torch.nn.utils.stateless.functional_call(
                    net, dict(zip(names, ps)), (X[lo:hi],)), lo, hi)
                return torch.autograd.functional.vhp(f, tuple(p.detach() for p in params), tuple(v))[1]
            f = lambda ps: loss_of(fmodel(ps, X[lo:hi]), lo, hi)  # fwdrev
            return functorch.jvp(functorch.grad(f), (tuple(p.detach() for p in params),), (tuple(v),))[1]

        def run():
            acc = None
            for lo, hi in chunks(ch):
                h = one(lo, hi)
                acc = h if acc is None else [u + w for u, w in zip(acc, h)]
            return acc
        return run

    rng = np.random.default_rng(1)
    vflat = rng.standard_normal(ns.p).astype(np.float32)
    vt, o = [], 0
    for p in params:
        vt.append(torch.from_numpy(vflat[o:o + p.numel()].copy()).view_as(p))
        o += p.numel()
    flat = lambda gs: torch.cat([g.reshape(-1) for g in gs]).detach().numpy()
    rel = lambda u, w: float(np.linalg.norm(u - w) / np.linalg.norm(w))
    check = {"grad": rel(flat(t_grad(None)()), ns.grad().copy()),
             "hvp": rel(flat(t_hvp("dbl", None, vt)()), ns.hvp(vflat).copy())}

    chunk_opts = [None, a.chunk] if image and "bn" not in a.arch.split("-") else [None]
    cands = {"grad": {("whole" if c is None else "chunks of %d" % c): t_grad(c) for c in chunk_opts},
             "hvp": {}}
    for method in ("dbl", "vhp", "fwdrev"):
        for c in chunk_opts:
            cands["hvp"]["%s, %s" % (method, "whole" if c is None else "chunks of %d" % c)] = t_hvp(method, c, vt)
    cpu = bool(os.environ.get("NS_BENCH_CPU"))
    clock = time.process_time if cpu else time.perf_counter
    result = {"arch": a.arch, "n": n, "loss": a.loss, "params": ns.p, "torch": torch.__version__,
              "clock": "cpu" if cpu else "wall",
              "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "check": check,
              "blas_core": ns.lib.bench_blas_core().decode(),
              "load_start": open("/proc/loadavg").read().split()[:3], "threads": {}, "unsupported": {}}
    for th in [int(s) for s in a.threads.split(",")]:
        torch.set_num_threads(th)
        ns.lib.bench_blas_threads(th)
        sgemm = ns.lib.bench_sgemm_gflops(5000, 200, 784, 5)
        rec = {"sgemm_gflops": sgemm, "ops": {}}
        run_ns = {"grad": ns.grad, "hvp": lambda: ns.hvp(vflat)}
        for op in ("grad", "hvp"):  # warm-up; a method PyTorch lacks for a layer is dropped
            run_ns[op]()
            for k in list(cands[op]):
                try:
                    cands[op][k]()
                except NotImplementedError as e:
                    result["unsupported"][k] = str(e).splitlines()[0]
                    del cands[op][k]
            rec["ops"][op] = {"normsharp": [], "normsharp_gemm": [], **{k: [] for k in cands[op]}}
        slot = {"grad": 1, "hvp": 2}
        for op in ("grad", "hvp"):  # the GEMMs of each pass, for its floor
            def one_pass(_, f=run_ns[op]):
                f()
                return 0
            ns.lib.bench_gemm_record(slot[op], PASS_FN(one_pass), None)
            rec.setdefault("gemm_calls", {})[op] = ns.lib.bench_gemm_calls(slot[op])
        for r in range(a.reps):  # one repetition: each pass of each candidate once
            for op in ("grad", "hvp"):
                times = rec["ops"][op]
                t0 = clock()
                run_ns[op]()
                times["normsharp"].append(clock() - t0)
                times["normsharp_gemm"].append(ns.lib.bench_gemm_replay(slot[op]))
                for k, f in cands[op].items():
                    t0 = clock()
                    f()
                    times[k].append(clock() - t0)
            print("compare.py: %s, %d thread%s, repetition %d of %d done" % (a.arch, th, "" if th == 1 else "s", r + 1, a.reps),
                  file=sys.stderr, flush=True)
        rec["sgemm_gflops_end"] = ns.lib.bench_sgemm_gflops(5000, 200, 784, 5)
        result["threads"][str(th)] = rec
    result["load_end"] = open("/proc/loadavg").read().split()[:3]
    json.dump(result, open(a.out, "w"), indent=1)


def summarize(files):
    runs = [json.load(open(f)) for f in files]
    med = statistics.median
    by_arch = {}
    for r in runs:
        by_arch.setdefault((r["arch"], r["n"], r["loss"]), []).append(r)
    for (arch, n, loss), rs in by_arch.items():
        print("\n### %s, n = %d, %s, float32 (%d parameters)\n" % (arch, n, loss, rs[0]["params"]))
        print("Same theta_0 and data: PyTorch's gradient and H v differ from normsharp's by %.1e and %.1e (relative)."
              % (rs[0]["check"]["grad"], rs[0]["check"]["hvp"]))
        print("OpenBLAS kernel: %s. Load average during the runs: %s. Times: %s.\n" % (rs[0]["blas_core"], ", ".join(
            "%s -> %s" % (r["load_start"][0], r["load_end"][0]) for r in rs),
            "process CPU time" if rs[0].get("clock") == "cpu" else "wall clock"))
        print("| threads | pass | normsharp median (range) | its GEMMs as sgemm, replayed | normsharp / GEMM floor | "
              "PyTorch best: configuration | its median | **PyTorch / normsharp**, median (range) | sgemm 5000x200x784 |")
        print("|---|---|---|---|---|---|---|---|---|")
        ths = sorted(rs[0]["threads"], key=int)
        for th in ths:
            for op in ("grad", "hvp"):
                best = None
                for r in rs:
                    T = r["threads"][th]["ops"][op]
                    for k in T:
                        if k.startswith("normsharp"):
                            continue
                        ratios = [a / b for a, b in zip(T[k], T["normsharp"])]
                        cand = (med(ratios), k, r, ratios)
                        if best is None or cand[0] < best[0]:
                            best = cand
                ratio, k, r, ratios = best
                T = r["threads"][th]["ops"][op]
                nsm = T["normsharp"]
                floor = [a / b for a, b in zip(nsm, T["normsharp_gemm"])]
                tun = "tuned malloc" if r["glibc_tunables"] else "default malloc"
                print("| %s | %s | %.1f ms (%.1f-%.1f) | %.1f ms | %.2f (%.2f-%.2f) | %s, %s | %.1f ms | **%.2f** (%.2f-%.2f) | %.0f-%.0f GFLOP/s |"
                      % (th, "gradient" if op == "grad" else "H v", 1e3 * med(nsm), 1e3 * min(nsm), 1e3 * max(nsm),
                         1e3 * med(T["normsharp_gemm"]), med(floor), min(floor), max(floor), k, tun,
                         1e3 * med(T[k]), ratio, min(ratios), max(ratios),
                         min(r["threads"][th]["sgemm_gflops"], r["threads"][th]["sgemm_gflops_end"]),
                         max(r["threads"][th]["sgemm_gflops"], r["threads"][th]["sgemm_gflops_end"])))
            g = [a / b for r in rs for a, b in zip(r["threads"][th]["ops"]["hvp"]["normsharp"],
                                                   r["threads"][th]["ops"]["grad"]["normsharp"])]
            print("| %s | H v / gradient (normsharp) | %.2f (%.2f-%.2f) | | | | | | |" % (th, med(g), min(g), max(g)))
        for k, why in rs[0].get("unsupported", {}).items():
            print("\nPyTorch %s: not run, PyTorch %s cannot: %s" % (k, rs[0]["torch"], why))
        print("\nAll PyTorch candidates, median ratio to normsharp (per thread count, malloc setting):\n")
        for r in rs:
            tun = "tuned malloc" if r["glibc_tunables"] else "default malloc"
            for th in ths:
                for op in ("grad", "hvp"):
                    T = r["threads"][th]["ops"][op]
                    items = ["%s %.2f" % (k, med([a / b for a, b in zip(T[k], T["normsharp"])]))
                             for k in T if not k.startswith("normsharp")]
                    print("* %s thread%s, %s, %s: %s" % (th, "" if th == "1" else "s", tun,
                                                          "gradient" if op == "grad" else "H v", "; ".join(items)))


if __name__ == "__main__":
    sys.exit(main())
