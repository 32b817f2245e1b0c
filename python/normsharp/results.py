"""Runs, flows and sweeps written by normsharp, as plain Python objects (or pandas).

A run directory (``normsharp train --out DIR``, each sweep run) holds ``summary.json``
and ``trajectory.csv``; a flow directory the same with ``"kind": "flow"``; a sweep
``<dataset>/<arch>/<loss>/sweep.csv`` (and ``flow.csv`` with ``--flow``). File formats:
docs/OUTPUTS.md; what each column means and its unit: docs/CONVENTIONS.md.
"""
import csv
import json
import math
import os

import numpy as np


class Table(dict):
    """Columns of a CSV file: name -> NumPy array (float64 for numbers, empty cells and
    'nan' as NaN; object arrays for text such as ``status``). ``rows`` is the number of rows;
    ``frame()`` gives a pandas DataFrame when pandas is installed."""

    def __init__(self, columns, rows):
        super().__init__(columns)
        self.rows = rows

    def frame(self):
        import pandas  # optional
        return pandas.DataFrame(dict(self))

    def __repr__(self):
        return f"Table({self.rows} rows: {', '.join(self.keys())})"


def _number(cell):
    if cell == "":
        return math.nan
    return float(cell)  # 'nan', 'inf', '-inf' read as Python does


def read_csv(path):
    """A normsharp CSV file as a :class:`Table` (every column numeric unless a cell is not a number)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file, expected a header line") from None
        cells = [[] for _ in header]
        nrows = 0
        for lineno, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"{path}:{lineno}: {len(row)} cells, the header has {len(header)}")
            for c, v in enumerate(row):
                cells[c].append(v)
            nrows += 1
    cols = {}
    for name, values in zip(header, cells):
        try:
            cols[name] = np.array([_number(v) for v in values], dtype=np.float64)
        except ValueError:
            cols[name] = np.array(values, dtype=object)
    return Table(cols, nrows)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


class Run(dict):
    """One finished run: the keys of its summary.json (``config``, ``status``, ``final``, ...)
    plus ``trajectory`` (a :class:`Table` of trajectory.csv, or None) and ``dir``."""

    def __repr__(self):
        return f"Run({self.get('kind')} {self.get('dir')}: status {self.get('status')})"


def load_run(path, kind=None):
    """The run (or flow) in directory ``path``. Raises FileNotFoundError when summary.json is
    missing (the run did not finish) and ValueError when ``kind`` is given and differs."""
    summary = os.path.join(path, "summary.json")
    if not os.path.exists(summary):
        raise FileNotFoundError(f"{summary} is missing: {path} is not a finished normsharp run")
    doc = _read_json(summary)
    if kind is not None and doc.get("kind") != kind:
        raise ValueError(f"{summary} is a '{doc.get('kind')}', not a '{kind}'")
    run = Run(doc)
    run["dir"] = path
    traj = os.path.join(path, "trajectory.csv")
    run["trajectory"] = read_csv(traj) if os.path.exists(traj) else None
    return run


def load_flow(path):
    """A gradient-flow directory (``normsharp flow --out DIR`` or a sweep's ``seed_<s>/flow``):
    ``s_gf``, ``eta_c`` = 2/s_gf, ``trajectory`` (flow time ``time``, step ``h``, ...)."""
    return load_run(path, kind="flow")


class Sweep(dict):
    """A sweep: ``dir`` (the folder of sweep.csv), ``runs`` (:class:`Table` of sweep.csv, one
    row per run), ``flows`` (:class:`Table` of flow.csv, or None) and ``run(i)``, the full
    run of row i (its summary and trajectory)."""

    def run(self, i):
        eta, seed = self["runs"]["eta"][i], int(self["runs"]["seed"][i])
        return load_run(os.path.join(self["dir"], f"seed_{seed}", "lr_" + _g(eta)))

    def __repr__(self):
        return f"Sweep({self['dir']}: {self['runs'].rows} runs)"


def _g(x):
    """C's %g (the run directories are named lr_<%g of eta>)."""
    return "%g" % x


def load_sweep(path):
    """The sweep whose sweep.csv is in ``path`` or below it (``OUT`` of ``normsharp sweep
    --out OUT`` when it holds one sweep). With several below, returns a list of them."""
    found = []
    for root, _dirs, files in os.walk(path):
        if "sweep.csv" in files:
            found.append(root)
    if not found:
        raise FileNotFoundError(f"no sweep.csv in or below {path}")
    sweeps = []
    for root in sorted(found):
        flow = os.path.join(root, "flow.csv")
        sweeps.append(Sweep(dir=root, runs=read_csv(os.path.join(root, "sweep.csv")),
                            flows=read_csv(flow) if os.path.exists(flow) else None))
    return sweeps[0] if len(sweeps) == 1 else sweeps
