"""The matrices of the matmul chain: the item format and the fixed right-hand matrix, shared by
the function (matmul.py), the example's client and bench/chain_vs_http's HTTP baseline.

An item is a 20-byte header, then the matrix as float64 in C order (numpy .tobytes()):
    "EFMM", u32 hop (multiplications done so far), u32 hops (the chain's length), u32 rows,
    u32 cols   (little-endian)
"""
import struct

import numpy as np

CONTENT_TYPE = "application/x-edgeflow-matrix"
HEADER = struct.Struct("<4sIIII")
MAGIC = b"EFMM"
MAX_DIM = 4096
SEED = 20240501

_fixed = {}


def fixed_matrix(n):
    """The n x n matrix every step multiplies by: orthogonal (Q of a seeded random matrix's QR),
    so that 100 products neither overflow nor vanish."""
    if n not in _fixed:
        q, _ = np.linalg.qr(np.random.default_rng(SEED).standard_normal((n, n)))
        _fixed[n] = q
    return _fixed[n]


def start_matrix(n):
    return np.random.default_rng(SEED + 1).standard_normal((n, n))


def encode(matrix, hop, hops):
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    rows, cols = matrix.shape
    return HEADER.pack(MAGIC, hop, hops, rows, cols) + matrix.tobytes()


def decode(data):
    """(matrix, hop, hops); ValueError if `data` is not an item."""
    if len(data) < HEADER.size:
        raise ValueError("%d bytes is too short for a matrix item" % len(data))
    magic, hop, hops, rows, cols = HEADER.unpack_from(data)
    if magic != MAGIC or not 0 < rows <= MAX_DIM or not 0 < cols <= MAX_DIM:
        raise ValueError("not a matrix item (magic %r, %dx%d)" % (magic, rows, cols))
    if len(data) != HEADER.size + 8 * rows * cols:
        raise ValueError("a %dx%d matrix item must be %d bytes, not %d"
                         % (rows, cols, HEADER.size + 8 * rows * cols, len(data)))
    matrix = np.frombuffer(data, dtype=np.float64, offset=HEADER.size).reshape(rows, cols)
    return matrix, hop, hops


def step(matrix):
    """One call of the chain: matrix @ fixed."""
    return matrix @ fixed_matrix(matrix.shape[1])


def expected(matrix, hops):
    """What `hops` steps make of `matrix`, computed locally."""
    for _ in range(hops):
        matrix = step(matrix)
    return matrix
