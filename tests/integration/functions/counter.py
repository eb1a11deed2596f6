"""Test function: counts the items it has seen in the node-kept context (key "count") and
publishes "<stream>:<count>:<data>" on "out"."""

import edgeflow_function as ef


def handle(inputs, ctx):
    count = int(ctx.get("count") or b"0") + 1
    ctx.put("count", str(count))
    data = inputs["in"].data.decode()
    return {"out": "%s:%d:%s" % (ctx.stream, count, data)}


ef.run(handle)
