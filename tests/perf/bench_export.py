"""Export speed and memory (a script, not a test): ``python tests/perf/bench_export.py``.

Workload (issue 17): phone numbers at width 200, spacing (2, 10), from the
offline sample, 100,000 by default.  For each format, images/s on the project's
disk and on a RAM disk (``/dev/shm``), each a fresh export; then the Dask
``LocalCluster`` of ``export(workers=N)`` with one and with two worker processes,
and the peak memory (``VmHWM``) of each worker.  One line per figure, ``name: value``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time

FORMATS = ("png", "lmdb", "webdataset", "parquet")


def timed_export(folder: str, n: int, fmt: str, digits, **kwargs) -> float:
    from seqgen.export import export

    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    result = export(folder, n, 200, (2, 10), format=fmt, source=digits, seed=0, **kwargs)
    seconds = time.perf_counter() - start
    assert result["written"] == n
    shutil.rmtree(folder, ignore_errors=True)
    return n / seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_peak_mb() -> float:
    """The peak resident memory of this process's own pages (``VmHWM``).

    Not ``ru_maxrss``: a spawned worker inherits that from its parent (fork, then
    exec), so it would report the benchmark's own peak.
    """
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=100_000)
    parser.add_argument("--disk", default=os.path.join(os.path.dirname(__file__), "..", "..", ".bench-export"),
                        help="a folder on the project's disk (default: .bench-export in the repository)")
    parser.add_argument("--ram", default="/dev/shm", help="a folder on a RAM disk")
    parser.add_argument("--formats", nargs="+", default=FORMATS)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()

    from seqgen import load_mnist
    from seqgen.parallel import available_cores

    digits = load_mnist("train", source="sample")
    n = args.num_images
    print(f"images: {n}  cores: {available_cores()}")
    for where, base in (("disk", args.disk), ("ram", args.ram)):
        os.makedirs(base, exist_ok=True)
        for fmt in args.formats:
            folder = tempfile.mkdtemp(prefix=f"seqgen-{fmt}-", dir=base)
            print(f"{fmt} on {where}: {timed_export(folder, n, fmt, digits):,.0f} images/s", flush=True)
    print(f"peak memory of this process (in-process runs): {peak_rss_mb():.0f} MB")
    if args.skip_dask:
        return
    from dask.distributed import Client

    from seqgen.export import local_cluster

    for workers in (1, 2):  # the cluster export(workers=N) makes, started here to read its workers' memory
        with local_cluster(workers) as cluster, Client(cluster) as client:
            folder = tempfile.mkdtemp(prefix="seqgen-dask-", dir=args.disk)
            rate = timed_export(folder, n, "webdataset", digits, scheduler=cluster.scheduler_address)
            peaks = client.run(worker_peak_mb)
            print(f"webdataset on disk, Dask {workers} worker(s): {rate:,.0f} images/s; worker peak memory "
                  f"{max(peaks.values()):.0f} MB", flush=True)
    shutil.rmtree(args.disk, ignore_errors=True)


if __name__ == "__main__":
    main()
