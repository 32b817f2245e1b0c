"""python/normsharp against the normsharp program (NS_BIN): loading runs, sweeps and flows;
weights folders both ways; the loss computed in NumPy and PyTorch from loaded weights equals
normsharp's. The PyTorch tests are skipped when torch is not installed."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import normsharp as ns

BIN = os.environ.get("NS_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "normsharp"))
N = 200  # training examples: small enough for a few seconds per test
try:
    import torch
    from normsharp import torchnet
except ImportError:  # PyTorch is optional
    torch = None


def run(*args):
    """normsharp ARGS; its stdout (raises with stderr on a non-zero exit)."""
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if p.returncode != 0:
        raise AssertionError(f"normsharp {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p.stdout


def cli_measure(weights, *extra):
    """normsharp sharpness --json on the first N examples."""
    return json.loads(run("sharpness", "--weights", weights, "--n", N, "--top-k", 1, "--trace-probes", 0,
                          "--json", *extra))


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="normsharp-py-")
        cls.data = ns.load_data(n=N, n_test=50)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)


class ResultsTest(Base):
    def test_load_run_reads_summary_and_trajectory_columns(self):
        out = self.path("run")
        run("train", "--arch", "fc-tanh-8", "--n", N, "--n-test", 50, "--lr", 0.05, "--max-steps", 30,
            "--log-every", 10, "--eig-every", 10, "--top-k", 2, "--trace-probes", 0, "--out", out)
        r = ns.load_run(out)
        self.assertEqual(r["kind"], "train")
        self.assertEqual(r["status"], "max_steps")
        self.assertEqual(r["config"]["arch"], "fc-tanh-8")
        t = r["trajectory"]
        self.assertEqual(list(t["step"][:4]), [0.0, 10.0, 20.0, 30.0])
        self.assertTrue(np.isnan(t["test_loss"][1]))  # not measured on that row: NaN
        self.assertEqual(t["train_loss"][-1], r["final"]["train_loss"])
        with self.assertRaises(ValueError):
            ns.load_run(out, kind="flow")
        with self.assertRaises(FileNotFoundError):
            ns.load_run(self.path("nowhere"))

    def test_load_sweep_and_flow(self):
        out = self.path("sweep")
        run("sweep", "--arch", "fc-tanh-8", "--n", N, "--n-test", 50, "--flow", "--lr-around", 3, "--loss-goal", 0.3,
            "--max-steps", 200, "--top-k", 1, "--trace-probes", 0, "--quiet", "--out", out)
        s = ns.load_sweep(out)
        self.assertEqual(s["runs"].rows, 3)
        self.assertEqual(s["flows"].rows, 1)
        eta_c = s["flows"]["eta_c"][0]
        self.assertAlmostEqual(eta_c, 2 / s["flows"]["s_gf"][0], places=12)
        self.assertAlmostEqual(s["runs"]["eta"][1], eta_c, places=12)  # K = 3: the middle one is eta_c
        self.assertTrue(all(st in ("converged", "max_steps", "diverged") for st in s["runs"]["status"]))
        r = s.run(1)
        self.assertEqual(r["config"]["lr"], s["runs"]["eta"][1])
        f = ns.load_flow(os.path.join(s["dir"], "seed_0", "flow"))
        self.assertEqual(f["eta_c"], eta_c)
        self.assertIn("h", f["trajectory"])

    def test_read_csv_rejects_a_ragged_file(self):
        p = self.path("bad.csv")
        with open(p, "w") as fh:
            fh.write("a,b\n1,2\n3\n")
        with self.assertRaises(ValueError):
            ns.read_csv(p)


class WeightsTest(Base):
    def test_names_and_shapes_follow_the_architecture(self):
        w = self.path("w_cnn")
        run("init", "--arch", "cnn-relu-4-6-maxpool", "--seed", 2, "--out", w)
        names, tensors, meta = ns.read_weights(w)
        self.assertEqual([(n, tensors[n].shape) for n in names],
                         ns.arch_tensors("cnn-relu-4-6-maxpool", (1, 28, 28), 10))
        self.assertEqual(tensors["conv1.weight"].dtype, np.float32)

    def test_written_weights_give_the_same_measurement(self):
        w, w2 = self.path("w_fc"), self.path("w_fc_copy")
        run("init", "--arch", "fc-tanh-16", "--seed", 5, "--out", w)
        names, tensors, _ = ns.read_weights(w)
        ns.write_weights(w2, [tensors[n] for n in names], "fc-tanh-16", seed=5)
        a, b = cli_measure(w), cli_measure(w2)
        self.assertEqual(a["final"]["sharpness"], b["final"]["sharpness"])
        self.assertEqual(a["final"]["train_loss"], b["final"]["train_loss"])
        with self.assertRaises(ValueError):  # wrong shape
            ns.write_weights(self.path("bad"), [tensors[n].T for n in names], "fc-tanh-16")

    def test_numpy_forward_loss_equals_normsharp(self):
        w = self.path("w_np")
        run("init", "--arch", "fc-tanh-16-8", "--seed", 1, "--out", w)
        names, t, _ = ns.read_weights(w)
        x = self.data[0].reshape(N, -1)
        h = np.tanh(x @ t["fc1.weight"].T.astype(np.float64) + t["fc1.bias"])
        h = np.tanh(h @ t["fc2.weight"].T.astype(np.float64) + t["fc2.bias"])
        out = h @ t["fc3.weight"].T.astype(np.float64) + t["fc3.bias"]
        for kind in ("mse", "ce"):
            cli = cli_measure(w, "--loss", kind)["final"]["train_loss"]
            self.assertAlmostEqual(ns.loss_of_outputs(out, self.data[1], kind) / cli, 1.0, delta=2e-5)


@unittest.skipIf(torch is None, "PyTorch is not installed (scripts/install-deps --bench)")
class TorchTest(Base):
    def check_loss(self, arch, param="standard", kind="mse"):
        w = self.path(f"wt_{arch}_{param}")
        run("init", "--arch", arch, "--param", param, "--seed", 4, "--out", w)
        net = torchnet.from_weights(w)
        self.assertEqual([k for k in net.state_dict()], [n for n, _ in ns.arch_tensors(arch)])
        with torch.no_grad():
            got = torchnet.loss(net, self.data[0], self.data[1], kind).item()
        cli = cli_measure(w, "--loss", kind)["final"]["train_loss"]
        self.assertAlmostEqual(got / cli, 1.0, delta=2e-5, msg=f"{arch} {param} {kind}: torch {got}, normsharp {cli}")

    def test_fc_loss_equals_normsharp(self):
        self.check_loss("fc-tanh-16-8")
        self.check_loss("fc-gelu-12", kind="ce")

    def test_cnn_loss_equals_normsharp(self):
        self.check_loss("cnn-relu-4-avgpool")
        self.check_loss("cnn-elu-3-5-maxpool", kind="ce")

    def test_ntk_and_mup_loss_equals_normsharp(self):
        self.check_loss("fc-relu-16", "ntk")
        self.check_loss("fc-softplus-16", "mup")

    def test_a_pytorch_model_starts_sharpness_train_and_sweep(self):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16), torch.nn.Tanh(),
                                    torch.nn.Linear(16, 10)).double()
        w = self.path("from_torch")
        torchnet.save_module(model, w, "fc-tanh-16", n=N, precision="float64")
        with torch.no_grad():
            want = torchnet.loss(model, self.data[0], self.data[1]).item()
        m = cli_measure(w)
        self.assertAlmostEqual(m["final"]["train_loss"] / want, 1.0, delta=2e-5)
        # the sharpness is the top Hessian eigenvalue of that same loss (PyTorch double backward)
        params = list(model.parameters())
        L = torchnet.loss(model, self.data[0], self.data[1])
        g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(L, params, create_graph=True)])
        v = torch.randn(g.numel(), dtype=torch.float64)
        for _ in range(300):  # power iteration: the top eigenvalue of this Hessian is positive and isolated
            hv = torch.cat([x.reshape(-1) for x in torch.autograd.grad(g @ v, params, retain_graph=True)])
            lam, v = (v @ hv).item() / (v @ v).item(), hv / hv.norm()
        self.assertAlmostEqual(lam / m["final"]["sharpness"], 1.0, delta=1e-3)
        out = self.path("train_from_torch")
        run("train", "--weights", w, "--n", N, "--lr", 0.01, "--max-steps", 3, "--top-k", 1, "--trace-probes", 0,
            "--out", out)
        r = ns.load_run(out)
        self.assertEqual(r["config"]["weights_from"], w)
        self.assertAlmostEqual(r["initial_loss"] / want, 1.0, delta=2e-5)
        sw = self.path("sweep_from_torch")
        run("sweep", "--weights", w, "--n", N, "--lr", "0.01,0.02", "--max-steps", 3, "--top-k", 1,
            "--trace-probes", 0, "--quiet", "--out", sw)
        self.assertEqual(ns.load_sweep(sw)["runs"].rows, 2)

    def test_resnet_and_vit_losses_equal_normsharp_with_batch_norm_in_eval_mode_on_the_test_set(self):
        # normsharp evaluates the test set with batch norm in evaluation mode: the training
        # subset's mean and biased variance at the current weights, as PyTorch's eval() with
        # those set as running statistics (use_training_statistics)
        x, y, xt, yt = self.data
        for arch in ("resnet-relu-4-8-bn", "vit-P7-D16-L1-H2"):
            w = self.path(f"wt_{arch}")
            run("init", "--arch", arch, "--seed", 3, "--out", w)
            net = torchnet.from_weights(w)
            self.assertEqual(list(net.state_dict()), ns.read_weights(w)[0])
            m = json.loads(run("sharpness", "--weights", w, "--n", N, "--n-test", len(yt), "--top-k", 1,
                               "--eig-iters", 3, "--eig-tol", 0.5, "--trace-probes", 0, "--json"))["final"]
            with torch.no_grad():
                train = torchnet.loss(net, x, y).item()
                torchnet.use_training_statistics(net, x)
                test = torchnet.loss(net, xt, yt).item()
                net.train()
                own = torchnet.loss(net, xt, yt).item()  # the test batch's own statistics
            self.assertAlmostEqual(train / m["train_loss"], 1.0, delta=2e-5, msg=arch)
            self.assertAlmostEqual(test / m["test_loss"], 1.0, delta=2e-5, msg=f"{arch}: torch eval() {test}, "
                                   f"torch train() {own}, normsharp {m['test_loss']}")
            if arch.endswith("-bn"):  # else the two modes agree: nothing to tell apart
                self.assertGreater(abs(own - test), 1e-3 * test)

    def test_load_into_refuses_another_architecture(self):
        w = self.path("w_other")
        run("init", "--arch", "fc-tanh-16", "--out", w)
        with self.assertRaises(ValueError):
            torchnet.load_into(torchnet.build_module("fc-tanh-17"), w)


if __name__ == "__main__":
    unittest.main()
