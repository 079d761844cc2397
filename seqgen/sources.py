"""Where digit data sets come from: each described as data (mirrors, files, checksums, splits),
fetched and verified with pooch into a cache folder.

Full MNIST is the entry ``"mnist"`` of :data:`DATASETS`; files are fetched from the mirrors
in order, each with retries, verified against the published checksums and cached in
``pooch.os_cache("seqgen")`` or ``$SEQGEN_DATA_DIR``.  :mod:`seqgen.data` loads them.
"""

from __future__ import annotations

import contextlib
import errno
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Base URLs tried in order; overridden by ``urls=`` or ``$SEQGEN_MNIST_URLS``
#: (comma- or whitespace-separated).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: The four published files and their published MD5 checksums.
MNIST_REGISTRY: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}


@dataclass(frozen=True)
class IdxDataset:
    """A digit data set published as (gzipped) IDX files, described as data.

    The downloader and the loader read everything from here, so another data set
    in this format (QMNIST, EMNIST-digits) is one more entry in :data:`DATASETS`.

    Attributes
    ----------
    name : str
        The ``load_mnist(source=...)`` name.
    mirrors : tuple of str
        Base URLs, tried in order.
    registry : mapping
        File name -> pooch hash (``"md5:..."`` or ``"sha256:..."``).
    splits : mapping
        Split -> (images file, labels file), without the ``.gz``.
    urls_env : str
        Environment variable whose URLs replace ``mirrors``.
    """

    name: str
    mirrors: tuple[str, ...]
    registry: Mapping[str, str]
    splits: Mapping[str, tuple[str, str]]
    urls_env: str


MNIST = IdxDataset(
    name="mnist",
    mirrors=MNIST_MIRRORS,
    registry=MNIST_REGISTRY,
    splits={"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")},
    urls_env="SEQGEN_MNIST_URLS",
)
#: The downloadable data sets, by source name.
DATASETS: dict[str, IdxDataset] = {MNIST.name: MNIST}



class MnistUnavailableError(RuntimeError):
    """Full MNIST could not be downloaded from any mirror, or not saved in the cache folder."""


class CacheFolderError(MnistUnavailableError):
    """The cache folder cannot take the files (full, read-only, not this user's): no mirror can help."""


#: Why a file cannot be saved in the cache folder: the same on every mirror, so none is tried further.
_CANNOT_SAVE = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


# --------------------------------------------------------------------------- locations


def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder full MNIST is cached in: ``data_dir``, ``$SEQGEN_DATA_DIR`` or the OS cache."""
    from .validation import not_a_url

    advice = "; mirrors to download from go in $SEQGEN_MNIST_URLS (or urls= in Python)"
    for name, value in (("data_dir", data_dir), ("SEQGEN_DATA_DIR", os.environ.get("SEQGEN_DATA_DIR") or None)):
        if value is None:
            continue
        not_a_url(value, name, "a local folder", advice)
        folder = Path(value)
        if folder.exists() and not folder.is_dir():  # else every download would fail as if the network had
            raise NotADirectoryError(f"{name}: {str(folder)!r} is a file, expected a folder")
        return folder
    import pooch

    return Path(pooch.os_cache("seqgen"))


def mirror_urls(urls=None, dataset: str = "mnist") -> tuple[str, ...]:
    """The base URLs to try, in order: ``urls``, the data set's environment variable
    (``$SEQGEN_MNIST_URLS`` for MNIST) or its mirrors."""
    from .validation import choice

    entry = DATASETS[choice(dataset, "dataset", tuple(DATASETS))]
    name = "urls"
    if urls is None:
        listed = os.environ.get(entry.urls_env, "").replace(",", " ").split()
        name, urls = (entry.urls_env, listed) if listed else (name, entry.mirrors)
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, Iterable):
        raise TypeError(f"{name}: expected a base URL or a sequence of them, got {type(urls).__name__}")
    urls = tuple(urls)
    for url in urls:  # the downloader speaks HTTP only; anything else failed on every file as a network error
        if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"{name}: expected http:// or https:// base URLs, got {url!r}")
    if not urls:
        raise ValueError(f"{name}: expected at least one base URL")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def offline() -> bool:
    """True when ``$SEQGEN_OFFLINE`` asks the loaders never to try the network (1, true, yes or on, any case).

    An explicit :func:`download_mnist` (``seqgen download``) still downloads: asking for it is asking for the network.
    """
    return os.environ.get("SEQGEN_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def is_cached(data_dir: str | os.PathLike | None = None, dataset: str = "mnist") -> bool:
    """True when every file of ``dataset`` (full MNIST) is in the cache folder with its published checksum."""
    folder = cache_dir(data_dir)
    registry = DATASETS[dataset].registry
    return all((folder / name).is_file() for name in registry) and not corrupt_files(folder, dataset)


def corrupt_files(data_dir: str | os.PathLike | None = None, dataset: str = "mnist") -> list[str]:
    """The files of ``dataset`` in the cache folder whose checksum is wrong (missing ones are not listed)."""
    import pooch

    folder = cache_dir(data_dir)
    bad = []
    for name, known in DATASETS[dataset].registry.items():
        if (folder / name).is_file():
            algorithm, _, digest = known.partition(":")
            if pooch.file_hash(str(folder / name), alg=algorithm) != digest:
                bad.append(name)
    return bad


# --------------------------------------------------------------------------- download


def download_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    urls=None,
    progress: bool = True,
    retries: int = 2,
    timeout: float = 30.0,
    registry: dict[str, str] | None = None,
    dataset: str = "mnist",
) -> dict[str, Path]:
    """Fetch and verify the files of ``dataset`` (full MNIST), trying each mirror in order.

    A file already in the cache with the right checksum is not downloaded
    again; a corrupt or truncated one is fetched anew.  Downloads go to a
    temporary file beside the target and are renamed into place only after
    their checksum matched, so an interrupted download, a bad mirror or two
    processes downloading at once never leave a wrong file behind.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Cache folder (default: ``$SEQGEN_DATA_DIR`` or ``pooch.os_cache("seqgen")``).
    urls : str or sequence of str, optional
        Base URLs to try in order (default: ``$SEQGEN_MNIST_URLS`` or :data:`MNIST_MIRRORS`).
    progress : bool
        Show a tqdm progress bar per file.
    retries : int
        Extra attempts per mirror and file before moving to the next mirror.
    timeout : float
        Seconds to wait for a server before giving up on it.
    registry : dict, optional
        File name -> pooch hash; default: the data set's own.
    dataset : str
        Which entry of :data:`DATASETS`.

    Returns
    -------
    dict
        File name -> path in the cache.

    Raises
    ------
    MnistUnavailableError
        When some file could not be fetched from any mirror (the message lists
        what each mirror answered); :class:`CacheFolderError`, a subclass, when the
        cache folder cannot take it (full, read-only: no other mirror is tried).
    """
    import pooch
    import requests

    from .validation import flag, nonnegative_int

    retries = nonnegative_int(retries, "retries")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout}")
    flag(progress, "progress")
    bases = mirror_urls(urls, dataset)  # checks dataset too
    registry = dict(DATASETS[dataset].registry if registry is None else registry)
    folder = cache_dir(data_dir)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    paths: dict[str, Path] = {}
    logger = pooch.get_logger()  # its per-file log lines would repeat what the progress bar shows
    level = logger.level
    logger.setLevel("WARNING")
    # One pooch object per mirror; each file is taken from the first mirror that serves it intact.
    # Without an explicit folder, pooch itself reads $SEQGEN_DATA_DIR (env=); an explicit one wins.
    env = "SEQGEN_DATA_DIR" if data_dir is None else None
    stores = [pooch.create(path=folder, base_url=base, registry=registry, retry_if_failed=retries, env=env)
              for base in bases]
    try:
        for fname in registry:
            failures = []
            for base, store in zip(bases, stores):
                try:
                    paths[fname] = Path(store.fetch(fname, downloader=downloader))
                    break
                except (requests.exceptions.RequestException, ValueError, OSError) as exc:
                    if (local := _cannot_save(exc)) is not None:
                        raise CacheFolderError(_cannot_save_message(fname, folder, local, data_dir)) from None
                    failures.append(f"{base}: {_describe_failure(exc)}")
            else:
                raise MnistUnavailableError(
                    f"could not download {fname} from any of {len(bases)} mirror(s): " + "; ".join(failures)
                    + "; check the network, or name other mirrors in SEQGEN_MNIST_URLS"
                )
            _as_new_files_are(paths[fname])
    finally:
        logger.setLevel(level)
    return paths


def _cannot_save_message(fname: str, folder: Path, error: OSError, data_dir) -> str:
    """Why ``fname`` cannot be cached, naming what chose the folder and how to choose another."""
    free = "free space there or " if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    if data_dir is not None:
        head, folder_is, how = "data_dir: ", "the cache folder", "with data_dir= or SEQGEN_DATA_DIR"
    else:  # exports, generators and most commands take no data_dir: the environment chose the folder
        head, folder_is = (("SEQGEN_DATA_DIR: ", "the cache folder") if os.environ.get("SEQGEN_DATA_DIR")
                           else ("", "the OS's cache folder"))
        how = "with SEQGEN_DATA_DIR"
    return (f"{head}cannot save {fname} in {folder_is} {folder} ({error.strerror}); "
            f"{free}choose another folder {how}")


def _cannot_save(exc: Exception) -> OSError | None:
    """The local error behind a failed fetch when the cache folder cannot take the file, else None."""
    import requests

    for error in (exc, exc.__cause__):  # pooch re-raises a folder's PermissionError without its errno
        if isinstance(error, OSError) and not isinstance(error, requests.exceptions.RequestException) \
                and error.errno in _CANNOT_SAVE:
            return error
    return None


def _as_new_files_are(path: Path) -> None:
    """Give a downloaded file the permissions the user's umask gives new files.

    pooch saves downloads through a private temporary file (mode 0600), which
    would leave a cache folder shared between users unreadable to the others.
    A file another user cached is left as it is.
    """
    if path.stat().st_mode & 0o777 == 0o600:
        with contextlib.suppress(PermissionError):
            os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (other threads may be creating files)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)  # elsewhere reading the mask means setting it: set it straight back
    os.umask(mask)
    return mask


def _describe_failure(exc: Exception) -> str:
    """A short, one-line account of why one mirror failed."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed"
    return " ".join(str(exc).split())
