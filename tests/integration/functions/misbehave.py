"""Test function that fails in the way its input asks for (the text before the first ':'):

  crash      exits at once with status 3 (after a line on stderr)
  hang       sleeps far past any timeout
  garbage    writes bytes that are not a frame on the real protocol stream, then returns
  unknown    returns an output the spec does not declare ("nope")
  big        returns an output of $BIG_BYTES bytes (the test sets it above max_payload_bytes)
  permanent  raises PermanentError
  fail       raises an ordinary exception (retried by the node)
  flaky      raises on the first attempt, succeeds on the next ("ok:" + the input)
  sleep      sleeps for the milliseconds after the ':' ("sleep:300"), then succeeds
  attempt    returns "attempt=<n>": which attempt this invocation is
  anything else succeeds: "ok:" + the input on "out".
"""

import os
import sys
import time

import edgeflow_function as ef


def handle(inputs, ctx):
    data = inputs["in"].data
    what = data.split(b":", 1)[0]
    if what == b"crash":
        sys.stderr.write("misbehave: crashing on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    if what == b"hang":
        time.sleep(60)
    if what == b"garbage":
        # The SDK keeps the protocol stream on a private descriptor (fd 1 is stderr by now).
        os.write(ctx._channel._out_fd, b"this is not a frame\n")
        return {"out": b"after garbage"}
    if what == b"unknown":
        return {"nope": b"x"}
    if what == b"big":
        return {"out": b"x" * int(os.environ["BIG_BYTES"])}
    if what == b"permanent":
        raise ef.PermanentError("cannot parse this item (permanent)")
    if what == b"fail":
        raise RuntimeError("failing on purpose, attempt %d" % ctx.attempt)
    if what == b"sleep":
        time.sleep(int(data.split(b":", 1)[1]) / 1000.0)
    if what == b"attempt":
        return {"out": b"attempt=%d" % ctx.attempt}
    if what == b"flaky" and ctx.attempt < 2:
        raise RuntimeError("flaky on attempt %d" % ctx.attempt)
    return {"out": b"ok:" + data}


ef.run(handle)
