"""The FaaS-style baseline of bench/chain_vs_http: the matmul chain's function behind a plain HTTP
server (http.server.ThreadingHTTPServer, HTTP/1.1 keep-alive). POST /matmul with a matrix item
(examples/matmul-chain/matmul/matrix.py) answers 200 with the next item: the product by the same
fixed matrix, hop + 1, exactly what the edge function computes.

    /usr/bin/python3 -B bench/chain_vs_http_server.py [--port 0]

Prints "listening 127.0.0.1:PORT" on stdout once it accepts connections; runs until killed.
"""
import argparse
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# As the edge function's spec sets it: one BLAS thread (before numpy is loaded).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "matmul-chain" / "matmul"))
import matrix as mx  # noqa: E402


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says Connection: close
    # The headers and the body are two writes: without TCP_NODELAY, Nagle's algorithm holds a body
    # smaller than a segment until the client's delayed ACK of the headers (40 ms per call).
    disable_nagle_algorithm = True

    def do_POST(self):  # noqa: N802 (http.server's naming)
        if self.path != "/matmul":
            self._answer(404, b"not found\n", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            m, hop, hops = mx.decode(body)
        except ValueError as e:
            self._answer(400, (str(e) + "\n").encode(), "text/plain")
            return
        self._answer(200, mx.encode(mx.step(m), hop + 1, hops), mx.CONTENT_TYPE)

    def _answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # no access log on the measured path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
