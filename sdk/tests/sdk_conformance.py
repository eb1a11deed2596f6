"""Test cases every function SDK must pass, run against a real worker through protocol_harness.

A test module mixes ConformanceTests into a unittest.TestCase and provides ``worker_command()``:
the argv of its SDK's conformance function (sdk/tests/cpp/conformance_function.cc,
sdk/tests/python/conformance_function.py), which picks its behaviour from the input "op".
"""

import json
import os
import tempfile
import time

from protocol_harness import InputItem, Worker, WorkerGone

SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame_bytes(header_bytes):
    """A frame with these exact header bytes and no blobs."""
    return len(header_bytes).to_bytes(4, "big") + header_bytes


def json_frame(header, blob_data=b""):
    return frame_bytes(json.dumps(header).encode()) + blob_data


VALID_INVOKE = {"type": "invoke", "id": 1, "item_id": "i", "stream": "", "attempt": 1,
                "trace_id": "0" * 32, "deadline_ms": 0, "blobs": [5],
                "inputs": [{"name": "op", "blob": 0, "content_type": "", "channel": "c",
                            "key": "k"}]}


def invoke_with(**changes):
    header = json.loads(json.dumps(VALID_INVOKE))
    for name, value in changes.items():
        if value is None:
            del header[name]
        else:
            header[name] = value
    return header


def batch_entry(invocation_id, **changes):
    """One invocation of an invoke_batch frame made by batch_frame: "upper" of blob 1."""
    entry = {"id": invocation_id, "item_id": "i%d" % invocation_id, "stream": "", "attempt": 1,
             "trace_id": "0" * 32, "timeout_ms": 60000,
             "inputs": [{"name": "op", "blob": 0, "content_type": "", "channel": "c", "key": "k"},
                        {"name": "in", "blob": 1, "content_type": "", "channel": "c", "key": "k"}]}
    for name, value in changes.items():
        if value is None:
            del entry[name]
        else:
            entry[name] = value
    return entry


def batch_frame(invocations):
    """An invoke_batch frame whose invocations all share the blobs "upper" and "abc" (None: a
    frame without "invocations")."""
    header = {"type": "invoke_batch", "blobs": [5, 3]}
    if invocations is not None:
        header["invocations"] = invocations
    return json_frame(header, b"upperabc")


class ConformanceTests:
    def worker_command(self):
        raise NotImplementedError

    def worker_env(self, **extra):
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.update(extra)
        return env

    def start_worker(self, env=None, **options):
        worker = Worker(self.worker_command(), env=env or self.worker_env(), **options)
        self.addCleanup(worker.kill)
        return worker.start()

    def op_inputs(self, op, data=None):
        inputs = [InputItem("op", op, content_type="text/plain")]
        if data is not None:
            inputs.append(InputItem("in", data, content_type="application/x-test"))
        return inputs

    def run_op(self, worker, op, data=None, **invoke_members):
        return worker.invoke(self.op_inputs(op, data), **invoke_members)

    def batch_op(self, op, data=None, **invocation_members):
        """One invocation for Worker.invoke_batch."""
        return dict(invocation_members, inputs=self.op_inputs(op, data))

    def assert_result(self, outcome):
        self.assertTrue(outcome.ok, outcome)
        return outcome

    # -- lifecycle -------------------------------------------------------------------------------

    def test_ready_then_clean_exit_on_shutdown(self):
        worker = self.start_worker()
        self.assertEqual(worker.shutdown(), 0)

    def test_clean_exit_at_end_of_input(self):
        worker = self.start_worker()
        self.assert_result(self.run_op(worker, "upper", "x"))
        worker.close_stdin()
        self.assertEqual(worker.wait(), 0)

    # -- data ------------------------------------------------------------------------------------

    def test_echo_and_uppercase_in_one_worker(self):
        worker = self.start_worker()
        echoed = self.assert_result(self.run_op(worker, "echo", "hello"))
        self.assertEqual(echoed.output("out").data, b"hello")
        self.assertEqual(echoed.output("out").content_type, "application/x-test")
        self.assertEqual(len(echoed.outputs), 1)
        for word in ("hello", "edge", "flow"):
            upper = self.assert_result(self.run_op(worker, "upper", word))
            self.assertEqual(upper.output("out").data, word.upper().encode())
            self.assertIsNone(upper.output("out").content_type)
        self.assertEqual(worker.shutdown(), 0)

    def test_invocation_metadata(self):
        worker = self.start_worker()
        inputs = [InputItem("op", "meta", content_type="text/plain", channel="ops", key="k1"),
                  InputItem("in", b"abc", content_type="image/x", channel="cams/front", key="k2")]
        outcome = self.assert_result(worker.invoke(
            inputs, item_id="item-42", stream="cam-7", attempt=3, trace_id="ab" * 16,
            deadline_ms=1234567890123))
        meta = json.loads(outcome.output("out").data)
        self.assertEqual(meta["item_id"], "item-42")
        self.assertEqual(meta["stream"], "cam-7")
        self.assertEqual(meta["attempt"], 3)
        self.assertEqual(meta["trace_id"], "ab" * 16)
        self.assertEqual(meta["deadline_ms"], 1234567890123)
        self.assertEqual(meta["invocation_id"], 1)
        self.assertEqual(meta["inputs"], [
            {"name": "op", "content_type": "text/plain", "channel": "ops", "key": "k1",
             "size": 4},
            {"name": "in", "content_type": "image/x", "channel": "cams/front", "key": "k2",
             "size": 3}])
        described = self.assert_result(self.run_op(worker, "describe", "x", item_id="it"))
        self.assertEqual(described.output("out").data, b"it attempt 1 with 2 inputs")
        self.assertEqual(worker.shutdown(), 0)

    def test_binary_data_with_every_byte_value(self):
        worker = self.start_worker()
        data = bytes(range(256)) * 4 + b"\0\0\r\n\0"
        outcome = self.assert_result(self.run_op(worker, "echo", data))
        self.assertEqual(outcome.output("out").data, data)
        empty = self.assert_result(self.run_op(worker, "echo", b""))
        self.assertEqual(empty.output("out").data, b"")
        self.assertEqual(worker.shutdown(), 0)

    def test_five_megabyte_blob(self):
        worker = self.start_worker()
        data = os.urandom(5 * 1024 * 1024)
        outcome = self.assert_result(self.run_op(worker, "echo", data))
        self.assertEqual(len(outcome.output("out").data), len(data))
        self.assertTrue(outcome.output("out").data == data)
        self.assertEqual(worker.shutdown(), 0)

    def test_several_outputs_with_parts(self):
        worker = self.start_worker(declared_outputs=["out", "count"])
        outcome = self.assert_result(self.run_op(worker, "parts", "a,b2,c-3"))
        self.assertEqual([(o.name, o.part, o.data) for o in outcome.outputs],
                         [("out", "a", b"A"), ("out", "b2", b"B2"), ("out", "c-3", b"C-3"),
                          ("count", None, b"3")])
        self.assertEqual(outcome.output("out", "a").content_type, "text/plain")
        self.assertEqual(worker.shutdown(), 0)

    def test_no_outputs(self):
        worker = self.start_worker()
        outcome = self.assert_result(self.run_op(worker, "none", "x"))
        self.assertEqual(outcome.outputs, [])
        self.assertEqual(worker.shutdown(), 0)

    def test_invalid_part_and_duplicate_output_fail_permanently(self):
        worker = self.start_worker()
        for op in ("bad_part", "duplicate"):
            with self.subTest(op=op):
                outcome = self.run_op(worker, op, "x")
                self.assertFalse(outcome.ok)
                self.assertFalse(outcome.rejected, "the SDK must catch it, not the node")
                self.assertIs(outcome.retry, False)
                self.assertIn("part", outcome.message)
        self.assertEqual(worker.shutdown(), 0)

    def test_result_header_over_one_mebibyte_fails_permanently(self):
        worker = self.start_worker()
        outcome = self.run_op(worker, "too_many_outputs", "x")
        self.assertFalse(outcome.ok)
        self.assertIs(outcome.retry, False)
        self.assertIn("1 MiB", outcome.message)
        self.assert_result(self.run_op(worker, "upper", "x"))
        self.assertEqual(worker.shutdown(), 0)

    # -- context and log -------------------------------------------------------------------------

    def test_context_round_trip(self):
        worker = self.start_worker(context={"other": b"kept"})
        value = bytes(range(256))
        outcome = self.assert_result(self.run_op(worker, "ctx", value))
        self.assertEqual(outcome.output("out").data, value)
        self.assertEqual(outcome.output("gone").data, b"yes")
        self.assertEqual(outcome.ctx_requests, [("ctx_put", "k"), ("ctx_get", "k"),
                                                ("ctx_delete", "k"), ("ctx_get", "k")])
        self.assertEqual(worker.context_ttl_ms["k"], 60000)
        self.assertEqual(worker.context, {"other": b"kept"})
        self.assertEqual(worker.shutdown(), 0)

    def test_context_counter_across_invocations(self):
        worker = self.start_worker()
        for n in (1, 2, 3):
            outcome = self.assert_result(self.run_op(worker, "counter", "x"))
            self.assertEqual(outcome.output("out").data, str(n).encode())
            self.assertEqual(outcome.logs, [("info", "seen %d" % n)])
        self.assertEqual(worker.context["count"], b"3")
        self.assertEqual(worker.context_ttl_ms["count"], 0)
        self.assertEqual(worker.shutdown(), 0)

    def test_node_context_error_is_an_exception_the_handler_can_catch(self):
        refuse = lambda op, key: "store unavailable" if key == "fail" else None
        worker = self.start_worker(ctx_error=refuse)
        caught = self.assert_result(self.run_op(worker, "ctx_error_caught", "x"))
        text = caught.output("out").data.decode()
        self.assertTrue(text.startswith("caught: "), text)
        self.assertIn("store unavailable", text)
        uncaught = self.run_op(worker, "ctx_error_uncaught", "x")
        self.assertFalse(uncaught.ok)
        self.assertIs(uncaught.retry, True)
        self.assertIn("store unavailable", uncaught.message)
        # The worker is still fine.
        self.assert_result(self.run_op(worker, "counter", "x"))
        self.assertEqual(worker.shutdown(), 0)

    def test_invalid_context_keys_are_refused_without_asking_the_node(self):
        worker = self.start_worker()
        outcome = self.assert_result(self.run_op(worker, "bad_key", "x"))
        lines = outcome.output("out").data.decode().splitlines()
        self.assertEqual(len(lines), 3, lines)
        for line in lines:
            self.assertTrue(line.startswith("rejected: "), line)
        self.assertIn("1..512 bytes", lines[0])
        self.assertIn("UTF-8", lines[2])
        self.assertEqual(outcome.ctx_requests, [])
        self.assertEqual(worker.shutdown(), 0)

    def test_log_frames(self):
        worker = self.start_worker()
        outcome = self.assert_result(self.run_op(worker, "log", "x"))
        self.assertEqual(outcome.logs, [("debug", "d"), ("info", "i"), ("warn", "w"),
                                        ("error", "e"), ("info", "via log()")])
        long_log = self.assert_result(self.run_op(worker, "long_log", "x"))
        (level, message), = long_log.logs
        self.assertEqual(level, "info")
        self.assertEqual(message, "x" * (64 * 1024))
        bad_text = self.assert_result(self.run_op(worker, "bad_text_log", "x"))
        (level, message), = bad_text.logs
        self.assertTrue(message.startswith("bad ") and message.endswith(" bytes"), message)
        self.assertEqual(worker.shutdown(), 0)

    def test_context_from_several_threads(self):
        worker = self.start_worker()
        outcome = self.assert_result(self.run_op(worker, "threads", "x"))
        self.assertEqual(outcome.output("out").data, b"ok")
        self.assertEqual(len(outcome.logs), 100)
        self.assertEqual(len(outcome.ctx_requests), 200)
        self.assertEqual({k: worker.context[k] for k in ("t0", "t1", "t2", "t3")},
                         {k: b"24" for k in ("t0", "t1", "t2", "t3")})
        self.assertEqual(worker.shutdown(), 0)

    # -- batches ---------------------------------------------------------------------------------

    def test_ready_announces_batches_of_64(self):
        worker = self.start_worker()
        self.assertEqual(worker.batch, 64)
        self.assertEqual(worker.shutdown(), 0)

    def test_batch_results_come_in_order(self):
        worker = self.start_worker()
        outcomes = worker.invoke_batch([self.batch_op("echo", "hello"),
                                        self.batch_op("upper", "edge"),
                                        self.batch_op("upper", "flow")])
        for outcome in outcomes:
            self.assert_result(outcome)
        self.assertEqual([o.invocation_id for o in outcomes], [1, 2, 3])
        self.assertEqual([o.output("out").data for o in outcomes], [b"hello", b"EDGE", b"FLOW"])
        self.assertEqual(outcomes[0].output("out").content_type, "application/x-test")
        self.assertIsNone(outcomes[1].output("out").content_type)
        largest = worker.invoke_batch([self.batch_op("upper", "item %d" % n) for n in range(64)])
        self.assertEqual([o.invocation_id for o in largest], list(range(4, 68)))
        self.assertEqual([self.assert_result(o).output("out").data for o in largest],
                         [b"ITEM %d" % n for n in range(64)])
        self.assertEqual(worker.shutdown(), 0)

    def test_failed_invocation_in_a_batch_does_not_stop_the_rest(self):
        worker = self.start_worker()
        first, failed, third = worker.invoke_batch([self.batch_op("upper", "a"),
                                                    self.batch_op("raise", "bad"),
                                                    self.batch_op("upper", "c")])
        self.assertEqual(self.assert_result(first).output("out").data, b"A")
        self.assertFalse(failed.ok)
        self.assertEqual(failed.invocation_id, 2)
        self.assertIs(failed.retry, True)
        self.assertIn("boom: bad", failed.message)
        self.assertEqual(self.assert_result(third).output("out").data, b"C")
        self.assertEqual(worker.shutdown(), 0)

    def test_context_requests_in_a_batch(self):
        worker = self.start_worker()
        outcomes = worker.invoke_batch([self.batch_op("counter", "x") for _ in range(5)])
        for n, outcome in enumerate(outcomes, 1):
            self.assertEqual(self.assert_result(outcome).output("out").data, str(n).encode())
            self.assertEqual(outcome.logs, [("info", "seen %d" % n)])
            self.assertEqual(outcome.ctx_requests, [("ctx_get", "count"), ("ctx_put", "count")])
        self.assertEqual(worker.context["count"], b"5")
        self.assertEqual(worker.shutdown(), 0)

    def test_invocation_metadata_in_a_batch(self):
        worker = self.start_worker()
        entries = [
            {"inputs": [InputItem("op", "meta", content_type="text/plain", channel="ops", key="k1"),
                        InputItem("in", b"abc" * n, content_type="image/x", channel="cams/front",
                                  key="k2")],
             "item_id": "item-%d" % n, "stream": "cam-%d" % n, "attempt": n,
             "trace_id": ("%02x" % n) * 16, "timeout_ms": 1000 * n}
            for n in (1, 2, 3)]
        entries.insert(2, self.batch_op("sleep", "50"))
        slack_ms = 5
        began_ms = time.time() * 1000
        outcomes = worker.invoke_batch(entries)
        ended_ms = time.time() * 1000
        del outcomes[2]
        metas = [json.loads(self.assert_result(o).output("out").data) for o in outcomes]
        for n, meta in enumerate(metas, 1):
            with self.subTest(invocation=n):
                self.assertEqual(meta["item_id"], "item-%d" % n)
                self.assertEqual(meta["stream"], "cam-%d" % n)
                self.assertEqual(meta["attempt"], n)
                self.assertEqual(meta["trace_id"], ("%02x" % n) * 16)
                self.assertEqual(meta["inputs"], [
                    {"name": "op", "content_type": "text/plain", "channel": "ops", "key": "k1",
                     "size": 4},
                    {"name": "in", "content_type": "image/x", "channel": "cams/front",
                     "key": "k2", "size": 3 * n}])
                self.assertGreaterEqual(meta["deadline_ms"], began_ms + 1000 * n - slack_ms)
                self.assertLessEqual(meta["deadline_ms"], ended_ms + 1000 * n)
        self.assertEqual([meta["invocation_id"] for meta in metas], [1, 2, 4])
        # Each deadline counts from its own invocation's start, not from the batch's arrival.
        self.assertGreaterEqual((metas[2]["deadline_ms"] - 3000) - (metas[1]["deadline_ms"] - 2000),
                                50 - 1)
        self.assertEqual(worker.shutdown(), 0)

    def test_reply_in_a_batch_goes_out_while_the_next_invocation_runs(self):
        worker = self.start_worker()
        with tempfile.TemporaryDirectory() as directory:
            go = os.path.join(directory, "go")
            quick, waiting = worker.begin_invoke_batch([self.batch_op("echo", "hello"),
                                                        self.batch_op("wait_for_file", go)])
            # The next invocation waits for the harness, which waits for this result.
            echoed = self.assert_result(worker.finish_invoke(quick, timeout=5))
            self.assertEqual(echoed.output("out").data, b"hello")
            open(go, "w").close()
            found = self.assert_result(worker.finish_invoke(waiting, timeout=15))
        self.assertEqual(found.output("out").data, b"found")
        self.assertEqual(worker.shutdown(), 0)

    def test_replies_before_a_crash_in_a_batch_reach_the_node(self):
        worker = self.start_worker()
        first, crashing, _ = worker.begin_invoke_batch([self.batch_op("echo", "hello"),
                                                        self.batch_op("crash"),
                                                        self.batch_op("echo", "never run")])
        # The first reply was written before the second invocation ended the process, so the
        # node would charge the crash to the second invocation alone.
        echoed = self.assert_result(worker.finish_invoke(first, timeout=10))
        self.assertEqual(echoed.invocation_id, first)
        self.assertEqual(echoed.output("out").data, b"hello")
        self.assertEqual(echoed.output("out").content_type, "application/x-test")
        with self.assertRaises(WorkerGone):
            worker.finish_invoke(crashing, timeout=10)
        self.assertEqual(worker.wait(), 3)

    def test_single_invocations_around_a_batch(self):
        worker = self.start_worker()
        self.assertEqual(self.assert_result(self.run_op(worker, "upper", "before"))
                         .output("out").data, b"BEFORE")
        outcomes = worker.invoke_batch([self.batch_op("upper", "a"), self.batch_op("log", "b")])
        self.assertEqual(self.assert_result(outcomes[0]).output("out").data, b"A")
        self.assertEqual(len(self.assert_result(outcomes[1]).logs), 5)
        after = self.assert_result(self.run_op(worker, "upper", "after"))
        self.assertEqual(after.invocation_id, 4)
        self.assertEqual(after.output("out").data, b"AFTER")
        self.assertEqual(self.assert_result(self.run_op(worker, "counter", "x"))
                         .output("out").data, b"1")
        worker.close_stdin()
        self.assertEqual(worker.wait(), 0)

    def test_batch_frame_shares_its_blobs_among_invocations(self):
        worker = self.start_worker()
        worker.send_raw(batch_frame([batch_entry(1), batch_entry(2), batch_entry(3)]))
        for invocation_id in (1, 2, 3):
            frame_type, result, blobs = worker.read_frame(10)
            self.assertEqual((frame_type, result["id"], blobs), ("result", invocation_id, [b"ABC"]))
        self.assertEqual(worker.shutdown(), 0)

    MALFORMED_BATCHES = {
        "no invocations": batch_frame(None),
        "invocations not an array": batch_frame({"1": batch_entry(1)}),
        "one invocation": batch_frame([batch_entry(1)]),
        "65 invocations": batch_frame([batch_entry(n) for n in range(1, 66)]),
        "an invocation that is not an object": batch_frame([batch_entry(1), [2]]),
        "an invocation without id": batch_frame([batch_entry(1), batch_entry(2, id=None)]),
        "an invocation with a string attempt": batch_frame([batch_entry(1),
                                                            batch_entry(2, attempt="1")]),
        "an invocation with deadline_ms instead of timeout_ms": batch_frame(
            [batch_entry(1), batch_entry(2, timeout_ms=None, deadline_ms=0)]),
        "a negative timeout_ms": batch_frame([batch_entry(1), batch_entry(2, timeout_ms=-1)]),
        "a blob index out of range": batch_frame([batch_entry(1), batch_entry(2, inputs=[
            {"name": "op", "blob": 2, "content_type": "", "channel": "c", "key": "k"}])]),
        "a duplicate input name": batch_frame([batch_entry(1), batch_entry(2, inputs=[
            {"name": "op", "blob": 0, "content_type": "", "channel": "c", "key": "k"},
            {"name": "op", "blob": 0, "content_type": "", "channel": "c", "key": "k"}])]),
    }

    def test_malformed_batches_end_the_worker_before_any_invocation(self):
        for name, data in self.MALFORMED_BATCHES.items():
            with self.subTest(batch=name):
                worker = self.start_worker()
                worker.send_raw(data)
                # wait() also fails if the worker wrote a reply for the well-formed invocation.
                self.assertEqual(worker.wait(), 2, worker.stderr)
                self.assertIn("edgeflow function: protocol error: ", worker.stderr)

    # -- failures --------------------------------------------------------------------------------

    def test_handler_exception_becomes_a_retryable_error(self):
        worker = self.start_worker()
        outcome = self.run_op(worker, "raise", "bad thing")
        self.assertFalse(outcome.ok)
        self.assertIs(outcome.retry, True)
        self.assertIn("boom: bad thing", outcome.message)
        self.assert_result(self.run_op(worker, "upper", "still alive"))
        self.assertEqual(worker.shutdown(), 0)

    def test_permanent_error_is_not_retried(self):
        worker = self.start_worker()
        outcome = self.run_op(worker, "permanent", "garbage")
        self.assertFalse(outcome.ok)
        self.assertIs(outcome.retry, False)
        self.assertEqual(outcome.message, "cannot parse: garbage")
        self.assertEqual(worker.shutdown(), 0)

    # -- stdout and stdin belong to the protocol -------------------------------------------------

    def test_printing_goes_to_stderr_not_the_protocol(self):
        worker = self.start_worker()
        for _ in range(2):
            outcome = self.assert_result(self.run_op(worker, "print", "x"))
            self.assertEqual(outcome.output("out").data, b"printed")
        self.assertEqual(worker.shutdown(), 0)
        for line in ("print line", "write line", "child line", "tail without newline"):
            self.assertIn(line, worker.stderr)

    def test_output_buffered_before_run_goes_to_stderr(self):
        env = self.worker_env(EF_TEST_PRINT_BEFORE_RUN="1")
        env.pop("PYTHONUNBUFFERED", None)  # unbuffered output is written before run() can help
        worker = self.start_worker(env=env)
        self.assert_result(self.run_op(worker, "upper", "x"))
        self.assertEqual(worker.shutdown(), 0)
        self.assertIn("early output before run()", worker.stderr)

    def test_reading_stdin_does_not_steal_protocol_bytes(self):
        worker = self.start_worker()
        outcome = self.assert_result(self.run_op(worker, "read_stdin", "x"))
        self.assertEqual(outcome.output("out").data, b"eof")
        self.assert_result(self.run_op(worker, "upper", "x"))
        self.assertEqual(worker.shutdown(), 0)

    # -- the node breaking the protocol ----------------------------------------------------------

    MALFORMED_FRAMES = {
        "zero header length": b"\0\0\0\0",
        "one-byte header": b"\0\0\0\x01{",
        "header over 1 MiB": ((1 << 20) + 1).to_bytes(4, "big"),
        "header not JSON": frame_bytes(b"nope"),
        "header not an object": frame_bytes(b"[1, 2]"),
        "header not UTF-8": frame_bytes(b'{"type": "invoke\xff"}'),
        "no type": json_frame({"id": 1}),
        "type not a string": json_frame({"type": 7}),
        "unknown type": json_frame({"type": "bogus"}),
        "blobs not an array": json_frame({"type": "shutdown", "blobs": 3}),
        "negative blob size": json_frame({"type": "shutdown", "blobs": [-1]}),
        "answer while no request is open": json_frame({"type": "ctx_done", "req": 1}),
        "invoke without id": json_frame(invoke_with(id=None), b"upper"),
        "invoke with a string attempt": json_frame(invoke_with(attempt="1"), b"upper"),
        "invoke with a fractional id": json_frame(invoke_with(id=1.5), b"upper"),
        "invoke without inputs": json_frame(invoke_with(inputs=None), b"upper"),
        "invoke with a blob index out of range": json_frame(invoke_with(inputs=[
            {"name": "op", "blob": 1, "content_type": "", "channel": "", "key": ""}]), b"upper"),
        "invoke with a duplicate input name": json_frame(invoke_with(inputs=[
            {"name": "op", "blob": 0, "content_type": "", "channel": "", "key": ""},
            {"name": "op", "blob": 0, "content_type": "", "channel": "", "key": ""}]), b"upper"),
        "invoke input without channel": json_frame(invoke_with(inputs=[
            {"name": "op", "blob": 0, "content_type": "", "key": ""}]), b"upper"),
    }

    def test_malformed_frames_from_the_node_end_the_worker(self):
        for name, data in self.MALFORMED_FRAMES.items():
            with self.subTest(frame=name):
                worker = self.start_worker()
                worker.send_raw(data)
                self.assertEqual(worker.wait(), 2, worker.stderr)
                self.assertIn("edgeflow function: protocol error: ", worker.stderr)

    def test_truncated_frames_end_the_worker(self):
        cases = {
            "inside the length prefix": b"\0\0",
            "inside the header": b"\0\0\0\x20{\"type\"",
            "inside a blob": json_frame(invoke_with(), b"op"),
        }
        for name, data in cases.items():
            with self.subTest(truncated=name):
                worker = self.start_worker()
                worker.send_raw(data)
                worker.close_stdin()
                self.assertEqual(worker.wait(), 2, worker.stderr)
                self.assertIn("truncated frame", worker.stderr)

    def answer_first_request(self, answer):
        """Starts a counter invocation, answers its ctx_get with ``answer(req)`` (a header), and
        returns the worker, which must then exit with status 2."""
        worker = self.start_worker()
        worker.begin_invoke({"op": "counter", "in": "x"})
        frame_type, header, _ = worker.read_frame(10)
        self.assertEqual(frame_type, "ctx_get")
        worker.send_frame(answer(header["req"]))
        self.assertEqual(worker.wait(), 2, worker.stderr)
        self.assertIn("edgeflow function: protocol error: ", worker.stderr)
        return worker

    def test_wrong_answers_to_a_context_request_end_the_worker(self):
        cases = {
            "another req": lambda req: {"type": "ctx_value", "req": req + 1, "found": False},
            "a ctx_done": lambda req: {"type": "ctx_done", "req": req},
            "an invoke": lambda req: invoke_with(blobs=[], inputs=[]),
            "a shutdown": lambda req: {"type": "shutdown"},
            "found without a blob": lambda req: {"type": "ctx_value", "req": req, "found": True},
            "found not a boolean": lambda req: {"type": "ctx_value", "req": req, "found": 1},
            "error not a string": lambda req: {"type": "ctx_value", "req": req, "error": 5},
        }
        for name, answer in cases.items():
            with self.subTest(answer=name):
                self.answer_first_request(answer)

    def test_end_of_input_while_waiting_for_an_answer_is_an_error(self):
        worker = self.start_worker()
        worker.begin_invoke({"op": "counter", "in": "x"})
        self.assertEqual(worker.read_frame(10)[0], "ctx_get")
        worker.close_stdin()
        self.assertEqual(worker.wait(), 2, worker.stderr)
        self.assertIn("waiting for the answer", worker.stderr)

    def test_unknown_header_members_are_ignored(self):
        worker = self.start_worker()
        header = invoke_with(future_member={"x": 1})
        header["inputs"][0]["future"] = True
        worker.send_raw(json_frame(header, b"upper"))
        frame_type, result, blobs = worker.read_frame(10)
        self.assertEqual(frame_type, "result")
        self.assertEqual(result["id"], 1)
        self.assertEqual(blobs, [b""])  # "upper" without an "in" input
        self.assertEqual(worker.shutdown(), 0)

    def test_shutdown_is_prompt(self):
        worker = self.start_worker()
        self.assert_result(self.run_op(worker, "upper", "x"))
        began = time.monotonic()
        self.assertEqual(worker.shutdown(timeout=5), 0)
        self.assertLess(time.monotonic() - began, 5)
