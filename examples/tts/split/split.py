"""split: one text-to-speech request -> one job per voice.

Input `request` (application/json): {"text": "...", "voices": ["en-us", "de", ...]}.
Output `jobs`: one item per voice, part = the voice (item id "<request id>.<voice>"), each
{"text": ..., "voice": ...}.
"""
import json
import re

import edgeflow_function as ef

VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # also a valid part
MAX_TEXT_BYTES = 4096
MAX_VOICES = 32


def handle(inputs, ctx):
    try:
        request = json.loads(inputs["request"].data)
        text, voices = request["text"], request["voices"]
    except (ValueError, KeyError, TypeError) as e:
        raise ef.PermanentError("not a request {\"text\", \"voices\"}: %s" % e)
    if not isinstance(text, str) or not text.strip() or len(text.encode()) > MAX_TEXT_BYTES:
        raise ef.PermanentError("text must be 1..%d bytes" % MAX_TEXT_BYTES)
    if (not isinstance(voices, list) or not 1 <= len(voices) <= MAX_VOICES
            or len(set(voices)) != len(voices)
            or not all(isinstance(v, str) and VOICE.match(v) for v in voices)):
        raise ef.PermanentError("voices must be 1..%d distinct voice names" % MAX_VOICES)
    ctx.log("info", "item %s: %d bytes of text, %d voices" % (ctx.item_id, len(text.encode()),
                                                              len(voices)))
    return {"jobs": [ef.Output(json.dumps({"text": text, "voice": v}),
                               content_type="application/json", part=v) for v in voices]}


ef.run(handle)
