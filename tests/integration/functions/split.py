"""Test function: splits one item into several. The input is "<parts>:<bytes>"; the function
returns <parts> items on "out", each of <bytes> bytes of one letter ("a", "b", ...), with the
parts "p0", "p1", ... (so their item ids are "<item_id>.p0", ...)."""

import edgeflow_function as ef


def handle(inputs, ctx):
    parts, size = (int(n) for n in inputs["in"].data.split(b":"))
    return {"out": [ef.Output(bytes([ord("a") + i]) * size, part="p%d" % i) for i in range(parts)]}


ef.run(handle)
