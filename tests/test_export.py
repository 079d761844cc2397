"""Exports: every format read back by its real client, shards that resume, Dask, fsspec, refusals."""

from __future__ import annotations

import glob
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import lmdb
import numpy as np
import pytest
from PIL import Image

from seqgen import DataGenerator, generate_phone_numbers
from seqgen.compose import Options
from seqgen.export import ExportError, export, write_export
from seqgen.formats import FORMATS
from seqgen.generate import PhoneJob
from seqgen.shards import ExportPlan

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # read before `datasets` is imported: local files only
N, WIDTH = 250, 120
COMMON = {"shard_size": 100, "seed": 4}


@pytest.fixture(scope="module")
def reference(train_digits):
    """The in-memory arrays the exports must hold: the phone numbers rendered in chunks of 100."""
    job = PhoneJob.plan(N, Options.check(WIDTH, (2, 10), "shrink", "center"), source=train_digits, seed=4,
                        chunk_size=100)
    batches = [job.render(chunk) for chunk in range(job.n_chunks)]
    images = np.concatenate([b.images for b in batches])
    return np.rint(images * 255).astype(np.uint8), job.labels, np.concatenate([b.boxes for b in batches])


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image)


def tree(folder) -> dict[str, bytes]:
    """Every file under ``folder`` by relative name (LMDB files by their content instead)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "**"), recursive=True)):
        if os.path.isfile(path) and not path.endswith(".mdb"):
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder)] = handle.read()
    if os.path.exists(os.path.join(folder, "data.mdb")):
        with lmdb.open(str(folder), readonly=True, lock=False) as env, env.begin() as txn:
            out["data.mdb"] = b"".join(k + b"\0" + v for k, v in txn.cursor())
    return out


def test_png_export_is_generate_phone_numbers_output(train_digits, tmp_path):
    images, labels = generate_phone_numbers(N, WIDTH, (2, 10), source=train_digits, seed=4)
    images = np.rint(images * 255).astype(np.uint8)
    result = export(tmp_path, N, WIDTH, source=train_digits, seed=4)  # shards of 1000, as generate's chunks
    assert result["images"] == result["written"] == N and result["shards"] == 1
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    assert rows == ["file,label"] + [f"{label}.png,{label}" for label in labels]
    for image, label in zip(images, labels):
        assert np.array_equal(decode((tmp_path / f"{label}.png").read_bytes()), image)


def test_lmdb_in_the_ocr_key_convention(train_digits, reference, tmp_path):
    images, labels, boxes = reference
    export(tmp_path, N, WIDTH, source=train_digits, format="lmdb", **COMMON)
    with lmdb.open(str(tmp_path), readonly=True, lock=False) as env, env.begin() as txn:
        assert txn.get(b"num-samples") == str(N).encode()
        for i in range(N):  # keys are 1-based
            assert txn.get(b"label-%09d" % (i + 1)).decode() == labels[i]
            assert np.array_equal(decode(txn.get(b"image-%09d" % (i + 1))), images[i])
            assert json.loads(txn.get(b"boxes-%09d" % (i + 1))) == boxes[i].tolist()
        assert txn.get(b"image-%09d" % 0) is None and txn.get(b"image-%09d" % (N + 1)) is None


def test_webdataset_shards_read_by_webdataset_in_a_dataloader(train_digits, reference, tmp_path):
    import torch
    import webdataset as wds

    images, labels, boxes = reference
    export(tmp_path, N, WIDTH, source=train_digits, format="webdataset", **COMMON)
    shards = sorted(glob.glob(str(tmp_path / "shard-*.tar")))
    assert [os.path.basename(s) for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    dataset = wds.WebDataset(shards, shardshuffle=False).decode("pill").to_tuple("__key__", "png", "txt", "json")
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    seen = set()
    for key, image, text, meta in loader:
        i = int(key)
        seen.add(i)
        assert text == labels[i] == meta["label"] and meta["boxes"] == boxes[i].tolist()
        assert np.array_equal(np.asarray(image), images[i])
    assert seen == set(range(N))


def test_parquet_read_by_hugging_face_datasets(train_digits, reference, tmp_path):
    import datasets

    images, labels, boxes = reference
    export(tmp_path / "set", N, WIDTH, source=train_digits, format="parquet", **COMMON)
    files = sorted(glob.glob(str(tmp_path / "set" / "shard-*.parquet")))
    data = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(data.features["image"], datasets.Image) and len(data) == N
    for i in (0, 99, 100, N - 1):
        row = data[i]
        assert row["label"] == labels[i] and row["boxes"] == boxes[i].tolist()
        assert np.array_equal(np.asarray(row["image"]), images[i])  # decoded by datasets itself


def test_parquet_stores_its_pngs_in_zstd_pages(train_digits, reference, tmp_path):
    """Stored PNGs in zstd pages are about the size of deflated ones, for a fraction of the work."""
    import pyarrow.parquet as pq

    images = reference[0]
    export(tmp_path / "default", N, WIDTH, source=train_digits, format="parquet", **COMMON)
    export(tmp_path / "deflated", N, WIDTH, source=train_digits, format="parquet", png_level=1, **COMMON)
    files, pngs = {}, {}
    for name, level, compression in (("default", 0, "ZSTD"), ("deflated", 1, "UNCOMPRESSED")):
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert manifest["fingerprint"]["png_level"] == level
        paths = sorted((tmp_path / name).glob("shard-*.parquet"))
        assert {pq.ParquetFile(p).metadata.row_group(0).column(0).compression for p in paths} == {compression}
        column = pq.read_table(paths).column("image").combine_chunks().field("bytes").to_pylist()
        assert all(np.array_equal(decode(png), images[i]) for i, png in enumerate(column))
        files[name], pngs[name] = sum(p.stat().st_size for p in paths), sum(map(len, column))
    assert pngs["default"] > 2 * pngs["deflated"]  # stored, not deflated
    assert files["default"] < 1.05 * files["deflated"], files


def test_containers_hold_the_png_exports_bytes(train_digits, tmp_path):
    export(tmp_path / "png", N, WIDTH, source=train_digits, **COMMON)
    export(tmp_path / "tar", N, WIDTH, source=train_digits, format="webdataset", **COMMON)
    import tarfile

    with tarfile.open(tmp_path / "tar" / "shard-000001.tar") as tar:
        member = tar.getmembers()[0]
        label = tar.extractfile(tar.getmember(member.name.replace(".png", ".txt"))).read().decode()
        assert tar.extractfile(member).read() == (tmp_path / "png" / f"{label}.png").read_bytes()


def test_random_length_shards_are_data_generator_batches(train_digits, tmp_path):
    export(tmp_path, 250, 160, (-2, 6), format="webdataset", length=(1, 12), source=train_digits, augment="light",
           shard_size=100, seed=7)
    gen = DataGenerator(batch_size=100, image_width=160, spacing_range=(-2, 6), length=(1, 12), augment="light",
                        source=train_digits, seed=7)
    import tarfile

    with tarfile.open(tmp_path / "shard-000001.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    x, y = gen[(0, 1)]
    assert {len(label) for label in y} > {5}  # lengths vary
    for i in (0, 57, 99):
        key = f"{100 + i:09d}"
        assert members[f"{key}.txt"].decode() == y[i]
        assert np.array_equal(decode(members[f"{key}.png"]), np.rint(x[i] * 255).astype(np.uint8))
        assert len(json.loads(members[f"{key}.json"])["boxes"]) == len(y[i])


@pytest.mark.parametrize("fmt", ["png", "lmdb", "webdataset", "parquet"])
def test_a_failed_export_resumes_to_the_uninterrupted_bytes(fmt, train_digits, tmp_path, monkeypatch):
    export(tmp_path / "whole", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    spec = FORMATS[fmt]
    write = type(spec).write

    def fail_on_shard_2(self, fs, root, shard, batch, level):
        if shard.index == 2:
            raise OSError(28, "No space left on device")
        return write(self, fs, root, shard, batch, level)

    monkeypatch.setattr(type(spec), "write", fail_on_shard_2)
    with pytest.raises(ExportError, match=r"export stopped with 200 of 250 images in 2 complete shards, recorded in "
                                          r".*manifest.json; run the same command again to resume \(OSError: "):
        export(tmp_path / "cut", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert not manifest["complete"] and [s["index"] for s in manifest["shards"]] == [0, 1]
    if fmt == "png":  # the manifest describes what is on disk
        assert len((tmp_path / "cut" / "labels.csv").read_text().splitlines()) == 201
    monkeypatch.undo()
    result = export(tmp_path / "cut", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    assert result["written"] == 50 and result["images"] == N
    assert tree(tmp_path / "cut") == tree(tmp_path / "whole")


def test_a_libraries_own_error_is_named_with_its_package(train_digits, tmp_path, monkeypatch):
    import lmdb

    def fail(self, store, record):  # what LMDB raises on a disk error: it printed as "(Error: ...)"
        raise lmdb.Error("mdb_txn_commit: Input/output error")

    monkeypatch.setattr(type(FORMATS["lmdb"]), "commit", fail)
    with pytest.raises(ExportError, match=r"run the same command again to resume \(lmdb\.Error: mdb_txn_commit: "
                                          r"Input/output error\)$"):
        export(tmp_path / "out", N, WIDTH, source=train_digits, format="lmdb", **COMMON)


def test_an_export_that_cannot_be_met_stops_its_workers_and_does_not_say_resume(train_digits, tmp_path):
    import psutil

    for workers in (1, 2):  # here and on local Dask workers, which must not outlive the failure
        with pytest.raises(ValueError, match=r"^image_width: a composed strip is \d+ px wide, more than image_width=20;"
                                             r" .* \(the export stopped with 0 of 250 images, recorded in "
                                             r".*manifest.json; it cannot resume with the same arguments\)$"):
            export(tmp_path, N, 20, source=train_digits, format="webdataset", fit="error", workers=workers, **COMMON)
        assert not [p for p in psutil.Process().children(recursive=True)
                    if "resource_tracker" not in " ".join(p.cmdline())]


def test_an_export_that_fails_the_same_way_again_does_not_say_resume(train_digits, tmp_path, monkeypatch):
    spec = FORMATS["parquet"]
    write = type(spec).write

    def too_wide_on_shard_2(self, fs, root, shard, batch, level):
        if shard.index == 2:
            raise ValueError("image_width: a composed strip is 300 px wide, more than image_width=120")
        return write(self, fs, root, shard, batch, level)

    monkeypatch.setattr(type(spec), "write", too_wide_on_shard_2)
    with pytest.raises(ValueError, match=r"more than image_width=120 \(the export stopped with 200 of 250 images, "
                                         r"recorded in .*manifest.json; it cannot resume with the same arguments\)$"):
        export(tmp_path, N, WIDTH, source=train_digits, format="parquet", **COMMON)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert not manifest["complete"] and [s["index"] for s in manifest["shards"]] == [0, 1]


def test_a_changed_shard_is_written_again(train_digits, tmp_path):
    export(tmp_path, N, WIDTH, source=train_digits, format="parquet", **COMMON)
    before = tree(tmp_path)
    (tmp_path / "shard-000001.parquet").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="shard 1 of .* changed since it was written; writing it again"):
        result = export(tmp_path, N, WIDTH, source=train_digits, format="parquet", **COMMON)
    assert result["written"] == 100 and tree(tmp_path) == before


def test_a_different_export_is_refused_and_nothing_changes(train_digits, tmp_path):
    export(tmp_path, N, WIDTH, source=train_digits, format="webdataset", **COMMON)
    before = tree(tmp_path)
    with pytest.raises(ValueError, match=r"holds a different export \(manifest.json differs in image_width\)"):
        export(tmp_path, N, WIDTH + 1, source=train_digits, format="webdataset", **COMMON)
    with pytest.raises(ValueError, match=r"differs in seed\) \(without a seed, every export is a new one"):
        export(tmp_path, N, WIDTH, source=train_digits, format="webdataset", shard_size=100)
    assert tree(tmp_path) == before


def test_an_export_by_a_seqgen_that_drew_other_bytes_is_not_resumed(train_digits, tmp_path, monkeypatch):
    from seqgen import shards

    export(tmp_path, N, WIDTH, source=train_digits, format="png", **COMMON)
    before = tree(tmp_path)
    monkeypatch.setattr(shards, "OUTPUT_VERSION", shards.OUTPUT_VERSION + 1)
    with pytest.raises(ValueError, match=r"differs in output_version\) \(it was written by a version of seqgen "
                                         r"that draws or encodes other bytes\); choose another folder"):
        export(tmp_path, N, WIDTH, source=train_digits, format="png", **COMMON)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("fmt", ["png", "webdataset"])
def test_a_foreign_file_under_a_shard_name_is_never_overwritten(fmt, train_digits, tmp_path):
    export(tmp_path / "whole", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    name = "shard-000000.tar" if fmt == "webdataset" else min(p.name for p in (tmp_path / "whole").glob("*.png"))
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / name).write_bytes(b"not ours")
    # running the same command again would fail again: the error says what to do first
    with pytest.raises(ExportError, match=rf"recorded in .*manifest.json: .*{re.escape(name)} exists and holds different "
                                          r"bytes; it is not overwritten; move that file away, then run the same "
                                          r"command again to resume$"):
        export(tmp_path / "cut", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    assert (tmp_path / "cut" / name).read_bytes() == b"not ours"
    (tmp_path / "cut" / name).unlink()
    export(tmp_path / "cut", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    assert tree(tmp_path / "cut") == tree(tmp_path / "whole")


@pytest.mark.parametrize("fmt, files", [("png", 120), ("webdataset", 2)])
def test_a_full_disk_stops_an_export_that_resumes_once_there_is_room(fmt, files, train_digits, tmp_path, monkeypatch):
    import errno

    from seqgen import formats

    export(tmp_path / "whole", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    room = {"files": files}  # a disk that fills up in the second shard: the manifest, then 100 PNGs or one tar

    def on_a_small_disk(write):
        def written(path, payload):
            if room["files"] == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            room["files"] -= 1
            return write(path, payload)
        return written

    for name in ("write_or_keep", "replace_own_file"):  # the shards' files, and the manifest and labels
        monkeypatch.setattr(formats, name, on_a_small_disk(getattr(formats, name)))
    # the record of the complete shards cannot be written either: the error that stopped the export says
    # so, instead of a bare "No space left on device" from the attempt to record them
    with pytest.raises(ExportError, match=r"export stopped with \d+ of 250 images in \d complete shards, which could "
                                          r"not all be recorded in .*manifest.json \(OSError: \[Errno 28\] No space "
                                          r"left on device.*\); a resumed export renders them again; run the same "
                                          r"command again to resume \(OSError: \[Errno 28\] No space left"):
        export(tmp_path / "cut", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    monkeypatch.undo()  # room on the disk again
    export(tmp_path / "cut", N, WIDTH, source=train_digits, format=fmt, **COMMON)
    assert tree(tmp_path / "cut") == tree(tmp_path / "whole")


def test_parts_of_a_job_array_add_up_to_the_whole(train_digits, tmp_path):
    export(tmp_path / "whole", N, WIDTH, source=train_digits, format="lmdb", **COMMON)
    export(tmp_path / "parts", N, WIDTH, source=train_digits, format="lmdb", part=(2, 2), **COMMON)
    with lmdb.open(str(tmp_path / "parts"), readonly=True, lock=False) as env, env.begin() as txn:
        assert txn.get(b"num-samples") is None  # not every part is in yet
    export(tmp_path / "parts", N, WIDTH, source=train_digits, format="lmdb", part=(1, 2), **COMMON)
    whole, parts = tree(tmp_path / "whole"), tree(tmp_path / "parts")
    assert parts["data.mdb"] == whole["data.mdb"]
    assert sorted(parts) == ["data.mdb", "manifest-1-of-2.json", "manifest-2-of-2.json"]


def test_parts_are_cut_as_array_split_cuts_them_without_making_every_part(train_digits, tmp_path):
    from seqgen.export import part_shards

    for n, m in [(0, 3), (5, 1), (7, 3), (10, 4), (3, 8)]:
        assert [list(part_shards(n, k, m)) for k in range(1, m + 1)] == \
            [a.tolist() for a in np.array_split(np.arange(n), m)]
    # a job array far larger than the export: one small export, no list of a billion parts
    result = export(tmp_path / "x", 10, WIDTH, source=train_digits, seed=0, part=(1, 10**9))
    assert result["shards"] == 1 and result["images"] == 10
    assert export(tmp_path / "x", 10, WIDTH, source=train_digits, seed=0, part=(10**9, 10**9))["shards"] == 0


def test_any_fsspec_destination(train_digits, tmp_path):
    import fsspec

    export("memory://seqgen-test/set", N, WIDTH, source=train_digits, format="parquet", **COMMON)
    export(tmp_path, N, WIDTH, source=train_digits, format="parquet", **COMMON)
    memory = fsspec.filesystem("memory")
    for name in ("shard-000000.parquet", "shard-000002.parquet"):
        assert memory.cat_file(f"/seqgen-test/set/{name}") == (tmp_path / name).read_bytes()
    result = export("memory://seqgen-test/set", N, WIDTH, source=train_digits, format="parquet", **COMMON)
    assert result["written"] == 0 and result["output"] == "memory://seqgen-test/set"
    # a remote destination is named by its URL, as a user names it ("/seqgen-test/set" was the bare path)
    assert result["manifest"] == "memory:///seqgen-test/set/manifest.json"
    with pytest.raises(ValueError, match=r"^output: memory:///seqgen-test/set holds a different export"):
        export("memory://seqgen-test/set", N, WIDTH + 1, source=train_digits, format="parquet", **COMMON)


def test_two_dask_workers_and_an_existing_scheduler_give_the_serial_bytes(train_digits, tmp_path):
    from dask.distributed import LocalCluster

    for fmt in ("webdataset", "lmdb"):
        export(tmp_path / f"serial-{fmt}", N, WIDTH, source=train_digits, format=fmt, augment="light", **COMMON)
        export(tmp_path / f"local-{fmt}", N, WIDTH, source=train_digits, format=fmt, augment="light", workers=2,
               **COMMON)
        assert tree(tmp_path / f"local-{fmt}") == tree(tmp_path / f"serial-{fmt}")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      silence_logs=40) as cluster:
        export(tmp_path / "cluster", N, WIDTH, source=train_digits, format="webdataset", augment="light",
               scheduler=cluster.scheduler_address, **COMMON)
    assert tree(tmp_path / "cluster") == tree(tmp_path / "serial-webdataset")


def test_local_workers_run_without_dasks_malloc_trim_threshold(tmp_path):
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers, which made exports 1.2-1.5x slower.
    # A fresh process: a nanny also writes its variables into the environment of the process that starts it.
    script = tmp_path / "workers.py"
    script.write_text("from dask.distributed import Client\n"
                      "from seqgen.export import local_cluster\n"
                      "def at_start(name):  # the worker's environment as glibc read it\n"
                      "    with open('/proc/self/environ', 'rb') as f:\n"
                      "        env = dict(item.split(b'=', 1) for item in f.read().split(b'\\0') if b'=' in item)\n"
                      "    return str(env.get(name.encode(), b'None').decode())\n"
                      "if __name__ == '__main__':\n"
                      "    with local_cluster(2) as cluster, Client(cluster) as client:\n"
                      "        for name in ('MALLOC_TRIM_THRESHOLD_', 'OMP_NUM_THREADS'):\n"
                      "            print(name, sorted(client.run(at_start, name).values()))\n"
                      "        print('threads', sorted(client.nthreads().values()))\n")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr
    # the nanny's other settings stay: one BLAS thread per worker
    assert run.stdout.splitlines() == ["MALLOC_TRIM_THRESHOLD_ ['None', 'None']", "OMP_NUM_THREADS ['1', '1']",
                                       "threads [1, 1]"]


@pytest.mark.parametrize("workers, message", [
    (0, "workers: expected a positive int, got 0"),
    (10**6, r"workers: at most \d+ local worker processes on this machine \(\d+ cores\), got 1000000"),
])
def test_a_local_cluster_of_no_or_too_many_workers_is_refused(workers, message):
    from seqgen.export import local_cluster

    with pytest.raises(ValueError, match=f"^{message}$"):
        local_cluster(workers)


def test_a_workers_peak_memory_does_not_grow_with_the_export(train_digits, tmp_path):
    from dask.distributed import Client

    from seqgen.export import local_cluster

    def own_peak_mb():  # VmHWM: this process's own pages (ru_maxrss would include the parent's, from the fork)
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

    peaks = {}
    for n in (1_000, 12_000):  # a fresh worker for each export
        with local_cluster(1) as cluster, Client(cluster) as client:
            export(tmp_path / str(n), n, 200, source=train_digits, format="webdataset", shard_size=500, seed=1,
                   scheduler=cluster.scheduler_address, progress=False)
            [peaks[n]] = client.run(own_peak_mb).values()
    assert peaks[12_000] < 500  # issue 17's bound
    # twelve times the images, the same peak: a worker holds one shard at a time (12,000 PNGs are 26 MB)
    assert peaks[12_000] - peaks[1_000] < 10, peaks


def test_shards_larger_than_a_remote_workers_memory_limit_are_refused(train_digits, tmp_path):
    import dask
    from dask.distributed import LocalCluster

    # 2,000 images of width 200 are 42.7 MiB of float32 pixels; the worker says it may hold 32 MiB (a thread of
    # this process, which holds more already: so the worker is told not to pause, spill or stop at its limit)
    memory = {f"distributed.worker.memory.{k}": False for k in ("target", "spill", "pause", "terminate")}
    with dask.config.set(memory), LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None,
                      memory_limit=32 * 2**20, silence_logs=40) as cluster:
        address = next(iter(cluster.scheduler_info["workers"]))
        with pytest.raises(ValueError, match=r"shard_size: 2,000 images of width 200 need 42.7 MiB in memory, more than "
                                             rf"the 32.0 MiB memory limit of Dask worker {address}; use smaller shards"):
            export(tmp_path / "big", 4000, 200, source=train_digits, shard_size=2000, scheduler=cluster.scheduler_address)
        assert not (tmp_path / "big").exists()
        result = export(tmp_path / "small", 4, 200, source=train_digits, shard_size=2, scheduler=cluster.scheduler_address)
        assert result["images"] == 4


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"format": "zip"}, "format: expected one of png, lmdb, webdataset, parquet, got 'zip'"),
    ({"format": "lmdb", "output": "memory://x"}, "output: format 'lmdb' writes a local folder, got 'memory://x'"),
    ({"format": "parquet", "output": "nope://x"}, "output: cannot write to 'nope://x'"),
    ({"output": "nope://x"}, "output: format 'png' writes a local folder, got 'nope://x'"),
    ({"output": ""}, "output: expected a folder or URL, got ''"),
    ({"png_level": 5}, "png_level: expected None, 0 or 1, got 5"),
    ({"png_level": True}, "png_level: expected None, 0 or 1, got True"),
    ({"progress": "no"}, "progress: expected True or False, got 'no'"),
    ({"workers": 0}, "workers: expected a positive int"),
    ({"workers": 10_000}, "workers: at most"),
    ({"length": (3, 2)}, "length"),
    ({"format": "parquet", "output": "memory://x", "workers": 2},
     "output: 'memory://x' lives in this process's memory, which other processes cannot write to"),
    ({"scheduler": "tcp://127.0.0.1:9"}, "scheduler: cannot reach 'tcp://127.0.0.1:9'"),
    ({"part": (3, 2)}, "part: expected (K, M) ints with 1 <= K <= M, got (3, 2)"),
    ({"part": "1/2"}, "part: expected (K, M) ints with 1 <= K <= M"),
])
def test_bad_arguments_name_themselves(kwargs, message, train_digits, tmp_path):
    kwargs = {"output": tmp_path / "x", **kwargs}
    message = message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises((ValueError, TypeError), match=message):
        export(kwargs["output"], 10, 100, source=train_digits, **{k: v for k, v in kwargs.items() if k != "output"})
    if "length" not in kwargs:  # the same checks when a plan is written
        plan = ExportPlan(10, Options.check(100, (2, 10), "shrink", "center"), source=train_digits, seed=0)
        with pytest.raises((ValueError, TypeError), match=message):
            write_export(plan, **kwargs)
    assert not (tmp_path / "x").exists()


def _fits_once_not_twice() -> int:
    """A shard size at width 8192 of which one shard fits in this machine's memory, and two do not."""
    from seqgen.validation import image_bytes, physical_memory

    return int(0.75 * physical_memory() / image_bytes(1, 8192))


def test_shards_larger_than_memory_are_refused_up_front(train_digits, tmp_path):
    with pytest.raises(ValueError, match=r"shard_size, image_width: 100,000 images of width 8192 need [\d,.]+ GiB "
                                         r"in memory, more than this machine's .*; use smaller shards"):
        export(tmp_path / "x", 200_000, 8192, shard_size=100_000, length=5, source=train_digits)
    size = _fits_once_not_twice()
    with pytest.raises(ValueError, match=rf"shard_size, workers: {size:,} images of width 8192, 2 shards at once, "
                                         r"need .*; use smaller shards or fewer workers"):
        export(tmp_path / "x", size, 8192, shard_size=size, workers=2, source=train_digits)
    assert not (tmp_path / "x").exists()


def test_threads_in_this_process_render_no_more_shards_than_memory_holds(train_digits):
    from seqgen.export import shards_in_memory
    from seqgen.shards import ExportPlan

    size = _fits_once_not_twice()
    big = ExportPlan(2 * size, Options.check(8192, (2, 10), "shrink", "center"), length=5, source=train_digits,
                     seed=0, shard_size=size)
    assert shards_in_memory(big) == 1
    small = ExportPlan(2000, Options.check(200, (2, 10), "shrink", "center"), length=5, source=train_digits, seed=0)
    assert shards_in_memory(small) > 2


def test_a_missing_optional_package_is_named(train_digits, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lmdb" else real(name, *a))
    with pytest.raises(ValueError, match="format: 'lmdb' needs the lmdb package: pip install lmdb"):
        export(tmp_path, 10, 100, source=train_digits, format="lmdb")


def _cli(*args):
    return [sys.executable, "-m", "seqgen", "phone", "--num-images", "3000", "--image-width", "100", "--seed", "3",
            "--source", "sample", "--shard-size", "100", "--quiet", *args]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_cli_export_resumes_to_the_uninterrupted_files(how, tmp_path):
    whole = subprocess.run(_cli("--output-dir", str(tmp_path / "whole")), capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stderr
    cut = tmp_path / "cut"
    process = subprocess.Popen(_cli("--output-dir", str(cut)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (cut / "manifest.json").exists():
        time.sleep(0.02)
    process.send_signal(how)
    _, err = process.communicate(timeout=60)
    assert process.returncode in (-9, 130), err
    if how == signal.SIGTERM:
        assert "run the same command again to resume" in err and "Traceback" not in err
        assert not json.loads((cut / "manifest.json").read_text())["complete"]
    assert len(list(cut.glob("*.png"))) < 3000
    again = subprocess.run(_cli("--output-dir", str(cut)), capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "kept" in again.stdout, again.stderr
    assert tree(cut) == tree(tmp_path / "whole")


def test_a_killed_dask_worker_leaves_an_export_that_completes_identically(tmp_path):
    import psutil

    whole = subprocess.run(_cli("--format", "webdataset", "--output-dir", str(tmp_path / "whole")),
                           capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stderr
    cut = tmp_path / "cut"
    process = subprocess.Popen(_cli("--format", "webdataset", "--workers", "2", "--output-dir", str(cut)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(list(cut.glob("shard-*.tar"))) < 2:
        time.sleep(0.02)
    workers = [p for p in psutil.Process(process.pid).children(recursive=True)
               if "spawn_main" in " ".join(p.cmdline())]
    assert workers, "no Dask worker process found"
    workers[-1].kill()  # a worker dies in the middle of the export
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err
    assert process.returncode in (0, 1), err  # Dask reran its shards, or the export stopped saying how to resume
    if process.returncode == 1:
        assert "run the same command again to resume" in err
    again = subprocess.run(_cli("--format", "webdataset", "--output-dir", str(cut)), capture_output=True, text=True,
                           check=False)
    assert again.returncode == 0, again.stderr
    assert tree(cut) == tree(tmp_path / "whole")
