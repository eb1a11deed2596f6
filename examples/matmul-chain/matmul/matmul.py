"""matmul: one link of the chain. Input `m`: a matrix item (matrix.py); multiplies it by the fixed
matrix and counts the hop. While hops remain the product goes to output `next` (the function's own
input channel) with part = the hop number, so that each call is a new item ("<id>.1.2.3...") and
the node's duplicate check does not take it for the input it came from; the last product goes to
`done` (keeping its item id)."""
import edgeflow_function as ef
import matrix as mx


def handle(inputs, ctx):
    try:
        m, hop, hops = mx.decode(inputs["m"].data)
    except ValueError as e:
        raise ef.PermanentError(str(e))
    if hop >= hops:
        raise ef.PermanentError("item already did its %d hops" % hops)
    hop += 1
    out = mx.encode(mx.step(m), hop, hops)
    if hop == hops:
        return {"done": ef.Output(out, content_type=mx.CONTENT_TYPE)}
    return {"next": ef.Output(out, content_type=mx.CONTENT_TYPE, part=str(hop))}


ef.run(handle)
