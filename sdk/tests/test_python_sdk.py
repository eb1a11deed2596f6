"""Tests of the Python function SDK (sdk/python/edgeflow_function.py) against real worker
processes, through protocol_harness. Run: /usr/bin/python3 -m unittest test_python_sdk (in
sdk/tests; CTest does it)."""

import os
import subprocess
import sys
import unittest

from protocol_harness import Worker
from sdk_conformance import SDK_DIR, ConformanceTests

PYTHON_SDK_DIR = os.path.join(SDK_DIR, "python")
CONFORMANCE_FUNCTION = os.path.join(SDK_DIR, "tests", "python", "conformance_function.py")
EXAMPLE = os.path.join(PYTHON_SDK_DIR, "examples", "uppercase.py")
HARNESS = os.path.join(SDK_DIR, "tests", "protocol_harness.py")


def python_env(**extra):
    env = dict(os.environ, PYTHONPATH=PYTHON_SDK_DIR, PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


class PythonSdkConformanceTest(ConformanceTests, unittest.TestCase):
    def worker_command(self):
        return [sys.executable, CONFORMANCE_FUNCTION]

    def worker_env(self, **extra):
        return python_env(**extra)

    def test_return_value_types(self):
        worker = self.start_worker()
        outcome = self.assert_result(self.run_op(worker, "types", "x"))
        got = {(o.name, o.part): (o.data, o.content_type) for o in outcome.outputs}
        self.assertEqual(got, {
            ("bytes", None): (b"b", None),
            ("str", None): ("s\u00e9".encode(), None),
            ("bytearray", None): (b"ba", None),
            ("memoryview", None): (b"mv", None),
            ("output", None): (b"o", "text/x"),
            ("list", "p1"): (b"1", None),
            ("list", "p2"): (b"2", None),
        })
        self.assertEqual(worker.shutdown(), 0)

    def test_invalid_return_value_fails_permanently(self):
        worker = self.start_worker()
        outcome = self.run_op(worker, "bad_return", "x")
        self.assertFalse(outcome.ok)
        self.assertIs(outcome.retry, False)
        self.assertIn("must return a dict", outcome.message)
        self.assertEqual(worker.shutdown(), 0)

    def test_exception_message_names_its_type_and_traceback_goes_to_stderr(self):
        worker = self.start_worker()
        outcome = self.run_op(worker, "raise", "x")
        self.assertEqual(outcome.message, "RuntimeError: boom: x")
        bad_level = self.run_op(worker, "bad_log_level", "x")
        self.assertIn("ValueError: log level must be one of", bad_level.message)
        self.assertEqual(worker.shutdown(), 0)
        self.assertIn("Traceback (most recent call last)", worker.stderr)
        self.assertIn('raise RuntimeError("boom: " + data.decode())', worker.stderr)

    def test_context_of_an_ended_invocation_is_refused(self):
        worker = self.start_worker()
        self.assert_result(self.run_op(worker, "upper", "x"))
        outcome = self.assert_result(self.run_op(worker, "stale_ctx", "x"))
        self.assertEqual(outcome.output("out").data,
                         b"rejected: this context belongs to an invocation that has ended")
        self.assertEqual(outcome.ctx_requests, [])
        self.assertEqual(worker.shutdown(), 0)


class PythonExampleTest(unittest.TestCase):
    def test_uppercase_example_counts_items(self):
        with Worker([sys.executable, EXAMPLE], env=python_env(),
                    declared_outputs=["out"]) as worker:
            for n in (1, 2, 3):
                outcome = worker.invoke({"in": "hello edge"})
                self.assertTrue(outcome.ok, outcome)
                self.assertEqual(outcome.output("out").data, b"HELLO EDGE")
                self.assertEqual(outcome.logs, [("info", "seen %d" % n)])
            self.assertEqual(worker.context["count"], b"3")
            self.assertEqual(worker.shutdown(), 0)

    def test_harness_command_line(self):
        run = subprocess.run(
            [sys.executable, HARNESS, "--invoke", "in=hello", "--times", "2", "--outputs", "out",
             "--", sys.executable, EXAMPLE],
            env=python_env(), capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("invocation 2: result, 1 output(s)", run.stdout)
        self.assertIn("output out (text/plain; charset=utf-8, 5 bytes): 'HELLO'", run.stdout)
        self.assertIn("log info: seen 2", run.stdout)
        self.assertIn("count = '2'", run.stdout)
        self.assertIn("worker exited with status 0", run.stdout)

    def test_harness_command_line_reports_failures(self):
        run = subprocess.run(
            [sys.executable, HARNESS, "--invoke", "op=permanent", "--invoke", "in=zz", "--",
             sys.executable, CONFORMANCE_FUNCTION],
            env=python_env(), capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("invocation 1: error (retry: no): cannot parse: zz", run.stdout)
        crash = subprocess.run(
            [sys.executable, HARNESS, "--invoke", "in=x", "--", sys.executable, "-c",
             "import sys; sys.stdout.write('garbage'); sys.stdout.flush()"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(crash.returncode, 2, crash.stdout + crash.stderr)
        self.assertIn("FAILED", crash.stderr)


if __name__ == "__main__":
    unittest.main()
