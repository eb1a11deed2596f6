"""An edge function: upper-cases its input "in" and counts the items it has seen (in the
node-kept context). Try it: /usr/bin/python3 sdk/tests/protocol_harness.py --invoke in=hello
--times 2 -- env PYTHONPATH=sdk/python python3 sdk/python/examples/uppercase.py"""

import edgeflow_function as ef


def handle(inputs, ctx):
    count = int(ctx.get("count") or b"0") + 1
    ctx.put("count", str(count))
    ctx.log("info", "seen %d" % count)
    text = inputs["in"]
    return {"out": ef.Output(text.data.upper(), content_type=text.content_type)}


ef.run(handle)
