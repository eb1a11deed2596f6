"""Test function: sleeps $SLEEP_MS milliseconds, then publishes "done:" + its input on "out".
With $EXIT_MS, the worker takes that long to exit after the node's shutdown (as a worker that
saves or unloads something on the way out does)."""

import atexit
import os
import time

import edgeflow_function as ef

SLEEP_S = int(os.environ.get("SLEEP_MS", "1500")) / 1000.0
if "EXIT_MS" in os.environ:
    atexit.register(time.sleep, int(os.environ["EXIT_MS"]) / 1000.0)


def handle(inputs, ctx):
    ctx.log("info", "slow: sleeping for item %s" % ctx.item_id)
    time.sleep(SLEEP_S)
    return {"out": b"done:" + inputs["in"].data}


ef.run(handle)
