"""Test function: reports what it can see and do from inside its sandbox, as a JSON object on
"out": its working directory and user, which of /code, /usr and /tmp it can write, whether it can
connect to 127.0.0.1:$PORT (the node's HTTP port) and whether $HOST_DIR (a host directory) is
visible, the names of its environment variables, and the trace id it was invoked with."""

import json
import os
import socket

import edgeflow_function as ef


def writable(directory):
    path = os.path.join(directory, "probe-write-test")
    try:
        with open(path, "w") as f:
            f.write("x")
        os.remove(path)
        return True
    except OSError:
        return False


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def handle(inputs, ctx):
    report = {
        "cwd": os.getcwd(),
        "files": sorted(os.listdir(".")),
        "uid": os.getuid(),
        "code_writable": writable("/code") if os.path.isdir("/code") else writable("."),
        "usr_writable": writable("/usr"),
        "tmp_writable": writable("/tmp"),
        "node_reachable": can_connect(int(os.environ["PORT"])),
        "host_dir_visible": os.path.exists(os.environ["HOST_DIR"]),
        "env": sorted(os.environ.keys()),
        "trace_id": ctx.trace_id,
    }
    return {"out": json.dumps(report, sort_keys=True)}


ef.run(handle)
