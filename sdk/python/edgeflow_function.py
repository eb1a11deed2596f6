"""Write an edgeflow edge function in Python (standard library only, one module).

A function runs as a long-lived worker process: the node starts it, hands it one invocation at a
time and collects the results. ``run()`` speaks the worker protocol with the node
(docs/function-protocol.md) on stdin/stdout; the function only supplies a handler::

    import edgeflow_function as ef

    def handle(inputs, ctx):
        n = int(ctx.get("count") or b"0") + 1      # context: kept by the node between items
        ctx.put("count", str(n))
        ctx.log("info", "seen %d" % n)
        return {"out": inputs["in"].data.upper()}

    ef.run(handle)

The handler gets ``inputs`` (a dict: input name -> Input) and a Context, and returns a dict:
output name -> ``bytes`` | ``str`` (sent as UTF-8) | ``Output(data, content_type=, part=)`` | a
list of those (several items of one output, each with a distinct ``part``). ``None`` or ``{}``
means no outputs (a filter).

The rules:

- stdout carries the protocol and nothing else. ``run()`` keeps the original stdout for itself
  and points fd 1 (and ``sys.stdout``) at stderr, so ``print()`` and child processes write to the
  function's log. Output already flushed to stdout before ``run()`` corrupts the protocol: print
  nothing before calling it. stdin is the node's too: ``run()`` points fd 0 at /dev/null.
- An exception from the handler fails the invocation (its traceback goes to the log) and the node
  retries it per the function's retry policy. ``PermanentError`` fails it without retries (an
  input the function can never process); so does a return value the protocol does not allow.
- ``ctx.get/put/delete`` wait for the node's answer; a refusal, or a key that is not 1..512
  bytes of UTF-8, raises ``Error``, which the handler may catch. The context may be used from
  several threads while the handler runs (calls are serialized), not after it has returned.
- ``run()`` does not return: it exits with status 0 after the node's shutdown or at the end of
  stdin, 2 if the node broke the protocol, 1 on any other failure (with a message on stderr).
"""

import io
import json
import os
import re
import sys
import threading
import time
import traceback

__all__ = ["Input", "Output", "Context", "Error", "PermanentError", "run"]

PROTOCOL_VERSION = 1
LOG_LEVELS = ("debug", "info", "warn", "error")

_MIN_HEADER_BYTES = 2
_MAX_HEADER_BYTES = 1 << 20
_MAX_KEY_BYTES = 512
# Log and error messages are cut to this, so that even fully escaped they fit in a header.
_MAX_MESSAGE_BYTES = 64 << 10
_PART = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
# The most invocations one invoke_batch frame may carry (announced in ready).
_MAX_BATCH = 64
_NODE_FRAME_TYPES = ("invoke", "invoke_batch", "ctx_value", "ctx_done", "shutdown")
_EXIT_FAILURE = 1
_EXIT_PROTOCOL_ERROR = 2


class Error(Exception):
    """A context operation failed: the node refused it, or the key is not valid."""


class PermanentError(Exception):
    """Raised by a handler to fail the invocation without retries."""


class ProtocolError(Exception):
    """The node sent something the protocol does not allow; the worker cannot go on."""


class _InvalidResult(Exception):
    """The handler returned something the protocol does not allow (a permanent failure)."""


class Input:
    """One input of an invocation. ``data`` is bytes."""

    __slots__ = ("name", "data", "content_type", "channel", "key")

    def __init__(self, name, data, content_type="", channel="", key=""):
        self.name = name
        self.data = data
        self.content_type = content_type
        self.channel = channel
        self.key = key

    def __repr__(self):
        return "Input(name=%r, %d bytes, content_type=%r, channel=%r, key=%r)" % (
            self.name, len(self.data), self.content_type, self.channel, self.key)


class Output:
    """One output item: data (bytes or str) and, optionally, its content type and part.

    Items of one output name need distinct parts; the item id becomes ``<item_id>.<part>``.
    A part is 1..64 characters of ``[A-Za-z0-9_.-]``.
    """

    __slots__ = ("data", "content_type", "part")

    def __init__(self, data, content_type=None, part=None):
        self.data = data
        self.content_type = content_type
        self.part = part

    def __repr__(self):
        return "Output(%d bytes, content_type=%r, part=%r)" % (
            len(self.data), self.content_type, self.part)


def _cut_utf8(text, max_bytes):
    """``text`` as valid UTF-8 of at most ``max_bytes`` (lone surrogates become '?')."""
    data = str(text).encode("utf-8", "replace")
    if len(data) > max_bytes:
        data = data[:max_bytes]
    return data.decode("utf-8", "ignore")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _member(header, frame, name, kind):
    if name not in header:
        raise ProtocolError('%s frame has no member "%s"' % (frame, name))
    value = header[name]
    if kind is int:
        if not _is_int(value) or not -(1 << 63) <= value < (1 << 63):
            raise ProtocolError('%s frame: "%s" must be a 64-bit integer' % (frame, name))
    elif kind is bool:
        if not isinstance(value, bool):
            raise ProtocolError('%s frame: "%s" must be a boolean' % (frame, name))
    elif not isinstance(value, kind):
        raise ProtocolError('%s frame: "%s" must be a %s' % (
            frame, name, {str: "string", list: "array"}.get(kind, kind.__name__)))
    return value


def _blob_index(header, frame, blobs):
    index = _member(header, frame, "blob", int)
    if not 0 <= index < len(blobs):
        raise ProtocolError("%s frame: blob index %d is out of range (the frame has %d blobs)"
                            % (frame, index, len(blobs)))
    return index


class _Channel:
    """Frames over two file descriptors: full-length reads and writes (EINTR is retried by
    Python itself), and one lock for each write and each request/answer pair."""

    def __init__(self, in_fd, out_fd):
        self._reader = io.open(in_fd, "rb", buffering=64 << 10)
        self._out_fd = out_fd
        self.lock = threading.RLock()
        self.failure = None  # the exception that broke the conversation
        self._next_req = 1

    def read(self):
        """The node's next frame as (type, header, blobs), or None at the end of input."""
        prefix = self._reader.read(4)
        if not prefix:
            return None
        if len(prefix) < 4:
            raise ProtocolError("truncated frame: the input ended inside a length prefix")
        size = int.from_bytes(prefix, "big")
        if not _MIN_HEADER_BYTES <= size <= _MAX_HEADER_BYTES:
            raise ProtocolError("bad frame: header length %d is outside 2..1048576" % size)
        raw = self._reader.read(size)
        if len(raw) < size:
            raise ProtocolError("truncated frame: the input ended inside a header")
        try:
            header = json.loads(raw.decode("utf-8"))
        except ValueError:  # also UnicodeDecodeError
            header = None
        if not isinstance(header, dict):
            raise ProtocolError("bad frame: the header is not a JSON object: %r" % raw[:200])
        frame_type = header.get("type")
        if not isinstance(frame_type, str):
            raise ProtocolError('bad frame: the header has no string member "type": %r'
                                % raw[:200])
        if frame_type not in _NODE_FRAME_TYPES:
            raise ProtocolError("bad frame: unknown type %r" % frame_type)
        sizes = header.get("blobs", [])
        if not isinstance(sizes, list) or not all(_is_int(s) and s >= 0 for s in sizes):
            raise ProtocolError('%s frame: "blobs" must be an array of non-negative sizes'
                                % frame_type)
        blobs = []
        for size in sizes:
            blob = self._reader.read(size) if size else b""
            if len(blob) < size:
                raise ProtocolError("truncated frame: the input ended inside a blob of %s"
                                    % frame_type)
            blobs.append(blob)
        return frame_type, header, blobs

    def write(self, header, blobs=()):
        """Writes one frame; ValueError if its header is too long for the protocol."""
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if not _MIN_HEADER_BYTES <= len(text) <= _MAX_HEADER_BYTES:
            raise ValueError("frame header of %d bytes is outside 2..1048576" % len(text))
        self._write_all(len(text).to_bytes(4, "big") + text)
        for blob in blobs:
            self._write_all(blob)

    def _write_all(self, data):
        view = memoryview(data).cast("B")
        while view:
            written = os.write(self._out_fd, view)
            view = view[written:]

    def guarded(self, action):
        """Runs ``action`` under the lock; a failure in it ends the conversation for good."""
        with self.lock:
            if self.failure is not None:
                raise self.failure
            try:
                return action()
            except BaseException as e:  # a frame may be half read or written
                self.failure = e
                raise

    def send(self, header, blobs=()):
        self.guarded(lambda: self.write(header, blobs))

    def request(self, header, blobs, answer_type):
        """Sends a ctx_* request and returns the header and blobs of the node's answer."""

        def exchange():
            req = self._next_req
            self._next_req += 1
            header["req"] = req
            self.write(header, blobs)
            reply = self.read()
            if reply is None:
                raise ProtocolError("the input ended while waiting for the answer to %s"
                                    % header["type"])
            reply_type, reply_header, reply_blobs = reply
            if reply_type != answer_type:
                raise ProtocolError("got a %s frame while waiting for the %s answer to %s"
                                    % (reply_type, answer_type, header["type"]))
            answered = _member(reply_header, reply_type, "req", int)
            if answered != req:
                raise ProtocolError("%s frame answers req %d, but the open request is req %d"
                                    % (reply_type, answered, req))
            if "error" in reply_header:
                _member(reply_header, reply_type, "error", str)
            elif reply_type == "ctx_value" and _member(reply_header, reply_type, "found", bool):
                _blob_index(reply_header, reply_type, reply_blobs)
            return reply_header, reply_blobs

        return self.guarded(exchange)


def _check_key(key):
    if not isinstance(key, str):
        raise TypeError("a context key is a str, not %s" % type(key).__name__)
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise Error("context key is not valid UTF-8") from None
    if not 1 <= size <= _MAX_KEY_BYTES:
        raise Error("context key must be 1..512 bytes, not %d" % size)


def _as_bytes(data, what):
    if isinstance(data, str):
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError:
            raise _InvalidResult("%s: the str is not valid UTF-8" % what) from None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise _InvalidResult("%s: data must be bytes or str, not %s" % (what, type(data).__name__))


class Context:
    """One invocation: its facts, and access to the node (context store, structured log).

    Attributes: ``item_id``, ``stream`` ("" without a stream key), ``attempt`` (1 for the first
    try), ``trace_id``, ``deadline_ms`` (Unix ms; the node kills the worker then),
    ``invocation_id`` and ``inputs`` (the same dict the handler gets).
    """

    def __init__(self, channel, invocation_id, item_id, stream, attempt, trace_id, deadline_ms,
                 inputs):
        self._channel = channel
        self._active = True
        self.invocation_id = invocation_id
        self.item_id = item_id
        self.stream = stream
        self.attempt = attempt
        self.trace_id = trace_id
        self.deadline_ms = deadline_ms
        self.inputs = inputs

    def _check_active(self):
        if not self._active:
            raise Error("this context belongs to an invocation that has ended")

    def _request(self, op, key, header, blobs, answer_type):
        self._check_active()
        _check_key(key)
        header = dict(header, type=op, key=key)
        reply_header, reply_blobs = self._channel.request(header, blobs, answer_type)
        if "error" in reply_header:
            raise Error("%s %s failed: %s" % (op, json.dumps(key, ensure_ascii=False),
                                              reply_header["error"]))
        return reply_header, reply_blobs

    def get(self, key):
        """The context value under ``key`` (bytes), or None if there is none."""
        header, blobs = self._request("ctx_get", key, {}, (), "ctx_value")
        return blobs[header["blob"]] if header["found"] else None

    def put(self, key, value, ttl_ms=0):
        """Stores ``value`` (bytes or str) under ``key``; it expires after ``ttl_ms`` ms
        (0 = never)."""
        if not _is_int(ttl_ms) or ttl_ms < 0:
            raise Error("ttl_ms must be a non-negative int")
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif not isinstance(value, bytes):
            raise TypeError("a context value is bytes or str, not %s" % type(value).__name__)
        self._request("ctx_put", key, {"blob": 0, "blobs": [len(value)], "ttl_ms": ttl_ms},
                      (value,), "ctx_done")

    def delete(self, key):
        """Removes ``key`` (no error if it does not exist)."""
        self._request("ctx_delete", key, {}, (), "ctx_done")

    def log(self, level, message):
        """A structured line in the function's log; level is debug, info, warn or error.
        Messages over 64 KiB are cut. Raises only for a bad level or an ended invocation."""
        self._check_active()
        if level not in LOG_LEVELS:
            raise ValueError("log level must be one of %s, not %r" % (", ".join(LOG_LEVELS), level))
        try:
            self._channel.send({"type": "log", "level": level,
                                "message": _cut_utf8(message, _MAX_MESSAGE_BYTES)})
        except Exception:
            pass  # the channel has kept the failure; run() ends the worker when the handler returns


def _result_frame(invocation_id, returned):
    """The result header and blobs for what the handler returned (raises _InvalidResult)."""
    if returned is None:
        returned = {}
    if not isinstance(returned, dict):
        raise _InvalidResult("the handler must return a dict (output name -> data) or None, "
                             "not %s" % type(returned).__name__)
    items = []  # (name, data, content_type, part)
    for name, value in returned.items():
        if not isinstance(name, str) or not name:
            raise _InvalidResult("output names must be non-empty str, not %r" % (name,))
        _as_bytes(name, "output %r" % name)
        values = value if isinstance(value, (list, tuple)) else [value]
        parts_seen = set()
        for item in values:
            what = "output %r" % name
            if not isinstance(item, Output):
                item = Output(item)
            data = _as_bytes(item.data, what)
            content_type = item.content_type or None
            if content_type is not None:
                if not isinstance(content_type, str):
                    raise _InvalidResult("%s: content_type must be a str" % what)
                _as_bytes(content_type, what + " content_type")
            part = item.part or None
            if part is not None and (not isinstance(part, str) or not _PART.match(part)):
                raise _InvalidResult("%s: part %r is not 1..64 characters of [A-Za-z0-9_.-]"
                                     % (what, part))
            if len(values) > 1 and part is None:
                raise _InvalidResult("%s has %d items, so each needs a distinct part"
                                     % (what, len(values)))
            if part is not None and part in parts_seen:
                raise _InvalidResult("%s has part %r more than once" % (what, part))
            parts_seen.add(part)
            items.append((name, data, content_type, part))
    outputs = []
    for index, (name, _, content_type, part) in enumerate(items):
        entry = {"name": name, "blob": index}
        if content_type is not None:
            entry["content_type"] = content_type
        if part is not None:
            entry["part"] = part
        outputs.append(entry)
    blobs = [data for _, data, _, _ in items]
    header = {"type": "result", "id": invocation_id, "outputs": outputs,
              "blobs": [len(b) for b in blobs]}
    if len(json.dumps(header, ensure_ascii=False).encode("utf-8")) > _MAX_HEADER_BYTES:
        raise _InvalidResult("the result header would be over the protocol's 1 MiB "
                             "(too many outputs?)")
    return header, blobs


def _failure_message(error):
    if isinstance(error, (Error, PermanentError)):
        return str(error) or type(error).__name__
    text = str(error)
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


class _Worker:
    def __init__(self, channel, handler):
        self._channel = channel
        self._handler = handler

    def serve(self):
        self._channel.send({"type": "ready", "protocol": PROTOCOL_VERSION, "batch": _MAX_BATCH})
        while True:
            frame = self._channel.guarded(self._channel.read)
            if frame is None or frame[0] == "shutdown":
                return 0
            frame_type, header, blobs = frame
            if frame_type == "invoke":
                ctx = self._parse_invocation(header, blobs, "invoke")
                ctx.deadline_ms = _member(header, "invoke", "deadline_ms", int)
                self._invoke(ctx)
            elif frame_type == "invoke_batch":
                self._invoke_batch(header, blobs)
            else:
                raise ProtocolError("got a %s frame while no request was open" % frame_type)

    def _invoke_batch(self, header, blobs):
        entries = _member(header, "invoke_batch", "invocations", list)
        if not 2 <= len(entries) <= _MAX_BATCH:
            raise ProtocolError('invoke_batch frame: "invocations" must hold 2..%d invocations, '
                                'not %d' % (_MAX_BATCH, len(entries)))
        # The whole frame is checked before the first invocation runs: a malformed batch ends
        # the worker without side effects.
        batch = []  # (ctx, timeout_ms)
        for number, entry in enumerate(entries, 1):
            frame = "invoke_batch invocation %d" % number
            if not isinstance(entry, dict):
                raise ProtocolError("invoke_batch frame: invocation %d is not an object" % number)
            ctx = self._parse_invocation(entry, blobs, frame)
            timeout_ms = _member(entry, frame, "timeout_ms", int)
            if timeout_ms < 0:
                raise ProtocolError('%s frame: "timeout_ms" must not be negative' % frame)
            batch.append((ctx, timeout_ms))
        # An invocation starts when the one before it has its reply, and its deadline counts from
        # then, as the node measures it. Each reply is written at once, as for an invoke: if a
        # later invocation crashes or hangs, the node still has the replies before it and blames
        # only that invocation.
        for ctx, timeout_ms in batch:
            ctx.deadline_ms = time.time_ns() // 1_000_000 + timeout_ms
            self._invoke(ctx)

    def _invoke(self, ctx):
        failure = None  # (message, retry)
        try:
            returned = self._handler(ctx.inputs, ctx)
        except PermanentError as e:
            failure = (_failure_message(e), False)
        except Exception as e:
            if self._channel.failure is None:
                traceback.print_exc()
            failure = (_failure_message(e), True)
        finally:
            ctx._active = False
            _flush_user_output()
        if self._channel.failure is not None:  # the conversation broke, caught or not
            raise self._channel.failure
        if failure is None:
            try:
                result_header, result_blobs = _result_frame(ctx.invocation_id, returned)
            except _InvalidResult as e:
                failure = ("invalid result: %s" % e, False)
            else:
                self._channel.send(result_header, result_blobs)
                return
        self._channel.send({"type": "error", "id": ctx.invocation_id,
                            "message": _cut_utf8(failure[0], _MAX_MESSAGE_BYTES),
                            "retry": failure[1]})

    def _parse_invocation(self, header, blobs, frame):
        """The Context of an invoke frame, or of one invocation of an invoke_batch frame (named
        ``frame`` in messages), without its deadline: the two frames give it differently."""
        invocation_id = _member(header, frame, "id", int)
        item_id = _member(header, frame, "item_id", str)
        stream = _member(header, frame, "stream", str)
        attempt = _member(header, frame, "attempt", int)
        if attempt < 1:
            raise ProtocolError('%s frame: "attempt" must be 1 or more' % frame)
        trace_id = _member(header, frame, "trace_id", str)
        input_frame = frame + " input"
        inputs = {}
        for entry in _member(header, frame, "inputs", list):
            if not isinstance(entry, dict):
                raise ProtocolError("%s frame: an input is not an object" % frame)
            name = _member(entry, input_frame, "name", str)
            if name in inputs:
                raise ProtocolError("%s frame: input %r appears twice" % (frame, name))
            inputs[name] = Input(
                name, blobs[_blob_index(entry, input_frame, blobs)],
                content_type=_member(entry, input_frame, "content_type", str),
                channel=_member(entry, input_frame, "channel", str),
                key=_member(entry, input_frame, "key", str))
        return Context(self._channel, invocation_id, item_id, stream, attempt, trace_id, None,
                       inputs)


def _flush_user_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _fail(exit_code, what, message):
    _flush_user_output()
    try:
        sys.stderr.write("edgeflow function: %s: %s\n" % (what, message))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return exit_code


_started = False


def run(handler):
    """The worker's main loop: sends ``ready``, then calls ``handler(inputs, ctx)`` for each
    invocation until the node sends shutdown or closes stdin. Does not return (see the module
    documentation for the exit status)."""
    global _started
    if not callable(handler):
        raise TypeError("run() needs a handler function, not %s" % type(handler).__name__)
    if _started:
        raise RuntimeError("edgeflow_function.run() may be called only once")
    _started = True
    try:
        # Private copies of stdin and stdout for the protocol (os.dup makes them non-inheritable,
        # so child processes do not get them); fd 1 becomes stderr, fd 0 /dev/null.
        frames_in = os.dup(0)
        frames_out = os.dup(1)
        os.dup2(2, 1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except OSError as e:
        sys.exit(_fail(_EXIT_FAILURE, "setup", e))
    # Whatever print() left in the buffer before run() now goes to stderr, as does all that follows.
    _flush_user_output()
    sys.stdout = sys.stderr

    channel = _Channel(frames_in, frames_out)
    try:
        code = _Worker(channel, handler).serve()
    except ProtocolError as e:
        code = _fail(_EXIT_PROTOCOL_ERROR, "protocol error", e)
    except OSError as e:
        code = _fail(_EXIT_FAILURE, "i/o error", e)
    except Exception as e:
        code = _fail(_EXIT_FAILURE, "failed", "%s: %s" % (type(e).__name__, e))
    _flush_user_output()
    sys.exit(code)
