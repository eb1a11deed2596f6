"""Test function: answers like upper.py, then exits on its own (status 0) $EXIT_AFTER_MS
milliseconds after each invocation, while it is idle: a worker that dies between invocations."""

import os
import threading

import edgeflow_function as ef

EXIT_AFTER_S = int(os.environ.get("EXIT_AFTER_MS", "200")) / 1000.0


def handle(inputs, ctx):
    threading.Timer(EXIT_AFTER_S, os._exit, args=(0,)).start()
    return {"out": inputs["in"].data.upper()}


ef.run(handle)
