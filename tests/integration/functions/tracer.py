"""Test function: publishes on "out" the item id, stream and trace id it was invoked with, and
its input, as a JSON object."""

import json

import edgeflow_function as ef


def handle(inputs, ctx):
    (name, given), = inputs.items()
    return {"out": json.dumps({"item_id": ctx.item_id, "stream": ctx.stream,
                               "trace_id": ctx.trace_id,
                               "data": given.data.decode("utf-8", "replace")}, sort_keys=True)}


ef.run(handle)
