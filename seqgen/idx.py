"""Reading and writing IDX files, the format MNIST is published in.

An IDX file holds one n-dimensional array: two zero bytes, a type code, the
number of dimensions, each dimension as a big-endian uint32, then the values
in C order, big-endian.  Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from .io import replace_own_file

#: IDX type code -> numpy dtype (big-endian, as the format stores it).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """An IDX file is malformed: wrong magic number, truncated, or inconsistent."""


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise IdxFormatError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    numpy.ndarray
        The array, in native byte order (``uint8`` for MNIST images and labels).

    Raises
    ------
    IdxFormatError
        If the magic number, the type code or the payload length is wrong; the
        message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(f"{path}: file too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{path}: wrong magic number {data[:4].hex()}; an IDX file starts with two zero bytes"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IdxFormatError(f"{path}: unknown IDX type code 0x{type_code:02X} (allowed: {allowed})")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(f"{path}: truncated header ({len(data)} of {header_len} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_len
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{path}: {what}: header {shape} needs {expected} payload bytes, found {payload}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write an array as an IDX file.

    Parameters
    ----------
    path : str or path-like
        Destination; gzip-compressed when it ends in ``.gz`` (or ``compress=True``).
    array : numpy.ndarray
        Any array whose dtype is one of the IDX types (uint8, int8, int16, int32,
        float32, float64).
    compress : bool, optional
        Force compression on or off; by default taken from the file name.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        allowed = ", ".join(str(dt) for dt in codes)
        raise TypeError(f"array: dtype {array.dtype} has no IDX type code (allowed: {allowed})")
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = header + array.astype(native.newbyteorder(">"), copy=False).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        body = gzip.compress(body, compresslevel=6, mtime=0)
    replace_own_file(path, body)  # atomically: a reader never sees half a file
    return path
