"""Test function with several inputs: publishes on "out" a JSON object of every input's name and
data (text), sorted by name, so a test sees which data was joined under one item id."""

import json

import edgeflow_function as ef


def handle(inputs, ctx):
    joined = {name: given.data.decode("utf-8", "replace") for name, given in inputs.items()}
    return {"out": json.dumps(joined, sort_keys=True)}


ef.run(handle)
