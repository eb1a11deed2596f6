"""speak: one job {"text", "voice"} -> a WAV file spoken by espeak-ng (Debian's espeak-ng).

Output `audio` (audio/wav) keeps the job's item id ("<request id>.<voice>"). The node stores it
in EKV and, as it is far larger than the inline threshold, announces it by reference.
"""
import json
import os
import re
import subprocess
import tempfile

import edgeflow_function as ef

ESPEAK = "/usr/bin/espeak-ng"
VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def handle(inputs, ctx):
    try:
        job = json.loads(inputs["job"].data)
        text, voice = job["text"], job["voice"]
    except (ValueError, KeyError, TypeError) as e:
        raise ef.PermanentError("not a job {\"text\", \"voice\"}: %s" % e)
    if not isinstance(voice, str) or not VOICE.match(voice) or not isinstance(text, str):
        raise ef.PermanentError("bad voice or text")
    with tempfile.TemporaryDirectory() as tmp:  # /tmp is the sandbox's own
        wav = os.path.join(tmp, "speech.wav")
        # The text goes in on stdin, so that no text can pass for an option.
        run = subprocess.run([ESPEAK, "-v", voice, "-w", wav, "--stdin"], input=text.encode(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
        if run.returncode != 0 or not os.path.exists(wav):
            message = "espeak-ng -v %s failed (%d): %s" % (
                voice, run.returncode, run.stderr.decode("utf-8", "replace").strip())
            # An unknown voice never works; anything else may be worth a retry.
            if b"voice" in run.stderr.lower():
                raise ef.PermanentError(message)
            raise RuntimeError(message)
        with open(wav, "rb") as f:
            data = f.read()
    ctx.log("info", "item %s: %s, %d bytes" % (ctx.item_id, voice, len(data)))
    return {"audio": ef.Output(data, content_type="audio/wav")}


ef.run(handle)
