"""The Python SDK's side of the shared conformance tests (sdk/tests/sdk_conformance.py): a
function whose input "op" selects a behaviour, like sdk/tests/cpp/conformance_function.cc, plus
a few behaviours only Python has (return value types)."""

import json
import os
import sys
import threading
import time

import edgeflow_function as ef

_previous_ctx = None


def _threads(ctx):
    problems = []

    def work(t):
        key = "t%d" % t
        for i in range(25):
            ctx.log("info", "%s %d" % (key, i))
            ctx.put(key, str(i))
            if ctx.get(key) != str(i).encode():
                problems.append(key + " read back a wrong value")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems[0] if problems else "ok"


def handle(inputs, ctx):
    global _previous_ctx
    stale, _previous_ctx = _previous_ctx, ctx
    op = inputs["op"].data.decode()
    data = inputs["in"].data if "in" in inputs else b""

    if op == "echo":
        return {"out": ef.Output(data, content_type=inputs["in"].content_type)}
    if op == "upper":
        return {"out": data.upper()}
    if op == "meta":
        return {"out": json.dumps({
            "item_id": ctx.item_id, "stream": ctx.stream, "attempt": ctx.attempt,
            "trace_id": ctx.trace_id, "deadline_ms": ctx.deadline_ms,
            "invocation_id": ctx.invocation_id,
            "inputs": [{"name": i.name, "content_type": i.content_type, "channel": i.channel,
                        "key": i.key, "size": len(i.data)} for i in inputs.values()]})}
    if op == "parts":
        tokens = data.decode().split(",")
        return {"out": [ef.Output(t.upper(), content_type="text/plain", part=t) for t in tokens],
                "count": str(len(tokens))}
    if op == "none":
        return None
    if op == "counter":
        count = int(ctx.get("count") or b"0") + 1
        ctx.put("count", str(count))
        ctx.log("info", "seen %d" % count)
        return {"out": str(count)}
    if op == "ctx":
        ctx.put("k", data, ttl_ms=60000)
        value = ctx.get("k")
        ctx.delete("k")
        gone = ctx.get("k") is None
        return {"out": value if value is not None else "<missing>", "gone": "yes" if gone else "no"}
    if op == "ctx_error_caught":
        try:
            ctx.get("fail")
            return {"out": "not refused"}
        except ef.Error as e:
            return {"out": "caught: %s" % e}
    if op == "ctx_error_uncaught":
        ctx.put("fail", "x")
        return {"out": "not refused"}
    if op == "raise":
        raise RuntimeError("boom: " + data.decode())
    if op == "permanent":
        raise ef.PermanentError("cannot parse: " + data.decode())
    if op == "print":
        print("print line")
        sys.stdout.write("stdout.write line\n")
        os.write(1, b"write line\n")
        if os.system("echo child line") != 0:
            raise RuntimeError("os.system failed")
        print("tail without newline", end="")
        return {"out": "printed"}
    if op == "read_stdin":
        return {"out": "eof" if sys.stdin.read() == "" else "read something"}
    if op == "log":
        for level, message in (("debug", "d"), ("info", "i"), ("warn", "w"), ("error", "e")):
            ctx.log(level, message)
        ctx.log("info", "via log()")
        return {}
    if op == "long_log":
        ctx.log("info", "x" * (100 * 1024))
        return {}
    if op == "bad_text_log":
        ctx.log("warn", "bad \udcff bytes")
        return {}
    if op == "bad_key":
        rejections = ""
        for key in ("", "k" * 513, "\udcff"):
            try:
                ctx.get(key)
                rejections += "accepted\n"
            except ef.Error as e:
                rejections += "rejected: %s\n" % e
        return {"out": rejections}
    if op == "bad_part":
        return {"out": ef.Output(b"x", part="not ok!")}
    if op == "duplicate":
        return {"out": [b"1", b"2"]}
    if op == "threads":
        return {"out": _threads(ctx)}
    if op == "sleep":
        time.sleep(int(data) / 1000)
        return {"out": "slept"}
    if op == "wait_for_file":
        give_up = time.monotonic() + 10
        while not os.path.exists(data):
            if time.monotonic() > give_up:
                raise RuntimeError("no file %s after 10 s" % data.decode())
            time.sleep(0.001)
        return {"out": "found"}
    if op == "crash":  # the process ends at once, like a crash: no cleanup, nothing flushed
        os._exit(3)
    if op == "too_many_outputs":  # 30000 entries make a result header over 1 MiB
        return {"out": [ef.Output(b"x", part="part-%d" % i) for i in range(30000)]}
    # Python only.
    if op == "types":
        return {"bytes": b"b", "str": "s\u00e9", "bytearray": bytearray(b"ba"),
                "memoryview": memoryview(b"mv"), "output": ef.Output("o", content_type="text/x"),
                "list": [ef.Output(b"1", part="p1"), ef.Output("2", part="p2")], "empty": []}
    if op == "bad_return":
        return 42
    if op == "bad_log_level":
        ctx.log("verbose", "x")
        return {}
    if op == "stale_ctx":
        try:
            stale.get("k")
            return {"out": "stale context worked"}
        except ef.Error as e:
            return {"out": "rejected: %s" % e}
    if op == "describe":
        return {"out": "%s attempt %d with %d inputs" % (ctx.item_id, ctx.attempt, len(inputs))}
    raise ef.PermanentError("unknown op: " + op)


if __name__ == "__main__":
    if os.environ.get("EF_TEST_PRINT_BEFORE_RUN"):
        print("early output before run()")  # still in sys.stdout's buffer when run() starts
    ef.run(handle)
