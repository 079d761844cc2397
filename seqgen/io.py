"""Writing images and label manifests: atomic, and never over an existing file."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: Default zlib level of the PNGs: 1.  Levels 1-9 all use zlib's run-length
#: strategy (Z_RLE), which ignores the level: on 28x200 phone numbers it
#: encodes 1.3x faster than zlib's default strategy at level 1 and gives smaller
#: files (2,280 bytes on average) than the default strategy even at level 9
#: (2,330).  Level 0 stores the pixels uncompressed: files 2.5x larger.
PNG_LEVEL = 1
_PNG_BLOCK = 64  # images converted to 8 bits at once (a cache-sized block)
_RUN = secrets.token_hex(4)  # with the process and thread ids, names this writer's temporary files


#: The errors of a machine that failed mid-way (not of the request): the CLI exits 1 for them, not 2.
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


def reason(exc: BaseException) -> str:
    """Why an operation failed, in words: an OSError's ``strerror`` ("No space left on device"), not "[Errno 28] ..."."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def reworded(exc: OSError, message: str) -> OSError:
    """``exc`` saying ``message`` alone: the same built-in type (PermissionError, ...) and ``errno``."""
    new = (type(exc) if type(exc).__module__ == "builtins" else OSError)(message)
    new.errno = exc.errno  # a full disk stays a full disk, for the CLI's exit status
    return new


def prepare_output_dir(path: str | os.PathLike, name: str = "output_path") -> Path:
    """Create ``path`` (with parents) if needed and check it is a writable folder; errors name ``name``.

    Raises
    ------
    ValueError
        When ``path`` is empty, or a URL (``s3://...``).
    NotADirectoryError
        When ``path`` (or a parent) is a file.
    OSError
        When the folder cannot be made or takes no files (no such parent, no permission, a
        read-only file system, ...).
    """
    from .validation import not_a_url

    if not str(path).strip():
        raise ValueError(f"{name}: expected a folder name, got an empty string")
    not_a_url(path, name, "a local folder", "; only the webdataset and parquet exports write to URLs")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{name}: {str(folder)!r} is a file, expected a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(f"{name}: a parent of {str(folder)!r} is a file") from None
    except OSError as exc:  # no such parent (/proc), no permission, read-only file system, ...
        raise reworded(exc, f"{name}: cannot create {str(folder)!r}: {exc.strerror}") from None
    try:  # a file made and removed: unlike permission bits, this also holds for root, /proc and read-only mounts
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise reworded(exc, f"{name}: cannot write files in {str(folder)!r}: {exc.strerror}") from None
    return folder


def write_new_file(folder: Path, stem: str, suffix: str, payload: bytes) -> Path:
    """Write ``payload`` as ``stem + suffix``, or ``stem_1 + suffix``, ... when taken.

    The bytes go to a temporary file first (its name is unique to this
    process and thread), which is then hard-linked under the first free
    name: a link never replaces an existing file, so concurrent writers
    never overwrite each other or an existing file, and a crash never leaves
    a half-written file under a final name.  Where the file system has no
    hard links, the name is claimed with ``O_EXCL`` and the temporary file
    moved onto it.
    """
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}-{_RUN}{suffix}")
    try:
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:  # a full disk, say: name the file (a bare "[Errno 28]" named nothing)
            raise reworded(exc, f"output_path: cannot write {stem}{suffix} in {folder} ({reason(exc)})") from None
        for n in range(1_000_000):
            target = os.path.join(folder, f"{stem}{suffix}" if n == 0 else f"{stem}_{n}{suffix}")
            try:
                _publish(tmp, target)
            except FileExistsError:
                continue
            return Path(target)
        raise FileExistsError(f"output_path: no free file name for {stem}{suffix} in {folder}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _publish(tmp: str, target: str) -> None:
    """Give the finished file ``tmp`` the name ``target``; FileExistsError if that name is taken."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system (FAT, some network shares)
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        os.replace(tmp, target)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image (1.0 white) as 8-bit gray: ``round(255 * image)``, half to even as numpy's ``rint``;
    values outside [0, 1] saturate to 0 and 255 instead of wrapping around.

    One pass of OpenCV's saturating product: it multiplies in float32 and rounds as ``rint`` does
    (the same bytes for every float32 in [-2, 2], checked one by one).
    """
    import cv2

    image = np.asarray(image, np.float32)
    if image.size == 0:
        return np.zeros(image.shape, np.uint8)
    rows = np.ascontiguousarray(image.reshape(-1, image.shape[-1] if image.ndim else 1))  # OpenCV wants 2-D
    return cv2.multiply(rows, np.full(rows.shape, 255, np.float32), dtype=cv2.CV_8U).reshape(image.shape)


def encode_pngs(images: np.ndarray, level: int = PNG_LEVEL) -> list[bytes]:
    """Each float image of ``images`` (n, height, width) as PNG bytes (8-bit gray, zlib ``level``).

    OpenCV's encoder, which releases the GIL, so threads encode in parallel.  No row
    filter: on these mostly white images, deflate's run-length strategy does better on
    the raw rows than on libpng's adaptively filtered ones (smaller files, faster).
    """
    import cv2

    options = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    if level:
        options += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    payloads = []
    for start in range(0, len(images), _PNG_BLOCK):
        for pixels in to_uint8(images[start : start + _PNG_BLOCK]):
            payloads.append(cv2.imencode(".png", pixels, options)[1].tobytes())
    return payloads


def write_pngs(images: np.ndarray, stems: Iterable[str], folder: Path, level: int = PNG_LEVEL) -> list[Path]:
    """Write each float image as ``<stem>.png`` in ``folder`` (never overwriting); return the paths."""
    return [write_new_file(folder, stem, ".png", payload)
            for stem, payload in zip(stems, encode_pngs(images, level))]


def write_or_keep(path: str | os.PathLike, payload: bytes) -> bool:
    """Publish ``payload`` at ``path`` atomically unless the same bytes are already there.

    Returns True when written, False when an identical file was kept (a resumed
    export).  A different file at ``path`` is never replaced: FileExistsError.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}-{_RUN}-{name}")
    try:
        with open(tmp, "xb") as handle:
            handle.write(payload)
        try:
            _publish(tmp, path)
            return True
        except FileExistsError:
            if _same_bytes(path, payload):
                return False
            raise FileExistsError(f"{path} exists and holds different bytes; it is not overwritten") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _same_bytes(path: str, payload: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(payload) + 1) == payload
    except OSError:
        return False


def save_file(path: str | os.PathLike, payload: bytes, name: str = "path") -> Path:
    """Save ``payload`` (a model, for example) as the local file ``path``, atomically.

    Parent folders are made; a file already at ``path`` is replaced (saving a
    model again), a folder is refused.  Readers see the old file or the new one,
    never half of one, and a failed write leaves no temporary behind.

    Raises
    ------
    ValueError, OSError
        As :func:`prepare_file_path`.
    """
    path = prepare_file_path(path, name)
    replace_own_file(path, payload)
    return path


def prepare_file_path(path: str | os.PathLike, name: str = "path") -> Path:
    """``path`` as a local file that can be written: its folder is made (with parents) and checked.

    Raises
    ------
    ValueError
        When ``path`` is empty, a URL or a folder (the message names ``name``).
    NotADirectoryError, OSError
        When its folder cannot be made or takes no files, as :func:`prepare_output_dir`.
    """
    from .validation import not_a_url

    if not str(path).strip():
        raise ValueError(f"{name}: expected a file name, got an empty string")
    not_a_url(path, name)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a folder, expected a file")
    prepare_output_dir(path.parent, name)
    return path


def replace_own_file(path: str | os.PathLike, payload: bytes | Iterable[bytes]) -> None:
    """Atomically (re)write a file this export owns, such as its manifest: readers see old or new, never half.

    ``payload`` is the bytes, or an iterable of byte strings written one after another.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}-{_RUN}"
    try:
        with open(tmp, "wb") as handle:
            handle.writelines([payload] if isinstance(payload, (bytes, bytearray)) else payload)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
