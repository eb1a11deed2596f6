"""Tests of the C++ function SDK (sdk/cpp/include/edgeflow/function.h) against real worker
processes, through protocol_harness. CTest runs them with the paths of the built test function
and example in EF_SDK_CPP_CONFORMANCE_FUNCTION and EF_SDK_CPP_EXAMPLE_UPPERCASE."""

import os
import unittest

from protocol_harness import Worker
from sdk_conformance import ConformanceTests


def built_binary(variable):
    path = os.environ.get(variable)
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("%s must name the built executable (CTest sets it; got %r)"
                           % (variable, path))
    return path


class CppSdkConformanceTest(ConformanceTests, unittest.TestCase):
    def worker_command(self):
        return [built_binary("EF_SDK_CPP_CONFORMANCE_FUNCTION")]

    def test_exception_message_is_what(self):
        worker = self.start_worker()
        outcome = self.run_op(worker, "raise", "x")
        self.assertEqual(outcome.message, "boom: x")
        self.assertEqual(worker.shutdown(), 0)


class CppExampleTest(unittest.TestCase):
    def test_uppercase_example_counts_items(self):
        with Worker([built_binary("EF_SDK_CPP_EXAMPLE_UPPERCASE")],
                    declared_outputs=["out"]) as worker:
            for n in (1, 2, 3):
                outcome = worker.invoke({"in": "hello edge"})
                self.assertTrue(outcome.ok, outcome)
                self.assertEqual(outcome.output("out").data, b"HELLO EDGE")
                self.assertEqual(outcome.output("out").content_type, "text/plain")
                self.assertEqual(outcome.logs, [("info", "seen %d" % n)])
            self.assertEqual(worker.context["count"], b"3")
            missing = worker.invoke({"other": "x"})
            self.assertFalse(missing.ok)
            self.assertIs(missing.retry, False)
            self.assertEqual(worker.shutdown(), 0)


if __name__ == "__main__":
    unittest.main()
