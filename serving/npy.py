"""The ``.npy`` bodies of ``POST /predict_npy`` (SPEC §8): read without pickle, written as numpy.

A request body is what ``numpy.save`` writes. Its header is read with numpy's own header parser
(bounded in size), then checked before any array memory is touched: version 1.0 or 2.0, a plain
numeric dtype (float, int, unsigned, bool; never objects, which only pickle can carry), an item
count the body actually holds. The data are then a zero-copy view of the body. So a small body
cannot make the worker allocate a huge array, and nothing in it is ever unpickled.
"""

from __future__ import annotations

import io
import math

import numpy as np

from serving.validation import RequestError

MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 10_000  # numpy's own default limit for untrusted headers
NUMERIC_KINDS = "fiub"  # float, signed int, unsigned int, bool
MEDIA_TYPE = "application/octet-stream"


def read_npy(body: bytes, max_leading: int) -> np.ndarray:
    """The array in ``body`` (a read-only view); :class:`RequestError` naming what is wrong.

    ``max_leading`` bounds the first axis of a 3- or 4-dimensional array (the batch) before
    the data are looked at. 400 for a body that is no readable ``.npy``, 422 for an array that
    is readable but not acceptable.
    """
    if not body.startswith(MAGIC):
        raise RequestError(
            "the body is not a .npy file (it must start with the .npy magic bytes \\x93NUMPY; "
            "write it with numpy.save)",
            400,
        )
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                stream, max_header_size=MAX_HEADER_BYTES
            )
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                stream, max_header_size=MAX_HEADER_BYTES
            )
        else:
            raise RequestError(
                f".npy format version {version[0]}.{version[1]} is not accepted; "
                "numpy.save writes 1.0",
                400,
            )
    except RequestError:
        raise
    except Exception as exc:  # numpy raises ValueError/SyntaxError/TypeError for broken headers
        raise RequestError(f"the .npy header cannot be read: {_one_line(exc)}", 400) from None
    if dtype.hasobject:
        raise RequestError(
            "the .npy file holds Python objects (a pickled array); only numeric arrays are "
            "accepted and pickles are never loaded"
        )
    if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in NUMERIC_KINDS:
        raise RequestError(
            f"the .npy array has dtype {dtype.str!r}; expected numbers (float, int or bool)"
        )
    if len(shape) in (3, 4) and shape[0] > max_leading:
        raise RequestError(
            f"the .npy array holds {shape[0]} microstructures; at most {max_leading} per request"
        )
    count = math.prod(shape)
    offset = stream.tell()
    expected = count * dtype.itemsize
    if len(body) - offset != expected:
        raise RequestError(
            f"the .npy body holds {len(body) - offset} bytes of data, but its header "
            f"(shape {list(shape)}, dtype {dtype.str!r}) needs {expected}",
            400,
        )
    if count == 0:
        return np.empty(shape, dtype)
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def write_npy(array: np.ndarray) -> bytes:
    """``array`` as the bytes ``numpy.save`` writes (format 1.0, C order)."""
    array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue() + array.tobytes()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
