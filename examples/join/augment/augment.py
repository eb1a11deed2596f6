"""augment: draws a red box around each face of a frame. It needs two inputs of one item id:
`frame`, a binary PPM image (P6, 8 bits), and `faces`, the detector's coordinates as JSON
{"boxes": [[x, y, w, h], ...]}. Output `augmented`: the frame with the boxes (PPM)."""
import json

import edgeflow_function as ef

RED = b"\xff\x00\x00"


def parse_ppm(data):
    """(width, height, offset of the pixels) of a binary 8-bit PPM."""
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        if end == pos:
            raise ValueError("truncated PPM header")
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise ValueError("not an 8-bit binary PPM")
    width, height = int(fields[1]), int(fields[2])
    offset = pos + 1
    if len(data) - offset != 3 * width * height:
        raise ValueError("PPM size does not match %dx%d" % (width, height))
    return width, height, offset


def handle(inputs, ctx):
    try:
        width, height, offset = parse_ppm(inputs["frame"].data)
        boxes = json.loads(inputs["faces"].data)["boxes"]
    except (ValueError, KeyError, TypeError) as e:
        raise ef.PermanentError("bad input: %s" % e)
    image = bytearray(inputs["frame"].data)

    def paint(x, y):
        if 0 <= x < width and 0 <= y < height:
            i = offset + 3 * (y * width + x)
            image[i:i + 3] = RED

    for x, y, w, h in boxes:
        for dx in range(w):
            paint(x + dx, y)
            paint(x + dx, y + h - 1)
        for dy in range(h):
            paint(x, y + dy)
            paint(x + w - 1, y + dy)
    ctx.log("info", "item %s: %d face(s) on %dx%d" % (ctx.item_id, len(boxes), width, height))
    return {"augmented": ef.Output(bytes(image), content_type="image/x-portable-pixmap")}


ef.run(handle)
