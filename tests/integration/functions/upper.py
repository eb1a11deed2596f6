"""Test function: upper-cases its one input and publishes it on output "out", prefixed with
$PREFIX (so that the stages of a chain can be told apart). Logs one line per item with ctx.log."""

import os

import edgeflow_function as ef

PREFIX = os.environ.get("PREFIX", "").encode()


def handle(inputs, ctx):
    (name, given), = inputs.items()
    ctx.log("info", "upper handled item %s (input %s, attempt %d)" % (ctx.item_id, name, ctx.attempt))
    return {"out": ef.Output(PREFIX + given.data.upper(), content_type="text/plain")}


ef.run(handle)
