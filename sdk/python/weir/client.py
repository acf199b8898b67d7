"""The weir HTTP client (see the package docstring)."""

import datetime
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

try:  # optional: DataFrames as reference data
    import pandas as _pd
except ImportError:  # pragma: no cover - depends on the environment
    _pd = None

try:  # optional: arrays as infer inputs and outputs
    import numpy as _np
except ImportError:  # pragma: no cover - depends on the environment
    _np = None

# Open Inference Protocol datatypes of numpy dtypes.
_NP_DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64",
}

_FINISHED = ("promoted", "rolled_back")


def _have_pyarrow():
    """Whether pandas can read Parquet here (pandas.read_parquet needs pyarrow)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _rfc3339(t):
    """An RFC 3339 string of a datetime (naive: UTC) or a string as given."""
    if isinstance(t, str):
        return t
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.isoformat()


class WeirError(Exception):
    """A non-2xx answer of the gateway: status is the HTTP status, message
    the gateway's error text (it names what was wrong)."""

    def __init__(self, status, message, method="", path=""):
        super().__init__("%s %s: %d %s" % (method, path, status, message))
        self.status = status
        self.message = message


def _q(name):
    return urllib.parse.quote(str(name), safe="")


def _read(data):
    """Bytes of a path, bytes, or a file object."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as f:
            return f.read()
    if hasattr(data, "read"):
        out = data.read()
        return out.encode() if isinstance(out, str) else out
    raise TypeError("expected a path, bytes or a file object, got %s" % type(data).__name__)


def config_path():
    """The per-user config `weir login` writes: $XDG_CONFIG_HOME/weir/config,
    else ~/.config/weir/config. JSON with "server" and "token"."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "weir", "config")


def _read_config():
    """The per-user config (empty when there is none) and its path."""
    path = config_path()
    try:
        with open(path) as f:
            return json.load(f), path
    except FileNotFoundError:
        return {}, path
    except (OSError, ValueError) as e:
        raise ValueError("%s: %s (rewrite it with weir login)" % (path, e)) from None


def _read_token(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


class Client:
    """A client of one gateway, found as the weir CLI finds it.

    server: the argument, else $WEIR_SERVER, else the server `weir login`
    saved, else http://127.0.0.1:8080. token (the admin token, needed for
    writes): the argument, else the file token_file, else $WEIR_ADMIN_TOKEN,
    else the token `weir login` saved (see config_path), else
    <data_dir>/admin-token, the file `weir serve` writes, relative to the
    working directory. token_from says where it came from.
    """

    def __init__(self, server=None, token=None, data_dir="weir-data", timeout=60.0, token_file=None):
        config, cpath = _read_config()
        self.server = (server or os.environ.get("WEIR_SERVER") or config.get("server")
                       or "http://127.0.0.1:8080").rstrip("/")
        looked = ["token=", "token_file=", "$WEIR_ADMIN_TOKEN", cpath + " (weir login)"]
        data_token = os.path.abspath(os.path.join(data_dir, "admin-token"))
        if token is not None:
            self.token_from = "the token argument"
        elif token_file is not None:
            with open(token_file) as f:  # a file named but unreadable fails here
                token = f.read().strip()
            self.token_from = "token_file " + str(token_file)
        elif os.environ.get("WEIR_ADMIN_TOKEN"):
            token, self.token_from = os.environ["WEIR_ADMIN_TOKEN"], "$WEIR_ADMIN_TOKEN"
        elif config.get("token"):
            token, self.token_from = config["token"], cpath + " (weir login)"
        else:
            token = _read_token(data_token) or None
            self.token_from = data_token if token else "none found; looked in " + ", ".join(looked + [data_token])
        self.token = token
        self.timeout = timeout
        self._inputs = {}

    def _explain_401(self):
        if self.token:
            return "the admin token sent came from %s: is it the token of the gateway at %s?" % (
                self.token_from, self.server)
        return ("no admin token: %s. Give the gateway's token (weir serve writes it to "
                "<data-dir>/admin-token) as token= or token_file=, $WEIR_ADMIN_TOKEN, or save it "
                "once with weir login --server URL --token-file FILE" % self.token_from)

    # -- HTTP ---------------------------------------------------------------

    def _call(self, method, path, body=None, content_type="application/json", raw=False):
        with self._open(method, path, body, content_type) as resp:
            out = resp.read()
        if raw:
            return out
        return json.loads(out) if out.strip() else None

    def _open(self, method, path, body=None, content_type="application/json", accept="application/json"):
        """The gateway's answer, open for reading (a 2xx), or WeirError."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace").strip()
            try:
                text = json.loads(text).get("error") or text
            except (ValueError, AttributeError):
                pass
            text = text or e.reason
            if e.code == 401:
                text += "\n" + self._explain_401()
            raise WeirError(e.code, text, method, path) from None
        except urllib.error.URLError as e:
            raise ConnectionError("weir gateway at %s: %s" % (self.server, e.reason)) from None

    def get(self, path):
        """GET a JSON endpoint (any path of the API)."""
        return self._call("GET", path)

    # -- models -------------------------------------------------------------

    def push_model(self, name, version, onnx, features=None, reference=None):
        """Upload an ONNX model (path, bytes or file) as name@version.

        features is the column order of the model's input (a list of names);
        reference, when given, is pushed too (see push_reference)."""
        path = "/v1/models/%s/versions/%s" % (_q(name), _q(version))
        if features:
            path += "?features=" + urllib.parse.quote(",".join(features), safe=",")
        out = self._call("PUT", path, _read(onnx), "application/octet-stream")
        if reference is not None:
            self.push_reference(name, version, reference)
        return out

    def push_reference(self, name, version, reference):
        """Upload a model version's reference (training) data: a CSV path,
        CSV bytes, a list of dicts, or a pandas DataFrame (written as CSV
        without its index). Columns are the model's feature names."""
        if _pd is not None and isinstance(reference, _pd.DataFrame):
            body, ct = reference.to_csv(index=False).encode(), "text/csv"
        elif isinstance(reference, list):
            body, ct = json.dumps(reference).encode(), "application/json"
        else:
            body, ct = _read(reference), "text/csv"
        return self._call("PUT", "/v1/models/%s/versions/%s/reference" % (_q(name), _q(version)), body, ct)

    def models(self):
        """The models with their versions and states."""
        return self._call("GET", "/v1/models").get("models", [])

    def delete_model(self, name, version):
        return self._call("DELETE", "/v1/models/%s/versions/%s" % (_q(name), _q(version)))

    # -- plugins ------------------------------------------------------------

    def push_plugin(self, name, version, wasm, timeout=None, memory_mb=None):
        """Upload a Wasm plugin (path, bytes or file). timeout ("250ms") and
        memory_mb override the per-call limits."""
        params = {}
        if timeout is not None:
            params["timeout"] = timeout
        if memory_mb is not None:
            params["memory_mb"] = str(memory_mb)
        path = "/v1/plugins/%s/versions/%s" % (_q(name), _q(version))
        if params:
            path += "?" + urllib.parse.urlencode(params)
        return self._call("PUT", path, _read(wasm), "application/wasm")

    def plugins(self):
        return self._call("GET", "/v1/plugins").get("plugins", [])

    # -- routes and inference -----------------------------------------------

    def set_route(self, route, spec):
        """Create or replace a route: spec is the JSON object of
        PUT /v1/routes/{route} (plugins, postprocess, variants, sticky...)."""
        return self._call("PUT", "/v1/routes/%s" % _q(route), spec)

    def route(self, route):
        return self._call("GET", "/v1/routes/%s" % _q(route))

    def routes(self):
        return self._call("GET", "/v1/routes").get("routes", [])

    def predict(self, route, event):
        """Send a raw JSON event (a dict) through a route's plugins and model."""
        return self._call("POST", "/v1/routes/%s/predict" % _q(route), event)

    def infer(self, model, data, version=None, input_name=None, datatype="FP32"):
        """Score rows with a model or route over the Open Inference Protocol.

        data is a list of rows ([[...], [...]]), one row ([...]), a numpy
        array, or a full OIP request ({"inputs": [...]}) sent as is. The
        answer is {output name: data}, each a numpy array shaped as the
        output when numpy is importable, else a flat list; the full OIP
        response (model_name, model_version...) is under the key "_response"."""
        path = "/v2/models/%s" % _q(model)
        if version is not None:
            path += "/versions/%s" % _q(version)
        if isinstance(data, dict) and "inputs" in data:
            req = data
        else:
            name = input_name or self._input_name(model, version)
            shape, flat, dt = self._tensor(data, datatype)
            req = {"inputs": [{"name": name, "shape": shape, "datatype": dt, "data": flat}]}
        resp = self._call("POST", path + "/infer", req)
        out = {}
        for o in resp.get("outputs", []):
            values = o.get("data", [])
            if _np is not None and o.get("datatype") != "BYTES":
                values = _np.asarray(values).reshape(o.get("shape", [len(values)]))
            out[o["name"]] = values
        out["_response"] = resp
        return out

    def _input_name(self, model, version):
        key = (model, version)
        if key not in self._inputs:
            path = "/v2/models/%s" % _q(model)
            if version is not None:
                path += "/versions/%s" % _q(version)
            inputs = self._call("GET", path).get("inputs") or []
            if not inputs:
                raise ValueError("model %s has no inputs in its metadata: pass input_name" % model)
            self._inputs[key] = inputs[0]["name"]
        return self._inputs[key]

    @staticmethod
    def _tensor(data, datatype):
        if _np is not None and isinstance(data, _np.ndarray):
            arr = data
            if arr.ndim == 1:
                arr = arr.reshape(1, -1)
            dt = _NP_DATATYPES.get(str(arr.dtype), datatype)
            if dt not in ("FP32",) and datatype == "FP32" and arr.dtype.kind == "f":
                arr, dt = arr.astype("float32"), "FP32"  # float64 frames -> the model's FP32
            return list(arr.shape), arr.ravel().tolist(), dt
        if _pd is not None and isinstance(data, _pd.DataFrame):
            return Client._tensor(data.to_numpy(dtype="float32"), datatype)
        rows = list(data)
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]
        width = len(rows[0]) if rows else 0
        for i, r in enumerate(rows):
            if len(r) != width:
                raise ValueError("row %d has %d values, row 0 has %d: rows must be the same length" % (i, len(r), width))
        return [len(rows), width], [v for r in rows for v in r], datatype

    # -- canaries -----------------------------------------------------------

    def canary_start(self, route, to, steps=None, interval=None, max_error_rate=None,
                     max_p99_ms=None, max_drift=None, min_requests=None, variant=None, drift_mode=None):
        """Start a rollout of to ("model@version", or "model") on route.
        The canary's answers are judged against the stable variant's over the
        same period by default (max_drift 0.25, a PSI per numeric output);
        max_drift="off" turns that off. drift_mode "absolute" also judges the
        canary's own drift (the drift monitor's) against max_drift."""
        model, _, version = str(to).partition("@")
        spec = {"model": model}
        if version:
            spec["version"] = version
        for key, value in (("steps", steps), ("interval", interval), ("max_error_rate", max_error_rate),
                           ("max_p99_ms", max_p99_ms), ("max_drift", max_drift),
                           ("min_requests", min_requests), ("variant", variant), ("drift_mode", drift_mode)):
            if value is not None:
                spec[key] = value
        return self._call("POST", "/v1/routes/%s/rollout" % _q(route), spec)

    def canary_status(self, route):
        return self._call("GET", "/v1/routes/%s/rollout" % _q(route))

    def canary_watch(self, route, timeout=None, poll=1.0, on_change=None):
        """Follow a rollout until it is promoted or rolled back and return
        its last status. on_change(status) is called whenever the state,
        weight or reason changes (default: print a line). TimeoutError
        after timeout seconds (default: no limit)."""
        if on_change is None:
            def on_change(st):
                print("%s at %s%%: %s" % (st.get("state"), st.get("weight"), st.get("reason")))
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            st = self.canary_status(route)
            key = (st.get("state"), st.get("weight"), st.get("reason"))
            if key != last:
                on_change(st)
                last = key
            if st.get("state") in _FINISHED and st.get("route_applied", True):
                return st
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("rollout of route %s still %s at %s%% after %ss" % (route, st.get("state"), st.get("weight"), timeout))
            time.sleep(poll)

    def _action(self, route, action):
        return self._call("POST", "/v1/routes/%s/rollout/%s" % (_q(route), action))

    def canary_abort(self, route):
        """Send all traffic back to the stable variant at once."""
        return self._action(route, "abort")

    def canary_promote(self, route):
        return self._action(route, "promote")

    def canary_pause(self, route):
        return self._action(route, "pause")

    def canary_resume(self, route):
        return self._action(route, "resume")

    # -- monitoring ---------------------------------------------------------

    def drift(self, model, version=None):
        """Each feature's drift: a list of dicts (feature, metric, value,
        threshold, drifted, state, progress, window...), or a DataFrame when
        pandas is importable and frame=True is wanted: see drift_frame."""
        path = "/v1/drift/%s" % _q(model)
        if version is not None:
            path += "/versions/%s" % _q(version)
        return self._call("GET", path).get("results", [])

    def drift_frame(self, model, version=None):
        """drift() as a pandas DataFrame (needs pandas)."""
        if _pd is None:
            raise ImportError("drift_frame needs pandas")
        return _pd.DataFrame(self.drift(model, version))

    def stats(self, route, window=None):
        """A route's live per-variant figures (requests, errors, latency,
        outputs) over window ("1m"; default the gateway's)."""
        path = "/v1/routes/%s/stats" % _q(route)
        if window:
            path += "?window=" + urllib.parse.quote(window)
        return self._call("GET", path)

    def events(self, route, since=None, until=None, format=None):
        """A route's archived events (GET /v1/events), oldest first.

        since and until bound the events' ts (until exclusive): datetimes
        (naive ones are UTC) or RFC 3339 strings; default, the whole archive.
        With pandas importable the answer is a DataFrame, read from Parquet
        (typed columns) when pyarrow is importable too, else from CSV
        (features and outputs as columns "features.NAME", "outputs.NAME").
        Without pandas it is a list of dicts, one per event, as published.
        format ("parquet", "csv" or "jsonl") overrides that choice; the
        download is streamed, and a rows list is read line by line. Events
        reach the archive in files closed every 10 s, so the newest seconds
        are not there yet. An unknown route is a WeirError 404 naming the
        routes."""
        if format is None:
            format = "jsonl" if _pd is None else ("parquet" if _have_pyarrow() else "csv")
        params = {"route": route, "format": format}
        for key, t in (("since", since), ("until", until)):
            if t is not None:
                params[key] = _rfc3339(t)
        path = "/v1/events?" + urllib.parse.urlencode(params)
        with self._open("GET", path, accept="*/*") as resp:
            if format == "jsonl":
                rows = [json.loads(line) for line in resp if line.strip()]
                return _pd.DataFrame(rows) if _pd is not None else rows
            if _pd is None:
                raise ImportError("events(format=%r) needs pandas; format=\"jsonl\" gives plain rows" % format)
            if format == "csv":
                return _pd.read_csv(resp, parse_dates=["ts"])
            return _pd.read_parquet(io.BytesIO(resp.read()))

    def alerts(self, n=20):
        return self._call("GET", "/v1/alerts?n=%d" % n).get("alerts", [])
