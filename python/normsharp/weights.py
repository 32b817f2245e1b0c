"""normsharp weights folders: ``model.json`` plus one NumPy ``.npy`` file per tensor, with
PyTorch's names and layouts (``fc1.weight`` is (out, in), ``conv1.weight`` (out, in, 3, 3),
counted from 1 by depth, the head is the last ``fcK``). ``normsharp init``, ``train
--save-weights`` and ``sharpness/train/flow/sweep --weights`` read and write them.
"""
import json
import os

import numpy as np

ACTIVATIONS = ("relu", "tanh", "elu", "softplus", "gelu", "linear")
INPUT_SHAPES = {"fashion-mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
CLASSES = {"fashion-mnist": 10, "mnist": 10, "cifar10": 10}


def parse_arch(arch):
    """``fc-ACT-W1-W2-...`` or ``cnn-ACT-C1-C2-...[-avgpool|-maxpool]`` as a dict
    ``{"kind", "act", "widths", "pool"}`` (pool: "avgpool" (the default) or "maxpool" for cnn)."""
    f = arch.split("-")
    if f[0] in ("resnet", "vit"):
        raise ValueError(f"architecture '{arch}': this NumPy-only part of the module (arch_tensors, write_weights, "
                         "save_module) knows fc and cnn networks; ResNets and ViTs load into PyTorch with "
                         "normsharp.torchnet.from_weights, and normsharp itself writes their weights")
    if len(f) < 2 or f[0] not in ("fc", "cnn") or f[1] not in ACTIVATIONS:
        raise ValueError(f"architecture '{arch}': expected fc-ACT-W1-... or cnn-ACT-C1-..., "
                         f"ACT one of {', '.join(ACTIVATIONS)}")
    pool = None
    rest = f[2:]
    if f[0] == "cnn":
        pool = "avgpool"
        if rest and rest[-1] in ("avgpool", "maxpool"):
            pool = rest.pop()
        if not rest:
            raise ValueError(f"architecture '{arch}': a cnn needs at least one channel count")
    try:
        widths = [int(w) for w in rest]
    except ValueError:
        raise ValueError(f"architecture '{arch}': widths must be positive integers") from None
    if any(w < 1 for w in widths):
        raise ValueError(f"architecture '{arch}': widths must be positive integers")
    return {"kind": f[0], "act": f[1], "widths": widths, "pool": pool}


def arch_tensors(arch, input_shape=(1, 28, 28), classes=10):
    """The (name, shape) of every tensor of ``arch``, in normsharp's (= state_dict) order."""
    a = parse_arch(arch)
    c, h, w = input_shape
    out = []
    if a["kind"] == "fc":
        width = c * h * w
        for i, wd in enumerate(a["widths"] + [classes], start=1):
            out += [(f"fc{i}.weight", (wd, width)), (f"fc{i}.bias", (wd,))]
            width = wd
        return out
    for i, co in enumerate(a["widths"], start=1):
        out += [(f"conv{i}.weight", (co, c, 3, 3)), (f"conv{i}.bias", (co,))]
        c, h, w = co, h // 2, w // 2
    out += [("fc1.weight", (classes, c * h * w)), ("fc1.bias", (classes,))]
    return out


def read_weights(path):
    """A weights folder as ``(names, tensors, meta)``: the tensor names in order, a dict
    name -> NumPy array (the file's dtype, float32 or float64), and model.json as a dict."""
    with open(os.path.join(path, "model.json")) as f:
        meta = json.load(f)
    names = [t["name"] for t in meta["tensors"]]
    tensors = {}
    for t in meta["tensors"]:
        arr = np.load(os.path.join(path, t.get("file", t["name"] + ".npy")))
        if tuple(arr.shape) != tuple(t["shape"]):
            raise ValueError(f"{path}/{t['name']}.npy has shape {arr.shape}, model.json says {tuple(t['shape'])}")
        tensors[t["name"]] = arr
    return names, tensors, meta


def write_weights(path, tensors, arch, param="standard", init_scale=1.0, seed=0, dataset="fashion-mnist",
                  input_shape=None, classes=None, n=5000, loss="mse", data_dir=None, n_test=None,
                  precision="float32"):
    """Write ``tensors`` (a dict name -> array, or a list of arrays in normsharp's order) as a
    weights folder for ``arch``, so that ``normsharp sharpness/train/flow/sweep --weights
    PATH`` start from them. Shapes are checked against the architecture; values are stored
    in ``precision`` (float32, normsharp's default build, or float64). ``dataset``, ``n``,
    ``loss``, ... become the data defaults of later commands (model.json "data")."""
    input_shape = tuple(input_shape or INPUT_SHAPES.get(dataset, (1, 28, 28)))
    classes = classes or CLASSES.get(dataset, 10)
    if param not in ("standard", "ntk", "mup"):
        raise ValueError(f"param must be standard, ntk or mup, got '{param}'")
    spec = arch_tensors(arch, input_shape, classes)
    if not isinstance(tensors, dict):
        tensors = list(tensors)
        if len(tensors) != len(spec):
            raise ValueError(f"{arch} has {len(spec)} tensors, got {len(tensors)}")
        tensors = {name: t for (name, _), t in zip(spec, tensors)}
    missing = [name for name, _ in spec if name not in tensors]
    extra = [k for k in tensors if k not in dict(spec)]
    if missing or extra:
        raise ValueError(f"{arch} needs tensors {[n for n, _ in spec]}; missing {missing}, unexpected {extra}")
    dtype = {"float32": np.float32, "float64": np.float64}[precision]
    os.makedirs(path, exist_ok=True)
    entries = []
    for name, shape in spec:
        arr = np.ascontiguousarray(np.asarray(tensors[name], dtype=dtype))
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"{name}: shape {arr.shape}, {arch} needs {tuple(shape)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or infinity")
        _atomic(os.path.join(path, name + ".npy"), lambda f, a=arr: np.save(f, a))
        entries.append({"name": name, "shape": list(shape), "file": name + ".npy"})
    meta = {"program": "normsharp", "version": "python", "kind": "weights", "arch": arch, "param": param,
            "init_scale": init_scale, "seed": seed, "input_shape": list(input_shape), "classes": classes,
            "precision": precision, "nparams": int(sum(int(np.prod(s)) for _, s in spec)), "tensors": entries,
            "data": {"dataset": dataset, "data_dir": data_dir, "n": n, "n_test": n_test,
                     "classes": classes if classes != CLASSES.get(dataset) else None,
                     "loss": loss}}
    _atomic(os.path.join(path, "model.json"), lambda f: f.write(json.dumps(meta, indent=2).encode() + b"\n"))
    return path


def _atomic(path, write):
    """Write through a temporary name and rename, as normsharp does."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
