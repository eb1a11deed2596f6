"""Shared plumbing of the examples (and of the Python benchmarks): a private edgeflowd on free
loopback ports, its HTTP API, pipeline deployment with the SDK copied next to each function, and a
small MQTT 5 subscriber that reads the channel envelope.

Standard library plus Debian's python3-paho-mqtt. Run with /usr/bin/python3.

    with Node() as node:                       # starts edgeflowd in a temporary directory
        node.deploy(example_dir / "pipeline.yaml", functions=["split", "speak"])
        with node.subscriber(["tts/audio"]) as sub:
            node.publish("tts/text", b"...", key="job-1")
            msg = sub.get(timeout=10)          # a Message: item_id, props, payload, ...

Everything started here is stopped on exit, on an exception, on SIGTERM/SIGINT, and, should the
script itself be killed, by the kernel: edgeflowd gets SIGTERM when its parent dies
(PR_SET_PDEATHSIG), and it takes its broker and workers with it.
"""

import atexit
import ctypes
import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SDK_PYTHON = REPO / "sdk" / "python" / "edgeflow_function.py"

_PR_SET_PDEATHSIG = 1


class ExampleError(Exception):
    """The scenario did not go as it must: the message says what was expected and what came."""


def binaries():
    """(edgeflowd, edgeflow): from $EDGEFLOWD / $EDGEFLOW, else <repo>/build/."""
    daemon = Path(os.environ.get("EDGEFLOWD") or REPO / "build" / "edgeflowd")
    cli = Path(os.environ.get("EDGEFLOW") or REPO / "build" / "edgeflow")
    for path, var in ((daemon, "EDGEFLOWD"), (cli, "EDGEFLOW")):
        if not os.access(path, os.X_OK):
            raise ExampleError("%s is not an executable; build it (cmake --build build) or set %s"
                               % (path, var))
    return daemon, cli


def require(programs=(), modules=()):
    """ExampleError naming the Debian package of each program or Python module that is missing."""
    import importlib.util
    missing = [package for path, package in programs if not os.access(path, os.X_OK)]
    missing += [package for module, package in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise ExampleError("missing: %s (Debian packages; scripts/setup installs them)"
                           % ", ".join(missing))


def now_ms():
    return time.time() * 1000.0


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _signal_exit(signum, _frame):
    raise SystemExit(128 + signum)


def install_signal_handlers():
    """SIGTERM and SIGINT end the script through SystemExit, so that finally/atexit clean up."""
    signal.signal(signal.SIGTERM, _signal_exit)
    signal.signal(signal.SIGINT, _signal_exit)


def bwrap_works():
    """Whether bubblewrap can make a sandbox here (root, or unprivileged user namespaces)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bwrap is not installed (Debian: bubblewrap)"
    try:
        run = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                              "/bin/true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "bwrap did not run: %s" % e
    if run.returncode != 0:
        return False, "bwrap cannot create a sandbox here: %s" % run.stderr.decode(
            "utf-8", "replace").strip()
    return True, ""


def choose_sandbox(log=print):
    """'bwrap' where it works, else 'process' (printing why). EDGEFLOW_EXAMPLE_SANDBOX=process
    (or bwrap) decides instead."""
    forced = os.environ.get("EDGEFLOW_EXAMPLE_SANDBOX", "")
    if forced in ("process", "bwrap"):
        log("note: EDGEFLOW_EXAMPLE_SANDBOX=%s" % forced)
        return forced
    ok, why = bwrap_works()
    if ok:
        return "bwrap"
    log("note: %s; the functions run with `sandbox: process` instead of bwrap"
        % why.rstrip(". "))
    return "process"


class Message:
    """One channel message as a plain MQTT 5 client sees it."""

    def __init__(self, msg, prefix, received_ms):
        self.topic = msg.topic
        self.channel = msg.topic[len(prefix):] if msg.topic.startswith(prefix) else msg.topic
        self.payload = bytes(msg.payload)
        self.received_ms = received_ms
        props = getattr(msg, "properties", None)
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        self.item_id = corr.decode("utf-8", "replace") if corr else ""
        self.content_type = getattr(props, "ContentType", "") if props is not None else ""
        self.props = dict(getattr(props, "UserProperty", []) or []) if props is not None else {}

    def prop_ms(self, name):
        value = self.props.get(name)
        return int(value) if value else None

    @property
    def inline(self):
        return self.props.get("ef-data", "inline") == "inline"

    def __repr__(self):
        return "Message(%s, item %s, %d bytes, %s)" % (self.channel, self.item_id,
                                                        len(self.payload), self.props)


class Subscriber:
    """A paho MQTT 5 client subscribed (QoS 1) to channels of the node; messages go to a queue."""

    def __init__(self, host, port, prefix, channels, client_id=""):
        import paho.mqtt.client as mqtt  # Debian: python3-paho-mqtt
        self._mqtt = mqtt
        self._prefix = prefix
        self._topics = [prefix + c for c in channels]
        self.queue = queue.Queue()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None):
        if reason_code == 0:
            client.subscribe([(t, 1) for t in self._topics])

    def _on_subscribe(self, *_args):
        self._subscribed.set()

    def _on_message(self, _client, _userdata, msg):
        self.queue.put(Message(msg, self._prefix, now_ms()))

    def __enter__(self):
        self._client.connect(self._host, self._port, keepalive=30, clean_start=True)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise ExampleError("no SUBACK from the broker at %s:%d within 10 s"
                               % (self._host, self._port))
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self._client.disconnect()
        except Exception:  # already gone
            pass
        self._client.loop_stop()

    def get(self, timeout):
        """The next message, or None after `timeout` seconds."""
        try:
            return self.queue.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None


class Node:
    """A private edgeflowd: data directory in a temporary directory, every port chosen by the
    kernel (read back from edgeflowd.listen.json)."""

    def __init__(self, name="example", log_level="warn", keep_dir=False):
        require(programs=[("/usr/sbin/mosquitto", "mosquitto")],
                modules=[("paho.mqtt.client", "python3-paho-mqtt")])
        self.daemon, self.cli_path = binaries()
        self.work = Path(tempfile.mkdtemp(prefix="edgeflow-%s." % name))
        self.data = self.work / "data"
        self.log_path = self.work / "edgeflowd.log"
        self._log_level = log_level
        self._keep_dir = keep_dir
        self.proc = None
        self.broker_pid = None
        self.http_addr = self.mqtt_addr = None
        self._conn = None
        self._closed = False
        atexit.register(self.close)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout=30):
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(self.daemon), "--data-dir", str(self.data), "--http-listen", "127.0.0.1:0",
             "--resp-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0",
             "--mqtt-ws-listen", "off", "--log-level", self._log_level],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        log.close()
        listen = self.data / "edgeflowd.listen.json"
        deadline = time.monotonic() + timeout
        while not listen.exists():
            if self.proc.poll() is not None:
                raise ExampleError("edgeflowd exited (%s) at start:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise ExampleError("edgeflowd did not write %s within %d s" % (listen, timeout))
            time.sleep(0.05)
        facts = json.loads(listen.read_text())
        self.http_addr, self.mqtt_addr = facts["http"], facts["mqtt"]
        self.broker_pid = facts.get("broker_pid")
        host, port = self.mqtt_addr.rsplit(":", 1)
        self.mqtt_host, self.mqtt_port = host, int(port)
        node = self.get_json("/v1/node")
        tenant = (node.get("channels") or {}).get("tenant", "default")
        self.topic_prefix = "ef/%s/ch/" % tenant
        # Ready when a put-then-publish goes through (store, broker, the node's MQTT session).
        while True:
            status, _, _ = self.request("POST", "/v1/channels/example-ready/publish", b"ready")
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise ExampleError("the node does not publish (HTTP %d) within %d s"
                                   % (status, timeout))
            time.sleep(0.1)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, (SystemExit, KeyboardInterrupt)):
            tail = self.log_tail()
            if tail.strip():
                print("--- the last lines of edgeflowd's log (%s):\n%s" % (self.log_path, tail),
                      file=sys.stderr)
        self.close()

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._conn is not None:
            self._conn.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # edgeflowd stops its broker; make sure (a recycled pid is never signalled: it must still
        # be a mosquitto using our directory).
        if self.broker_pid:
            for _ in range(50):
                if not self._is_our_broker():
                    break
                time.sleep(0.1)
            if self._is_our_broker():
                os.kill(self.broker_pid, signal.SIGKILL)
        if not self._keep_dir:
            shutil.rmtree(self.work, ignore_errors=True)

    def _is_our_broker(self):
        try:
            cmdline = Path("/proc/%d/cmdline" % self.broker_pid).read_bytes()
        except OSError:
            return False
        return str(self.work).encode() in cmdline

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # --- HTTP --------------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers dict (lower-case names), body bytes) on one keep-alive connection."""
        for attempt in (1, 2):
            if self._conn is None:
                host, port = self.http_addr.rsplit(":", 1)
                self._conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                response = self._conn.getresponse()
                data = response.read()
                return (response.status, {k.lower(): v for k, v in response.getheaders()}, data)
            except (http.client.HTTPException, ConnectionError, OSError):
                self._conn.close()
                self._conn = None
                if attempt == 2 or not self.alive():
                    raise
        raise AssertionError("unreachable")

    def get_json(self, path):
        status, _, body = self.request("GET", path)
        if status != 200:
            raise ExampleError("GET %s: HTTP %d: %s" % (path, status, body[:300]))
        return json.loads(body)

    def publish(self, channel, data, key=None, ns=None, content_type=None, mode=None,
                stream=None):
        """POST /v1/channels/{channel}/publish (put-then-publish); the node's JSON answer."""
        query = {k: v for k, v in (("key", key), ("ns", ns), ("mode", mode), ("stream", stream))
                 if v is not None}
        path = "/v1/channels/%s/publish" % urllib.parse.quote(channel, safe="/")
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Content-Type": content_type} if content_type else {}
        status, _, body = self.request("POST", path, data, headers)
        if status != 200:
            raise ExampleError("publish on %s: HTTP %d: %s" % (channel, status, body[:300]))
        return json.loads(body)

    def fetch_ref(self, ref):
        """The data of an `ef-ref` path (GET /v1/kv/<ns>/<key>)."""
        status, headers, body = self.request("GET", ref)
        if status != 200:
            raise ExampleError("GET %s: HTTP %d: %s" % (ref, status, body[:300]))
        return body, headers

    def data_of(self, message):
        """A message's data: inline in the payload, or read from EKV by its reference."""
        if message.inline:
            return message.payload
        return self.fetch_ref(message.props["ef-ref"])[0]

    def functions(self):
        """The node's function figures (GET /v1/functions, what `edgeflow ps --json` shows)."""
        return self.get_json("/v1/functions")["functions"]

    # --- the CLI -----------------------------------------------------------------------------
    def cli(self, *args, check=True, timeout=60):
        run = subprocess.run([str(self.cli_path), "--server", "http://" + self.http_addr,
                              *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=timeout)
        if check and run.returncode != 0:
            raise ExampleError("edgeflow %s: exit status %d: %s" % (
                " ".join(map(str, args)), run.returncode,
                run.stderr.decode("utf-8", "replace").strip()))
        return run.stdout.decode("utf-8", "replace")

    def deploy(self, spec_path, functions, sandbox="bwrap", replace=None):
        """Deploys `spec_path` with `edgeflow deploy` from a temporary copy of its directory in
        which each function directory (a name in `functions`) also holds the Python SDK;
        `sandbox:` lines are set to `sandbox` and `replace` ({old: new}) edits the spec text
        first. Returns the deploy answer (JSON)."""
        spec_path = Path(spec_path)
        stage = self.work / ("deploy-" + spec_path.parent.name)
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        for name in functions:
            source = spec_path.parent / name
            shutil.copytree(source, stage / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            shutil.copy2(SDK_PYTHON, stage / name / SDK_PYTHON.name)
        text = spec_path.read_text()
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        text = "\n".join(("%ssandbox: %s" % (line[:len(line) - len(line.lstrip())], sandbox))
                         if line.strip().startswith("sandbox:") else line
                         for line in text.splitlines()) + "\n"
        staged_spec = stage / spec_path.name
        staged_spec.write_text(text)
        return json.loads(self.cli("deploy", staged_spec, "--json"))

    def wait_workers(self, pipeline, timeout=30):
        """Waits until every function of `pipeline` has its min_workers running."""
        deadline = time.monotonic() + timeout
        while True:
            fns = [f for f in self.functions() if f["pipeline"] == pipeline]
            if fns and all(f["workers"] >= f["min_workers"] for f in fns):
                return fns
            if time.monotonic() > deadline:
                raise ExampleError("workers of %s did not start within %d s: %s\n%s" % (
                    pipeline, timeout, json.dumps(fns), self.function_logs(pipeline)))
            time.sleep(0.05)

    def function_logs(self, pipeline, lines=20):
        out = []
        for f in self.functions():
            if f["pipeline"] != pipeline:
                continue
            name = "%s/%s" % (pipeline, f["function"])
            out.append("--- edgeflow logs %s" % name)
            out.append(self.cli("logs", name, "-n", lines, check=False).rstrip())
        return "\n".join(out)

    def subscriber(self, channels, client_id=""):
        return Subscriber(self.mqtt_host, self.mqtt_port, self.topic_prefix, channels, client_id)


def main_guard(run, name):
    """Runs `run()` (which returns 0 or raises) with clean exits: 0 on success, 1 with a
    message on ExampleError, the usual traceback otherwise."""
    install_signal_handlers()
    sys.dont_write_bytecode = True
    try:
        code = run()
    except ExampleError as e:
        print("%s: FAILED: %s" % (name, e), file=sys.stderr)
        code = 1
    sys.stdout.flush()
    return code
