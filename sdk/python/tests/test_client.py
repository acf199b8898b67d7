"""Tests of the weir Python client against a real gateway.

sdk/python/python_test.go starts the gateway (embedded NATS, real ONNX
Runtime) and runs `python3 -m unittest discover -s sdk/python/tests` with:
WEIR_SERVER, WEIR_ADMIN_TOKEN, WEIR_TEST_MODEL_V1 and _V2 (ONNX files of a
logistic regression over features a,b), WEIR_TEST_PLUGIN (a Wasm plugin that
echoes its input as features). Run alone, the tests skip.
"""

import datetime
import json
import os
import tempfile
import threading
import time
import unittest

import weir

try:
    import numpy
except ImportError:
    numpy = None

try:
    import pandas
except ImportError:
    pandas = None

ENV = ("WEIR_SERVER", "WEIR_ADMIN_TOKEN", "WEIR_TEST_MODEL_V1", "WEIR_TEST_MODEL_V2", "WEIR_TEST_PLUGIN")


@unittest.skipUnless(all(os.environ.get(k) for k in ENV), "needs a gateway: run through go test ./sdk/python")
class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = weir.Client(os.environ["WEIR_SERVER"], os.environ["WEIR_ADMIN_TOKEN"])
        cls.reference = os.path.join(tempfile.mkdtemp(), "train.csv")
        with open(cls.reference, "w") as f:
            f.write("a,b\n")
            for i in range(200):
                f.write("%g,%g\n" % (i % 10 * 0.1, (i * 7) % 13 * 0.05))
        cls.c.push_model("py", "1", os.environ["WEIR_TEST_MODEL_V1"], features=["a", "b"], reference=cls.reference)
        cls.c.push_model("py", "2", os.environ["WEIR_TEST_MODEL_V2"], features=["a", "b"], reference=cls.reference)
        cls.c.push_plugin("py-echo", "1", os.environ["WEIR_TEST_PLUGIN"])
        cls.c.set_route("py", {
            "plugins": [{"name": "py-echo", "version": "1"}],
            "variants": [{"name": "stable", "model": "py", "version": "1", "weight": 100}],
        })

    def predict_many(self, n, route="py"):
        for i in range(n):
            self.c.predict(route, {"a": i % 10 * 0.1, "b": (i * 7) % 13 * 0.05})

    def test_models_and_plugins_are_listed(self):
        models = {m["name"]: [v["version"] for v in m["versions"]] for m in self.c.models()}
        self.assertIn("1", models.get("py", []), models)
        self.assertIn("2", models.get("py", []), models)
        self.assertIn("py-echo", [p["name"] for p in self.c.plugins()])

    def test_infer_lists(self):
        out = self.c.infer("py", [[0.5, 0.25], [0.1, 0.2]], version="1")
        self.assertEqual(out["_response"]["model_version"], "1")
        score = out["score"]
        flat = score.ravel().tolist() if numpy is not None else score
        self.assertEqual(len(flat), 2)
        for v in flat:
            self.assertTrue(0 < v < 1, flat)
        one = self.c.infer("py", [0.5, 0.25], version="1")["score"]
        self.assertAlmostEqual(float(numpy.ravel(one)[0]) if numpy is not None else one[0], float(flat[0]), places=5)

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_infer_numpy(self):
        out = self.c.infer("py", numpy.array([[0.5, 0.25]], dtype="float64"), version="1")
        self.assertEqual(out["score"].shape, (1, 1))

    def test_errors_name_what_is_wrong(self):
        with self.assertRaises(weir.WeirError) as e:
            self.c.infer("py", [[1, 2, 3]], version="1")
        self.assertEqual(e.exception.status, 400)
        self.assertIn("shape", e.exception.message)
        with self.assertRaises(weir.WeirError) as e:
            self.c.route("no-such-route")
        self.assertEqual(e.exception.status, 404)

    def test_predict_route_and_stats(self):
        self.predict_many(5)
        ans = self.c.predict("py", {"a": 0.3, "b": 0.1})
        self.assertEqual(ans["route"], "py")
        self.assertEqual(ans["model"], "py")
        self.assertIn("stable", str(self.c.route("py")))
        stats = self.c.stats("py")
        self.assertIn("variants", stats)

    def test_drift_reports_states(self):
        self.predict_many(3)
        res = self.c.drift("py", version="1")
        self.assertEqual({r["feature"] for r in res if r.get("kind") != "output"} >= {"a", "b"}, True, res)
        for r in res:
            self.assertIn(r["state"], ("ok", "drifted", "warming_up", "collecting_reference"), r)

    @unittest.skipIf(pandas is None, "pandas is not installed")
    def test_reference_from_dataframe(self):
        df = pandas.read_csv(self.reference)
        self.c.push_reference("py", "2", df)

    def test_events_export(self):
        self.c.set_route("eventsroute", {
            "plugins": [{"name": "py-echo", "version": "1"}],
            "variants": [{"name": "stable", "model": "py", "version": "1", "weight": 100}],
        })
        since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        self.predict_many(3, route="eventsroute")
        # The archive closes a file every 10s: poll (generously) for it.
        deadline, rows = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            rows = self.c.events("eventsroute", since=since, format="jsonl")
            if pandas is not None:
                rows = rows.to_dict("records")
            if len(rows) >= 3:
                break
            time.sleep(0.5)
        self.assertEqual(len(rows), 3, rows)
        self.assertEqual([round(r["features"]["a"], 6) for r in rows], [0, 0.1, 0.2])
        self.assertTrue(all(r["route"] == "eventsroute" and r["status"] == 200 for r in rows), rows)

        got = self.c.events("eventsroute", since=since.isoformat(), until=datetime.datetime.now(datetime.timezone.utc))
        if pandas is None:
            self.assertIsInstance(got, list)
            self.assertEqual(len(got), 3)
        else:
            self.assertIsInstance(got, pandas.DataFrame)
            self.assertEqual(len(got), 3)
        if pandas is not None:
            df = self.c.events("eventsroute", since=since, format="csv")
            self.assertEqual([round(v, 6) for v in df["features.a"]], [0, 0.1, 0.2])

        with self.assertRaises(weir.WeirError) as e:
            self.c.events("no-such-route")
        self.assertEqual(e.exception.status, 404)
        self.assertIn("eventsroute", e.exception.message)
        with self.assertRaises(weir.WeirError) as e:
            self.c.events("eventsroute", since="yesterday")
        self.assertEqual(e.exception.status, 400)

    def test_canary_start_watch_abort(self):
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                self.predict_many(5, route="canaryroute")

        self.c.set_route("canaryroute", {
            "plugins": [{"name": "py-echo", "version": "1"}],
            "variants": [{"name": "stable", "model": "py", "version": "1", "weight": 100}],
        })
        t = threading.Thread(target=traffic)
        t.start()
        try:
            # py@2 answers differently from py@1 on purpose (its first weight
            # is 1.5): judged on its answers, as by default, it would be
            # rolled back; this test is about the mechanics.
            st = self.c.canary_start("canaryroute", "py@2", steps=[50, 100], interval="300ms", min_requests=1,
                                     max_drift="off")
            self.assertEqual(st["state"], "progressing")
            seen = []
            final = self.c.canary_watch("canaryroute", timeout=60, poll=0.1, on_change=seen.append)
            self.assertEqual(final["state"], "promoted", final)
            self.assertTrue(seen)

            self.c.canary_start("canaryroute", "py@1", steps=[50, 100], interval="1h")
            st = self.c.canary_abort("canaryroute")
            self.assertEqual(st["state"], "rolled_back", st)
            self.assertEqual(self.c.canary_status("canaryroute")["state"], "rolled_back")
        finally:
            stop.set()
            t.join()


@unittest.skipUnless(all(os.environ.get(k) for k in ENV), "needs a gateway: run through go test ./sdk/python")
class FindsTheGatewayTest(unittest.TestCase):
    """Away from the repository's root the client finds the gateway and its
    token as the CLI does, and a 401 says where the token came from."""

    def setUp(self):
        self.saved = dict(os.environ)
        self.cwd = os.getcwd()
        self.config = tempfile.mkdtemp()
        os.chdir(tempfile.mkdtemp())  # a notebook's directory: no weir-data
        os.environ["XDG_CONFIG_HOME"] = self.config
        self.server, self.token = os.environ.pop("WEIR_SERVER"), os.environ.pop("WEIR_ADMIN_TOKEN")

    def tearDown(self):
        os.chdir(self.cwd)
        os.environ.clear()
        os.environ.update(self.saved)

    def test_no_token_names_where_it_looked(self):
        with self.assertRaises(weir.WeirError) as cm:
            weir.Client(self.server).delete_model("nope", "1")
        self.assertEqual(cm.exception.status, 401)
        self.assertIn("no admin token: none found; looked in", str(cm.exception))
        self.assertIn(os.path.join(self.config, "weir", "config") + " (weir login)", str(cm.exception))
        self.assertIn(os.path.join(os.getcwd(), "weir-data", "admin-token"), str(cm.exception))
        os.environ["WEIR_ADMIN_TOKEN"] = "wrong"
        with self.assertRaises(weir.WeirError) as cm:
            weir.Client(self.server).delete_model("nope", "1")
        self.assertIn("came from $WEIR_ADMIN_TOKEN", str(cm.exception))

    def test_config_of_weir_login(self):
        os.makedirs(os.path.join(self.config, "weir"))
        with open(weir.config_path(), "w") as f:
            json.dump({"server": self.server, "token": self.token}, f)
        c = weir.Client()
        self.assertEqual(c.server, self.server.rstrip("/"))
        with self.assertRaises(weir.WeirError) as cm:
            c.delete_model("nope", "1")
        self.assertEqual(cm.exception.status, 404)  # past the token check


class OfflineTest(unittest.TestCase):
    """What needs no gateway: argument handling."""

    def test_tensor_shapes(self):
        self.assertEqual(weir.Client._tensor([[1, 2], [3, 4]], "FP32"), ([2, 2], [1, 2, 3, 4], "FP32"))
        self.assertEqual(weir.Client._tensor([1, 2, 3], "FP32"), ([1, 3], [1, 2, 3], "FP32"))
        with self.assertRaises(ValueError):
            weir.Client._tensor([[1, 2], [3]], "FP32")

    def test_token_from_data_dir(self):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "admin-token"), "w") as f:
            f.write("tok\n")
        old = os.environ.pop("WEIR_ADMIN_TOKEN", None)
        try:
            self.assertEqual(weir.Client("http://x", data_dir=d).token, "tok")
        finally:
            if old is not None:
                os.environ["WEIR_ADMIN_TOKEN"] = old

    def test_token_file(self):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "tok"), "w") as f:
            f.write("from-file\n")
        c = weir.Client("http://x", token_file=os.path.join(d, "tok"))
        self.assertEqual((c.token, c.token_from), ("from-file", "token_file " + os.path.join(d, "tok")))
        with self.assertRaises(OSError):
            weir.Client("http://x", token_file=os.path.join(d, "missing"))

    def test_unreachable_gateway_is_a_connection_error(self):
        with self.assertRaises(ConnectionError):
            weir.Client("http://127.0.0.1:1", token="t", timeout=2).models()


if __name__ == "__main__":
    unittest.main()
