#!/usr/bin/env python3
"""Plays the node's side of the edgeflow function worker protocol (docs/function-protocol.md)
against a real worker process, to test a function without a node. Standard library only.

It is as strict as the specification: a frame that is not well-formed, a frame the worker may not
send at that point, or a blob over ``max_payload`` raises ProtocolViolation (and kills the
worker, as the node would). A result the node would refuse (an undeclared output name, a bad or
duplicate part) is an Outcome with ``ok`` false, ``retry`` false and ``rejected`` true.

As a library (the SDK tests use it)::

    with Worker(["python3", "myfn.py"]) as worker:
        outcome = worker.invoke({"in": b"hello"})
        assert outcome.ok and outcome.output("out").data == b"HELLO"
        if worker.batch:  # the worker takes invoke_batch frames
            outcomes = worker.invoke_batch([{"inputs": {"in": b"a"}}, {"inputs": {"in": b"b"}}])
        assert worker.shutdown() == 0

From the command line::

    protocol_harness.py --invoke in=hello --times 3 -- python3 myfn.py

runs the invocation three times against one worker, prints the outputs, the log frames and the
context, echoes the worker's stderr, and exits 0 if every invocation returned a result, 1 if one
failed, 2 if the worker broke the protocol, crashed or did not exit cleanly on shutdown.
"""

import argparse
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20
MAX_BATCH = 1024
MAX_CONTEXT_KEY_BYTES = 512
DEFAULT_MAX_PAYLOAD = 64 << 20
LOG_LEVELS = ("debug", "info", "warn", "error")
WORKER_FRAME_TYPES = ("ready", "result", "error", "ctx_get", "ctx_put", "ctx_delete", "log")
PART_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


class ProtocolViolation(Exception):
    """The worker broke the protocol."""


class WorkerGone(Exception):
    """The worker closed its stdout or exited while the harness waited for a frame."""


class HarnessTimeout(Exception):
    """The worker did not answer (or exit) in time."""


class InputItem:
    """One input of an invocation (the node's view: data plus its metadata)."""

    def __init__(self, name, data, content_type="application/octet-stream", channel=None, key=""):
        self.name = name
        self.data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self.content_type = content_type
        self.channel = channel if channel is not None else "test/" + name
        self.key = key


class OutputItem:
    def __init__(self, name, data, content_type=None, part=None):
        self.name = name
        self.data = data
        self.content_type = content_type
        self.part = part

    def __repr__(self):
        return "OutputItem(%r, %d bytes, content_type=%r, part=%r)" % (
            self.name, len(self.data), self.content_type, self.part)


class Outcome:
    """How one invocation ended: a result (``ok``) or an error, with what happened on the way."""

    def __init__(self, invocation_id=None):
        self.invocation_id = invocation_id
        self.ok = False
        self.outputs = []          # [OutputItem], in the worker's order
        self.message = None        # error message (error frame, or the node's refusal)
        self.retry = None          # error: whether the node would retry
        self.rejected = False      # the node would refuse this result (see module doc)
        self.logs = []             # [(level, message)] from log frames
        self.ctx_requests = []     # [(type, key)]: ctx_get/ctx_put/ctx_delete, in order

    def output(self, name, part=None):
        """The output item called ``name`` (with ``part``); KeyError if there is none."""
        for item in self.outputs:
            if item.name == name and item.part == part:
                return item
        raise KeyError("no output %r with part %r in %r" % (name, part, self.outputs))

    def __repr__(self):
        if self.ok:
            return "Outcome(result, outputs=%r, logs=%r)" % (self.outputs, self.logs)
        return "Outcome(error %r, retry=%r, rejected=%r, logs=%r)" % (
            self.message, self.retry, self.rejected, self.logs)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _utf8_length(text):
    """Bytes of ``text`` in UTF-8; 0 if it has lone surrogates (a JSON escape can make them)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return 0


def encode_frame(header, blobs=()):
    """A frame as bytes; ``header["blobs"]`` is set from ``blobs`` when there are any."""
    header = dict(header)
    if blobs:
        header["blobs"] = [len(b) for b in blobs]
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return len(text).to_bytes(4, "big") + text + b"".join(bytes(b) for b in blobs)


class Worker:
    """One worker process and the node's side of its conversation.

    ``context`` is the context store (key -> bytes) that ctx_* requests read and write;
    ``context_ttl_ms`` holds the ttl_ms of the last put of each key. ``ctx_error(type, key)``
    (type: "ctx_get", "ctx_put" or "ctx_delete"), if set, is asked before each context request is
    served and refuses it with the message it returns (None: serve it).
    ``declared_outputs`` (names), if set, is checked like the node checks the function's spec.
    ``stderr_echo(line)``, if set, gets each stderr line as it arrives (the CLI prints them).
    ``batch`` is what the worker announced in ``ready``: the most invocations it takes in one
    ``invoke_batch`` frame, or None if it takes none.
    """

    def __init__(self, argv, env=None, cwd=None, max_payload=DEFAULT_MAX_PAYLOAD,
                 declared_outputs=None, context=None, ctx_error=None, stderr_echo=None):
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.max_payload = max_payload
        self.declared_outputs = set(declared_outputs) if declared_outputs is not None else None
        self.context = dict(context or {})
        self.context_ttl_ms = {}
        self._expires_at = {}
        self.ctx_error = ctx_error
        self.stderr_echo = stderr_echo
        self.process = None
        self.batch = None
        self._frames = queue.Queue()
        self._stderr_lines = []
        self._stderr_lock = threading.Lock()
        self._threads = []
        self._next_id = 1
        self._stdin_closed = False

    # -- process ---------------------------------------------------------------------------------

    def start(self, ready_timeout=10.0):
        """Starts the worker and waits for its ``ready`` frame."""
        self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=self.env, cwd=self.cwd)
        for target, name in ((self._read_frames, "frames"), (self._read_stderr, "stderr")):
            thread = threading.Thread(target=target, name="harness-" + name, daemon=True)
            thread.start()
            self._threads.append(thread)
        frame_type, header, _ = self.read_frame(ready_timeout, waiting_for="ready")
        if frame_type != "ready":
            self._violation('the first frame must be "ready", not "%s"' % frame_type)
        if header.get("protocol") != PROTOCOL_VERSION or not _is_int(header.get("protocol")):
            self._violation('"ready" must say "protocol": 1, not %r' % header.get("protocol"))
        batch = header.get("batch")
        if batch is not None and (not _is_int(batch) or not 1 <= batch <= MAX_BATCH):
            self._violation('"ready": "batch" must be an integer 1..%d, not %r'
                            % (MAX_BATCH, batch))
        self.batch = batch
        return self

    def __enter__(self):
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.kill()

    def kill(self):
        """Kills the worker if it still runs and reaps it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._join_threads()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                pipe.close()
            except OSError:
                pass

    def shutdown(self, timeout=5.0):
        """Sends ``shutdown`` and returns the exit status (negative: killed by that signal).
        Raises HarnessTimeout if the worker has not exited within ``timeout`` (the spec's 5 s)."""
        self.send_frame({"type": "shutdown"})
        return self.wait(timeout)

    def close_stdin(self):
        """The worker sees the end of its input."""
        if not self._stdin_closed:
            self._stdin_closed = True
            try:
                self.process.stdin.close()
            except OSError:
                pass

    def wait(self, timeout=5.0):
        """Waits for the worker to exit and returns its status. It must not write frames in the
        meantime (ProtocolViolation) and must exit within ``timeout`` (HarnessTimeout)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessTimeout("the worker did not exit within %.1f s%s"
                                 % (timeout, self._stderr_tail())) from None
        self._join_threads()
        while True:
            try:
                event = self._frames.get_nowait()
            except queue.Empty:
                break
            if event[0] == "frame":
                raise ProtocolViolation('the worker wrote a "%s" frame when none was expected'
                                        % event[1])
        self.close_stdin()
        return code

    @property
    def exit_code(self):
        return None if self.process is None else self.process.poll()

    @property
    def stderr(self):
        """What the worker wrote to stderr so far."""
        with self._stderr_lock:
            return "".join(self._stderr_lines)

    # -- frames ----------------------------------------------------------------------------------

    def send_raw(self, data):
        """Writes bytes to the worker's stdin as they are (for malformed frames)."""
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise WorkerGone("cannot write to the worker: %s%s"
                             % (e, self._stderr_tail())) from None

    def send_frame(self, header, blobs=()):
        self.send_raw(encode_frame(header, blobs))

    def read_frame(self, timeout=30.0, waiting_for="a frame"):
        """The worker's next frame as (type, header, blobs), well-formed per the spec."""
        try:
            event = self._frames.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise HarnessTimeout("no %s from the worker within %.1f s%s"
                                 % (waiting_for, timeout, self._stderr_tail())) from None
        if event[0] == "violation":
            self._violation(event[1])
        if event[0] == "eof":
            self._frames.put(event)  # later reads see it too
            try:
                code = self.process.wait(5)
            except subprocess.TimeoutExpired:
                code = "still running"
            raise WorkerGone("the worker closed its stdout while the harness waited for %s "
                             "(exit status %s)%s" % (waiting_for, code, self._stderr_tail()))
        return event[1], event[2], event[3]

    def _violation(self, message):
        self.kill()
        raise ProtocolViolation(message + self._stderr_tail())

    def _stderr_tail(self):
        text = self.stderr.strip()
        return "\n--- worker stderr ---\n" + text[-4000:] if text else ""

    def _join_threads(self):
        for thread in self._threads:
            thread.join(5)

    def _read_frames(self):
        """Reader thread: framing checks only; the conversation is checked by the caller."""
        stdout = self.process.stdout
        limit_total = 4 * self.max_payload
        while True:
            prefix = stdout.read(4)
            if not prefix:
                self._frames.put(("eof",))
                return
            problem = None
            if len(prefix) < 4:
                problem = "truncated frame: stdout ended inside a length prefix"
            else:
                size = int.from_bytes(prefix, "big")
                if not 2 <= size <= MAX_HEADER_BYTES:
                    problem = "header length %d is outside 2..1048576" % size
            if problem is None:
                raw = stdout.read(size)
                if len(raw) < size:
                    problem = "truncated frame: stdout ended inside a header"
            if problem is None:
                try:
                    header = json.loads(raw.decode("utf-8"))
                except ValueError:
                    header = None
                if not isinstance(header, dict):
                    problem = "the header is not a JSON object: %r" % raw[:200]
                elif not isinstance(header.get("type"), str):
                    problem = 'the header has no string member "type": %r' % raw[:200]
                elif header["type"] not in WORKER_FRAME_TYPES:
                    problem = "unknown frame type %r" % header["type"]
            if problem is None:
                sizes = header.get("blobs", [])
                if not isinstance(sizes, list) or not all(_is_int(s) and s >= 0 for s in sizes):
                    problem = '"blobs" must be an array of non-negative integers'
                elif any(s > self.max_payload for s in sizes):
                    problem = "a blob of %d bytes is over max_payload (%d)" % (
                        max(sizes), self.max_payload)
                elif sum(sizes) > limit_total:
                    problem = "the blobs of one frame are over 4 x max_payload"
            if problem is None:
                blobs = []
                for blob_size in sizes:
                    blob = stdout.read(blob_size) if blob_size else b""
                    if len(blob) < blob_size:
                        problem = "truncated frame: stdout ended inside a blob"
                        break
                    blobs.append(blob)
            if problem is not None:
                self._frames.put(("violation", "protocol violation: " + problem))
                return
            self._frames.put(("frame", header["type"], header, blobs))

    def _read_stderr(self):
        for raw_line in iter(self.process.stderr.readline, b""):
            line = raw_line.decode("utf-8", "replace")
            with self._stderr_lock:
                self._stderr_lines.append(line)
            if self.stderr_echo is not None:
                self.stderr_echo(line)

    # -- invocations -----------------------------------------------------------------------------

    def _invocation(self, inputs, first_blob, item_id=None, stream="", attempt=1, trace_id=None):
        """The members that ``invoke`` and an entry of ``invoke_batch`` share, with a new id, and
        the data of its inputs, which become the frame's blobs from index ``first_blob`` on."""
        if isinstance(inputs, dict):
            inputs = [value if isinstance(value, InputItem) else InputItem(name, value)
                      for name, value in inputs.items()]
        invocation_id = self._next_id
        self._next_id += 1
        item_id = item_id if item_id is not None else "item-%d" % invocation_id
        members = {
            "id": invocation_id,
            "item_id": item_id,
            "stream": stream,
            "attempt": attempt,
            "trace_id": trace_id if trace_id is not None else secrets.token_hex(16),
            "inputs": [{"name": item.name, "blob": first_blob + index,
                        "content_type": item.content_type, "channel": item.channel,
                        "key": item.key or item_id}
                       for index, item in enumerate(inputs)],
        }
        return members, [item.data for item in inputs]

    def begin_invoke(self, inputs, item_id=None, stream="", attempt=1, trace_id=None,
                     deadline_ms=None, timeout=30.0):
        """Sends an ``invoke`` frame and returns its id. ``inputs``: a dict name -> bytes | str |
        InputItem, or a list of InputItem."""
        header, data = self._invocation(inputs, 0, item_id=item_id, stream=stream,
                                        attempt=attempt, trace_id=trace_id)
        header["type"] = "invoke"
        header["deadline_ms"] = (deadline_ms if deadline_ms is not None
                                 else int(time.time() * 1000 + timeout * 1000))
        self.send_frame(header, data)
        return header["id"]

    def begin_invoke_batch(self, invocations, timeout=30.0):
        """Sends an ``invoke_batch`` frame and returns the ids of its invocations, in order. Each
        invocation is a dict with ``inputs`` (as for begin_invoke) and, optionally, ``item_id``,
        ``stream``, ``attempt``, ``trace_id`` and ``timeout_ms`` (default: ``timeout``). Like the
        node, it sends a batch only to a worker that takes one that large (ValueError)."""
        if self.batch is None or not 2 <= len(invocations) <= self.batch:
            raise ValueError("a batch of %d invocations for a worker that announced batch %r "
                             "(the node sends 2..batch)" % (len(invocations), self.batch))
        entries, data = [], []
        for invocation in invocations:
            members = dict(invocation)
            timeout_ms = members.pop("timeout_ms", int(timeout * 1000))
            entry, entry_data = self._invocation(first_blob=len(data), **members)
            entry["timeout_ms"] = timeout_ms
            entries.append(entry)
            data.extend(entry_data)
        self.send_frame({"type": "invoke_batch", "invocations": entries,
                         "max_payload_bytes": self.max_payload}, data)
        return [entry["id"] for entry in entries]

    def finish_invoke(self, invocation_id, timeout=30.0, ctx_error=None):
        """Serves the worker's ctx_* requests and collects its log frames until it ends the
        invocation; returns the Outcome."""
        ctx_error = ctx_error or self.ctx_error
        deadline = time.monotonic() + timeout
        outcome = Outcome(invocation_id)
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            frame_type, header, blobs = self.read_frame(remaining, "the end of invocation %d"
                                                        % invocation_id)
            if frame_type == "log":
                level, message = header.get("level"), header.get("message")
                if level not in LOG_LEVELS or not isinstance(message, str):
                    self._violation('"log" needs "level" (one of %s) and a string "message": %r'
                                    % (", ".join(LOG_LEVELS), header))
                outcome.logs.append((level, message))
            elif frame_type in ("ctx_get", "ctx_put", "ctx_delete"):
                self._serve_context(frame_type, header, blobs, outcome, ctx_error)
            elif frame_type in ("result", "error"):
                if header.get("id") != invocation_id or not _is_int(header.get("id")):
                    self._violation('"%s" carries id %r, not the invocation\'s %d'
                                    % (frame_type, header.get("id"), invocation_id))
                if frame_type == "error":
                    return self._error_outcome(header, outcome)
                return self._result_outcome(header, blobs, outcome)
            else:
                self._violation('unexpected "%s" frame during an invocation' % frame_type)

    def invoke(self, inputs, timeout=30.0, ctx_error=None, **invoke_members):
        """One whole invocation (see begin_invoke for ``inputs`` and the members)."""
        invocation_id = self.begin_invoke(inputs, timeout=timeout, **invoke_members)
        return self.finish_invoke(invocation_id, timeout=timeout, ctx_error=ctx_error)

    def invoke_batch(self, invocations, timeout=30.0, ctx_error=None):
        """One whole batch (see begin_invoke_batch): the Outcome of each invocation, in order.
        The worker must end them in order; ``timeout`` applies to each."""
        ids = self.begin_invoke_batch(invocations, timeout=timeout)
        return [self.finish_invoke(invocation_id, timeout=timeout, ctx_error=ctx_error)
                for invocation_id in ids]

    def _serve_context(self, frame_type, header, blobs, outcome, ctx_error):
        req, key = header.get("req"), header.get("key")
        if not _is_int(req):
            self._violation('"%s" needs an integer "req": %r' % (frame_type, header))
        if not isinstance(key, str) or not 1 <= _utf8_length(key) <= MAX_CONTEXT_KEY_BYTES:
            self._violation('"%s": the key must be 1..512 bytes of UTF-8: %r' % (frame_type, key))
        outcome.ctx_requests.append((frame_type, key))
        answer_type = "ctx_value" if frame_type == "ctx_get" else "ctx_done"
        value = None
        if frame_type == "ctx_put":
            index, ttl_ms = header.get("blob"), header.get("ttl_ms", 0)
            if not _is_int(index) or not 0 <= index < len(blobs):
                self._violation('"ctx_put" needs a "blob" index within its blobs: %r' % header)
            if not _is_int(ttl_ms) or ttl_ms < 0:
                self._violation('"ctx_put": "ttl_ms" must be a non-negative integer: %r' % header)
            value = blobs[index]
        refusal = ctx_error(frame_type, key) if ctx_error is not None else None
        if refusal is not None:
            self.send_frame({"type": answer_type, "req": req, "error": refusal})
            return
        self._expire(key)
        if frame_type == "ctx_get":
            if key in self.context:
                self.send_frame({"type": "ctx_value", "req": req, "found": True, "blob": 0},
                                [self.context[key]])
            else:
                self.send_frame({"type": "ctx_value", "req": req, "found": False})
            return
        if frame_type == "ctx_put":
            self.context[key] = value
            self.context_ttl_ms[key] = ttl_ms
            if ttl_ms:
                self._expires_at[key] = time.monotonic() + ttl_ms / 1000
            else:
                self._expires_at.pop(key, None)
        else:
            self.context.pop(key, None)
            self._expires_at.pop(key, None)
        self.send_frame({"type": "ctx_done", "req": req})

    def _expire(self, key):
        expires_at = self._expires_at.get(key)
        if expires_at is not None and time.monotonic() >= expires_at:
            self.context.pop(key, None)
            del self._expires_at[key]

    def _error_outcome(self, header, outcome):
        message, retry = header.get("message"), header.get("retry", True)
        if not isinstance(message, str) or not isinstance(retry, bool):
            self._violation('"error" needs a string "message" and a boolean "retry": %r' % header)
        outcome.message, outcome.retry = message, retry
        return outcome

    def _result_outcome(self, header, blobs, outcome):
        entries = header.get("outputs")
        if not isinstance(entries, list):
            self._violation('"result" needs an "outputs" array: %r' % header)
        for entry in entries:
            if not isinstance(entry, dict):
                self._violation('"result": an output is not an object: %r' % entry)
            name, index = entry.get("name"), entry.get("blob")
            content_type, part = entry.get("content_type"), entry.get("part")
            if not isinstance(name, str) or not _is_int(index) or not 0 <= index < len(blobs) \
                    or not isinstance(content_type, (str, type(None))) \
                    or not isinstance(part, (str, type(None))):
                self._violation('"result": an output needs a string "name", a "blob" index within '
                                'its blobs, and optional string "content_type" and "part": %r'
                                % entry)
            outcome.outputs.append(OutputItem(name, blobs[index], content_type, part))
        refusal = self._refusal(outcome.outputs)
        if refusal is not None:
            outcome.message, outcome.retry, outcome.rejected = refusal, False, True
            return outcome
        outcome.ok = True
        return outcome

    def _refusal(self, outputs):
        """Why the node would refuse these outputs (None if it would not)."""
        counts = {}
        for item in outputs:
            counts[item.name] = counts.get(item.name, 0) + 1
        seen = set()
        for item in outputs:
            if not _utf8_length(item.name):
                return "an output has an empty name"
            if self.declared_outputs is not None and item.name not in self.declared_outputs:
                return "output %r is not one of the function's declared outputs" % item.name
            if item.part is not None and not PART_PATTERN.match(item.part):
                return "output %r: part %r is not 1..64 of [A-Za-z0-9_.-]" % (item.name, item.part)
            if counts[item.name] > 1 and item.part is None:
                return "output %r appears %d times, so each needs a distinct part" % (
                    item.name, counts[item.name])
            if (item.name, item.part) in seen:
                return "output %r has part %r more than once" % (item.name, item.part)
            seen.add((item.name, item.part))
        return None


# -- command line ----------------------------------------------------------------------------------


def _preview(data, limit=200):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\t" for c in text):
        return repr(text[:limit]) + ("..." if len(text) > limit else "")
    return "hex " + data[:32].hex() + ("..." if len(data) > 32 else "")


def _pair(text, what):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("%s must be NAME=VALUE, not %r" % (what, text))
    return name, value


def _parse_args(argv):
    if "--" not in argv:
        print("usage: protocol_harness.py [options] -- COMMAND [ARG...]  (see --help)",
              file=sys.stderr)
        if "-h" in argv or "--help" in argv:
            _parser().print_help()
            sys.exit(0)
        sys.exit(64)
    split = argv.index("--")
    options = _parser().parse_args(argv[:split])
    options.command = argv[split + 1:]
    if not options.command:
        _parser().error("no command after --")
    return options


def _parser():
    parser = argparse.ArgumentParser(
        prog="protocol_harness.py",
        description="Run an edgeflow function worker and invoke it like the node does.",
        epilog="example: protocol_harness.py --invoke in=hello --times 2 -- python3 myfn.py")
    parser.add_argument("--invoke", action="append", default=[], metavar="NAME=TEXT",
                        type=lambda t: _pair(t, "--invoke"), help="an input (text/plain)")
    parser.add_argument("--invoke-file", action="append", default=[], metavar="NAME=PATH",
                        type=lambda t: _pair(t, "--invoke-file"),
                        help="an input read from a file (application/octet-stream)")
    parser.add_argument("--content-type", action="append", default=[], metavar="NAME=TYPE",
                        type=lambda t: _pair(t, "--content-type"),
                        help="the content type of input NAME")
    parser.add_argument("--times", type=int, default=1, metavar="N",
                        help="run the invocation N times with one worker (default 1)")
    parser.add_argument("--item-id", help="the item id (default item-<n>)")
    parser.add_argument("--stream", default="", help="the stream key (default none)")
    parser.add_argument("--attempt", type=int, default=1)
    parser.add_argument("--context", action="append", default=[], metavar="KEY=VALUE",
                        type=lambda t: _pair(t, "--context"), help="a context value to start with")
    parser.add_argument("--outputs", metavar="NAME,...",
                        help="the declared outputs; others are refused like the node does")
    parser.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD, metavar="BYTES")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="per invocation (default 30)")
    parser.add_argument("--save-outputs", metavar="DIR",
                        help="write each output's data to DIR/<n>-<name>[.<part>]")
    return parser


def main(argv):
    options = _parse_args(argv)
    inputs = []
    types = dict(options.content_type)
    for name, text in options.invoke:
        inputs.append(InputItem(name, text, types.get(name, "text/plain; charset=utf-8")))
    for name, path in options.invoke_file:
        with open(path, "rb") as f:
            inputs.append(InputItem(name, f.read(), types.get(name, "application/octet-stream")))
    if not inputs:
        print("note: no --invoke/--invoke-file given: invoking with no inputs", file=sys.stderr)

    worker = Worker(options.command,
                    declared_outputs=options.outputs.split(",") if options.outputs else None,
                    context={k: v.encode("utf-8") for k, v in options.context},
                    max_payload=options.max_payload,
                    stderr_echo=lambda line: sys.stderr.write("worker: " + line))
    failed = False
    try:
        worker.start()
        for n in range(1, options.times + 1):
            outcome = worker.invoke(inputs, timeout=options.timeout, item_id=options.item_id,
                                    stream=options.stream, attempt=options.attempt)
            if outcome.ok:
                print("invocation %d: result, %d output(s)" % (n, len(outcome.outputs)))
            else:
                failed = True
                print("invocation %d: %s (retry: %s): %s" % (
                    n, "refused by the node" if outcome.rejected else "error",
                    "yes" if outcome.retry else "no", outcome.message))
            for level, message in outcome.logs:
                print("  log %s: %s" % (level, message))
            for item in outcome.outputs:
                label = item.name + ("." + item.part if item.part else "")
                print("  output %s (%s, %d bytes): %s" % (
                    label, item.content_type or "no content type", len(item.data),
                    _preview(item.data)))
                if options.save_outputs:
                    os.makedirs(options.save_outputs, exist_ok=True)
                    with open(os.path.join(options.save_outputs, "%d-%s" % (n, label)), "wb") as f:
                        f.write(item.data)
        code = worker.shutdown()
    except (ProtocolViolation, WorkerGone, HarnessTimeout, OSError) as e:
        print("FAILED: %s" % e, file=sys.stderr)
        return 2
    finally:
        worker.kill()
    if worker.context:
        print("context:")
        for key, value in sorted(worker.context.items()):
            print("  %s = %s" % (key, _preview(value)))
    print("worker exited with status %d" % code)
    if code != 0:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
