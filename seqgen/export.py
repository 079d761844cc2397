"""Exports: datasets of generated images as PNG folders, LMDB, WebDataset tar shards or Parquet.

The work is split into shards of consecutive images.  Each shard is rendered
from its own seed, so it can be rendered alone, by any process or machine,
with the same bytes; it is published atomically and recorded in the export's
manifest (``manifest.json``), which lists the complete shards with their
counts and checksums.  Running the same export again into the same place
resumes it: complete shards are verified and kept, the rest are written.  A
different export into the same place is refused; nothing is overwritten.

Shards run in this process, on local worker processes (a Dask
``LocalCluster``) or on an existing Dask cluster (``scheduler=``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator

from . import validation as check
from .compose import Options
from .formats import FORMATS, join, protocols, read_bytes, shown, split_url, write_own
from .generate import CHUNK_SIZE
from .parallel import check_local_processes, default_threads, ordered_map
from .shards import ExportPlan, Shard

MANIFEST_VERSION = 1


class ExportError(RuntimeError):
    """An export stopped before every shard was written; the message says how to resume."""


class Manifest:
    """The record of an export's complete shards, rewritten atomically as shards complete."""

    def __init__(self, fs, root: str, name: str, head: dict):
        self.fs, self.path, self.head = fs, join(fs, root, name), head
        self.labels_name = name.replace("manifest", "labels").replace(".json", ".csv")
        self.records: dict[int, dict] = {}
        self._saved = 0.0

    def load(self) -> dict | None:
        data = read_bytes(self.fs, self.path)
        return None if data is None else json.loads(data)

    def add(self, record: dict, every: float = 1.0) -> None:
        """Record a complete shard; the file is rewritten at most every ``every`` seconds (and by :meth:`save`)."""
        self.records[record["index"]] = {k: v for k, v in record.items() if k != "written"}
        if time.monotonic() - self._saved >= every:
            self.save()

    def save(self, complete: bool = False) -> None:
        body = dict(self.head, complete=complete, images=sum(r["count"] for r in self.records.values()),
                    shards=[self.records[k] for k in sorted(self.records)])
        write_own(self.fs, self.path, json.dumps(body, indent=1).encode())
        self._saved = time.monotonic()


def _check_format(fmt: str, output: str):
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    spec = FORMATS[fmt]
    if spec.needs and importlib.util.find_spec(spec.needs) is None:
        raise ValueError(f"format: {fmt!r} needs the {spec.needs} package: pip install {spec.needs}")
    if not isinstance(output, (str, os.PathLike)) or not str(output).strip():
        raise ValueError(f"output: expected a folder or URL, got {output!r}")
    try:
        fs, root = split_url(os.fspath(output))
    except ValueError:  # a URL fsspec cannot open (s3fs missing, say) is refused for what matters more here
        if spec.local_only:
            raise ValueError(f"output: format {fmt!r} writes a local folder, got {output!r}") from None
        raise
    if spec.local_only and fs is not None:
        raise ValueError(f"output: format {fmt!r} writes a local folder, got {output!r}")
    if fs is None:
        parent = root
        while not os.path.exists(parent):  # the nearest existing folder must be a folder
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise NotADirectoryError(f"output: {parent} is a file, expected a folder")
    return spec, fs, root


def _check_part(part) -> tuple[int, int]:
    try:
        k, m = (check.positive_int(v, "part") for v in part)
    except (TypeError, ValueError):
        raise ValueError(f"part: expected (K, M) ints with 1 <= K <= M, got {part!r}") from None
    if k > m:
        raise ValueError(f"part: expected (K, M) ints with 1 <= K <= M, got {part!r}")
    return k, m


def _check_runner(fs, output, workers, scheduler) -> tuple[int, tuple[int, str] | None]:
    """``workers`` checked; Dask installed and the scheduler reachable when shards run elsewhere.

    Also returns the smallest memory limit among the scheduler's workers, in bytes, and which
    worker's it is (None without a scheduler, or when no worker has a limit).
    """
    workers = check.positive_int(workers, "workers")
    if workers == 1 and scheduler is None:
        return workers, None
    if scheduler is None:
        check_local_processes(workers)
    if importlib.util.find_spec("distributed") is None:
        raise ValueError("workers, scheduler: shards on other processes need Dask: pip install 'dask[distributed]'")
    if fs is not None and "memory" in protocols(fs):
        raise ValueError(f"output: {output!r} lives in this process's memory, which other processes cannot "
                         "write to; use workers=1 or a shared file system")
    if scheduler is not None:
        from dask.distributed import Client

        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise ValueError(f"scheduler: cannot reach {scheduler!r} ({type(exc).__name__}: {exc})") from None
        with client:
            limits = [(info.get("memory_limit") or 0, address)
                      for address, info in client.scheduler_info()["workers"].items()]
        limits = [limit for limit in limits if limit[0] > 0]
        if limits:
            smallest, address = min(limits)
            return workers, (smallest, f"memory limit of Dask worker {address}")
    return workers, None


def _open_destination(fs, root: str, manifest: Manifest, fingerprint: dict) -> dict:
    """Make the folder; refuse one that holds a different export; return the earlier records of this one."""
    from .io import prepare_output_dir

    if fs is None:
        prepare_output_dir(root)
        others = [n for n in os.listdir(root) if n.startswith("manifest") and n.endswith(".json")]
    else:
        fs.makedirs(root, exist_ok=True)
        others = [os.path.basename(p) for p in fs.glob(join(fs, root, "manifest*.json"))]
    for name in others:
        earlier = json.loads(read_bytes(fs, join(fs, root, name)) or b"{}")
        theirs = earlier.get("fingerprint", {})
        if theirs != fingerprint:
            differ = sorted(k for k in set(theirs) | set(fingerprint) if theirs.get(k) != fingerprint.get(k))
            hint = " (without a seed, every export is a new one: pass a seed to resume)" \
                if "entropy" in differ and fingerprint["seed"] is None else ""
            if "output_version" in differ:
                hint = " (it was written by a version of seqgen that draws or encodes other bytes)"
            shown_differ = [k for k in differ if k != "entropy" or "seed" not in differ]  # a seed decides entropy
            raise ValueError(f"output: {shown(fs, root)} holds a different export ({name} differs in "
                             f"{', '.join(shown_differ) or 'format'}){hint}; choose another folder")
    earlier = manifest.load()
    return {r["index"]: r for r in earlier["shards"]} if earlier else {}


def export(output, num_images: int, image_width: int, spacing_range=(2, 10), *, format: str = "png",
           length="phone", fit: str = "shrink", align: str = "center", source=None, augment=None, seed=None,
           shard_size: int = CHUNK_SIZE, png_level: int | None = None, workers: int = 1,
           scheduler: str | None = None, part: tuple[int, int] | None = None, progress: bool = False) -> dict:
    """Write a dataset of generated images, shard by shard, resuming an interrupted run.

    Parameters
    ----------
    output : str or path-like
        A folder, or for ``webdataset``/``parquet`` any fsspec URL (``s3://bucket/set``).
    num_images, image_width, spacing_range, fit, align, source, augment, seed
        As for :func:`seqgen.generate_phone_numbers`.
    format : {"png", "lmdb", "webdataset", "parquet"}
        ``png``: ``<label>.png`` files and ``labels.csv``; ``lmdb``: one database with
        ``image-%09d``/``label-%09d`` (1-based) and ``num-samples``; ``webdataset``:
        ``shard-%06d.tar`` of ``<key>.png/.txt/.json``; ``parquet``: ``shard-%06d.parquet``
        with ``image`` (Hugging Face ``datasets.Image`` layout), ``label``, ``boxes``.
    length : "phone", int or (int, int)
        ``"phone"``: distinct phone numbers, the same images as
        :func:`~seqgen.generate_phone_numbers`; otherwise random digit strings of that
        length, as :class:`~seqgen.DataGenerator` draws them: full shard ``k`` holds
        ``DataGenerator(batch_size=shard_size, length=length, seed=seed, ...)[(0, k)]``.
    shard_size : int
        Images per shard: the unit of work, of publication and of resumption.
    png_level : {None, 0, 1}
        zlib level of the PNG bytes: 0 stored, 1 compressed. None (default): 1, except for
        ``parquet``, whose pages are compressed with zstd, so that its PNGs are stored (0).
    workers : int
        Local worker processes (a Dask ``LocalCluster``); 1 runs here.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to run the shards on.
    part : (K, M), optional
        Write only the K-th of M disjoint runs of shards (job arrays); its manifest is
        ``manifest-K-of-M.json``.
    progress : bool
        A progress bar over shards (and over the download of full MNIST, when ``source``
        asks for it and it is not cached yet).

    Returns
    -------
    dict
        ``output``, ``manifest`` (path), ``images`` (in the complete shards), ``written``
        (images written now, the rest were kept from an earlier run), ``shards``.

    Raises
    ------
    ValueError
        A bad argument, or a shard the arguments cannot make (``fit="error"`` and a
        strip wider than ``image_width``); the complete shards are recorded.
    ExportError
        A shard failed or the run was interrupted; the complete shards are recorded
        and the same call resumes.
    """
    options = Options.check(image_width, spacing_range, fit, align)
    writing = _check_writing(output, format, png_level, workers, scheduler, part, progress)  # before any work
    plan = ExportPlan(num_images, options, length=length, source=source, augment=augment, seed=seed,
                      shard_size=shard_size, progress=progress)
    return _write(plan, *writing)


def check_destination(plan: ExportPlan, output, format: str = "png", png_level: int | None = None) -> None:
    """Refuse ``output`` now if it holds a different export than ``plan`` (it is created if missing)."""
    spec, fs, root = _check_format(format, output)
    png_level = _check_png_level(png_level, spec)
    _open_destination(fs, root, Manifest(fs, root, "manifest.json", {}), plan.fingerprint(format, png_level))


def write_export(plan: ExportPlan, output, *, format: str = "png", png_level: int | None = None, workers: int = 1,
                 scheduler: str | None = None, part: tuple[int, int] | None = None, progress: bool = False) -> dict:
    """Write (or resume) the export ``plan`` describes; see :func:`export`."""
    return _write(plan, *_check_writing(output, format, png_level, workers, scheduler, part, progress))


def _check_writing(output, format, png_level, workers, scheduler, part, progress) -> tuple:
    """The arguments of :func:`write_export` after ``plan``, checked, as :func:`_write` takes them."""
    spec, fs, root = _check_format(format, output)
    png_level = _check_png_level(png_level, spec)
    check.flag(progress, "progress")
    workers, worker_memory = _check_runner(fs, output, workers, scheduler)
    part = None if part is None else _check_part(part)
    return spec, fs, root, output, png_level, workers, scheduler, part, progress, worker_memory


def _check_png_level(png_level, spec) -> int:
    """``png_level`` checked, or the format's own when it is None."""
    if png_level is None:
        return spec.png_level
    if isinstance(png_level, bool) or png_level not in (0, 1):
        raise ValueError(f"png_level: expected None, 0 or 1, got {png_level!r}")
    return int(png_level)


def _write(plan: ExportPlan, spec, fs, root: str, output, png_level: int, workers: int, scheduler, part,
           progress: bool, worker_memory: tuple[int, str] | None = None) -> dict:
    """:func:`write_export` once its arguments are checked."""
    indices = range(plan.n_shards)
    if part is not None:
        k, m = part
        indices = part_shards(plan.n_shards, k, m)
    if scheduler is None and workers > 1:  # the local workers share this machine's memory
        check.fits_in_memory(plan.largest_shard, plan.options.image_width, "shard_size, workers",
                             "use smaller shards or fewer workers", at_once=workers, unit="shards")
    elif worker_memory is not None:  # a remote worker renders whole shards within its own limit
        check.fits_in_memory(plan.largest_shard, plan.options.image_width, "shard_size",
                             "use smaller shards or workers with more memory", limit=worker_memory)
    fingerprint = plan.fingerprint(spec.name, png_level)
    name = "manifest.json" if part is None else f"manifest-{part[0]}-of-{part[1]}.json"
    manifest = Manifest(fs, root, name, {"seqgen_export": MANIFEST_VERSION, "fingerprint": fingerprint,
                                         "n_shards": plan.n_shards, "part": list(part) if part else None,
                                         "shards_in_part": len(indices)})
    earlier = _open_destination(fs, root, manifest, fingerprint)
    store = spec.open_store(fs, root)
    try:
        todo = []
        for index in indices:
            record = earlier.get(index)
            if record is not None and spec.verify(fs, root, plan.shard(index), record, store):
                manifest.records[index] = record
            else:
                if record is not None:
                    warnings.warn(f"shard {index} of {shown(fs, root)} changed since it was written; writing it again")
                    spec.discard(fs, root, plan.shard(index), record)
                todo.append(index)
        written = _run_shards(plan, spec, fs, root, os.fspath(output), todo, manifest, store, png_level,
                              workers, scheduler, progress)
        manifest.save(complete=True)
        spec.finish(fs, root, plan, manifest, store)
    finally:
        if store is not None:
            store.close()
    return {"output": root if fs is None else os.fspath(output), "manifest": shown(fs, manifest.path), "images": sum(r["count"] for r in manifest.records.values()),
            "written": written, "shards": len(manifest.records)}


def part_shards(n_shards: int, k: int, m: int) -> range:
    """The shards of part ``k`` of ``m`` (1-based): consecutive runs, the first ``n_shards % m`` parts
    one longer (as ``numpy.array_split`` cuts them, without making all ``m`` parts)."""
    size, longer = divmod(n_shards, m)
    start = (k - 1) * size + min(k - 1, longer)
    return range(start, start + size + (k <= longer))


def shards_in_memory(plan: ExportPlan) -> int:
    """How many of ``plan``'s shards fit in this machine's memory at once (at least 1)."""
    total = check.physical_memory()
    shard = check.image_bytes(plan.largest_shard, plan.options.image_width)
    return default_threads() if total is None else max(1, total // shard)


def _render_and_write(fmt: str, output: str, shard: Shard, digits, options, augment, png_level: int) -> dict:
    """One shard, in whichever process runs it: render, encode, publish; its record."""
    fs, root = split_url(output)
    return FORMATS[fmt].write(fs, root, shard, shard.render(digits, options, augment), png_level)


def _on_worker(*args) -> dict:
    """:func:`_render_and_write` in a worker process, with one BLAS thread (the workers share the cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _render_and_write(*args)


def _results(plan, fmt, output, todo, png_level, workers, scheduler) -> Iterator[dict]:
    """Records of the shards in ``todo`` as they complete: here, on local processes or on a cluster."""
    if workers == 1 and scheduler is None:  # threads here: numpy, OpenCV and file writes release the GIL
        fs, root = split_url(output)

        def one(index: int) -> dict:
            shard = plan.shard(index)
            return FORMATS[fmt].write(fs, root, shard, plan.render(shard), png_level)

        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            yield from ordered_map(one, todo, min(default_threads(), max(1, len(todo)), shards_in_memory(plan)))
        return
    from collections import deque

    from dask.distributed import Client

    cluster = local_cluster(workers) if scheduler is None else None
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            n_workers = max(1, len(client.scheduler_info()["workers"]))
            digits = client.scatter(plan.digits, broadcast=True)
            in_flight: deque = deque()
            for index in todo:
                in_flight.append(client.submit(_on_worker, fmt, output, plan.shard(index), digits, plan.options,
                                               plan.augment, png_level, pure=False))
                if len(in_flight) >= 2 * n_workers:  # bounded: memory does not grow with the export
                    yield in_flight.popleft().result()  # in order, so an LMDB is laid out the same way every time
            while in_flight:
                yield in_flight.popleft().result()
    finally:  # also when a shard failed: no worker process outlives the export
        if cluster is not None:
            cluster.close()


def local_cluster(workers: int):
    """The Dask ``LocalCluster`` that ``export(..., workers=N)`` runs its shards on.

    ``workers`` processes of one thread each, with quiet logs (a failed shard is
    reported once, by the export).  Dask's nanny gives its workers
    ``MALLOC_TRIM_THRESHOLD_=65536``; here it does not: a fixed trim threshold
    turns off glibc's adaptive mmap threshold, so each shard's arrays are mapped
    and unmapped again, and exports ran 1.2-1.5x slower (reports/README.md).
    """
    import dask
    from dask.distributed import LocalCluster

    workers = check_local_processes(check.positive_int(workers, "workers"))
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            silence_logs=logging.CRITICAL)


def _run_shards(plan, spec, fs, root, output, todo, manifest, store, png_level, workers, scheduler,
                progress) -> int:
    from tqdm.auto import tqdm

    written = 0
    bar = tqdm(total=len(todo), unit="shard", disable=not progress, delay=1.0)
    try:
        for record in _results(plan, spec.name, output, todo, png_level, workers, scheduler):
            record = spec.commit(store, record)
            written += record["written"]
            manifest.add(record)
            bar.update(1)
    except ValueError as exc:  # the request cannot be met (fit='error'): running it again fails again
        done, recorded = _record_stop(plan, spec, fs, root, manifest, store)
        raise ValueError(f"{exc} (the export stopped with {done:,} of {plan.num_images:,} images, {recorded}; "
                         "it cannot resume with the same arguments)") from exc
    except BaseException as exc:
        done, recorded = _record_stop(plan, spec, fs, root, manifest, store)
        stopped = (f"export stopped with {done:,} of {plan.num_images:,} images in {len(manifest.records)} complete "
                   f"shards, {recorded}")
        if isinstance(exc, FileExistsError):  # a file that is not this export's: running it again alone fails again
            raise ExportError(f"{stopped}: {exc}; move that file away, then run the same command again to "
                              "resume") from exc
        message = f"{stopped}; run the same command again to resume"
        if isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt(message) from None
        raise ExportError(f"{message} ({_described(exc)})") from exc
    finally:
        bar.close()
    return written


def _record_stop(plan, spec, fs, root, manifest, store) -> tuple[int, str]:
    """Record the complete shards of a stopped export: the number of images they hold, and where they
    are recorded, or why they could not be (a full disk stops the shards and their record alike)."""
    done = sum(r["count"] for r in manifest.records.values())
    try:
        manifest.save()
        spec.finish(fs, root, plan, manifest, store)
    except Exception as exc:  # noqa: BLE001 - the error that stopped the export is the one to raise
        return done, (f"which could not all be recorded in {shown(manifest.fs, manifest.path)} ({_described(exc)}); "
                      "a resumed export renders them again")
    return done, f"recorded in {shown(manifest.fs, manifest.path)}"


def _described(exc: BaseException) -> str:
    """``"OSError: ..."``, or with the package of a library's own error: ``"lmdb.Error: ..."``, not ``"Error: ..."``."""
    kind = type(exc)
    return f"{kind.__name__ if kind.__module__ == 'builtins' else kind.__module__ + '.' + kind.__name__}: {exc}"
