"""The formats of an export: how one shard is written, verified and finished.

A shard is a run of consecutive images rendered together.  ``png`` writes one
file per image into a local folder; ``webdataset`` and ``parquet`` write one
file per shard to any path fsspec understands; ``lmdb`` keeps every shard in
one local database, written by the process that runs the export (workers
only render and encode).  Each format publishes a shard atomically: a reader
sees all of it or none of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import secrets
import tarfile

import numpy as np

from .io import PNG_LEVEL, encode_pngs, replace_own_file, write_or_keep


def split_url(output: str):
    """``(fs, root)`` for an output folder or URL; ``fs`` is None for a local folder."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(output)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing (s3fs, gcsfs)
        raise ValueError(f"output: cannot write to {output!r}: {exc}") from None
    if "file" in protocols(fs):
        return None, os.path.abspath(root)
    return fs, root


def protocols(fs) -> tuple[str, ...]:
    """The protocol names of an fsspec file system (one name or several)."""
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def shown(fs, path: str) -> str:
    """``path`` as a user names it: a local path, or the URL of a remote one (``s3://bucket/...``)."""
    return path if fs is None else fs.unstrip_protocol(path)


def join(fs, root: str, name: str) -> str:
    return os.path.join(root, name) if fs is None else posixpath.join(root, name)


def publish(fs, path: str, payload: bytes) -> bool:
    """Write ``payload`` at ``path`` unless identical bytes are there; True when written.

    Local files are published by hard link (never over another file); other
    file systems write a temporary name, then move it, after checking the name is free.
    """
    if fs is None:
        return write_or_keep(path, payload)
    if fs.exists(path):
        if fs.cat_file(path) == payload:
            return False
        raise FileExistsError(f"{path} exists and holds different bytes; it is not overwritten")
    _pipe_then_move(fs, path, payload)
    return True


def _pipe_then_move(fs, path: str, payload: bytes) -> None:
    """Write a temporary name beside ``path``, then move it there: readers never see half a file."""
    tmp = f"{path}.tmp-{secrets.token_hex(6)}"
    fs.pipe_file(tmp, payload)
    fs.mv(tmp, path)


def read_bytes(fs, path: str) -> bytes | None:
    """The file's bytes, or None when it is missing."""
    try:
        if fs is None:
            with open(path, "rb") as handle:
                return handle.read()
        return fs.cat_file(path)
    except (FileNotFoundError, IsADirectoryError):
        return None


def write_own(fs, path: str, payload: bytes) -> None:
    """Replace a file the export owns (manifest, labels) atomically."""
    if fs is None:
        replace_own_file(path, payload)
    else:
        _pipe_then_move(fs, path, payload)


def sha256(parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


class Format:
    """One export format; subclasses say how a shard's images become files."""

    name = ""
    needs: str | None = None  # the optional package this format imports
    local_only = False
    prefix = "shard"
    png_level = PNG_LEVEL  # the zlib level of its PNG bytes unless the caller picks one

    def shard_name(self, index: int) -> str:
        raise NotImplementedError

    def write(self, fs, root: str, shard, batch, png_level: int) -> dict:
        """Encode and publish ``shard`` rendered as ``batch``; return its record."""
        raise NotImplementedError

    def open_store(self, fs, root: str):
        """A handle the export's own process keeps open while it runs (the LMDB environment)."""

    def commit(self, store, record: dict) -> dict:
        """In the export's own process: store what a worker returned (LMDB: the shard's keys)."""
        return record

    def verify(self, fs, root: str, shard, record: dict, store=None) -> bool:
        """Whether the complete shard ``record`` describes is on disk, unchanged."""
        data = read_bytes(fs, join(fs, root, record["name"]))
        return data is not None and sha256([data]) == record["sha256"]

    def discard(self, fs, root: str, shard, record: dict) -> None:
        """Remove a shard this export recorded that no longer verifies, so that it is written again."""
        path = join(fs, root, record["name"])
        if fs is None:
            if os.path.exists(path):
                os.unlink(path)
        elif fs.exists(path):
            fs.rm_file(path)

    def finish(self, fs, root: str, plan, manifest, store=None) -> None:
        """Files written after the shards (labels.csv, the LMDB count)."""


class PngFolder(Format):
    """``<name>.png`` per image in a local folder, and a ``file,label`` manifest, ``labels.csv``."""

    name, local_only = "png", True

    def shard_name(self, index: int) -> str:
        return f"images of shard {index}"

    def write(self, fs, root, shard, batch, png_level):
        payloads = encode_pngs(batch.images, png_level)
        written = sum(write_or_keep(os.path.join(root, f"{stem}.png"), data)
                      for stem, data in zip(shard.stems, payloads))
        return {"index": shard.index, "name": self.shard_name(shard.index), "count": len(payloads),
                "sha256": sha256(payloads), "written": int(written)}

    def verify(self, fs, root, shard, record, store=None):
        payloads = [read_bytes(None, os.path.join(root, f"{stem}.png")) for stem in shard.stems]
        return None not in payloads and sha256(payloads) == record["sha256"]

    def discard(self, fs, root, shard, record):
        for stem in shard.stems:
            if os.path.exists(path := os.path.join(root, f"{stem}.png")):
                os.unlink(path)

    def finish(self, fs, root, plan, manifest, store=None):
        def rows():  # shard by shard: memory does not grow with the export
            yield "file,label\n"
            for index in sorted(manifest.records):
                shard = plan.shard(index)
                yield "".join(f"{stem}.png,{label}\n" for stem, label in zip(shard.stems, shard.labels))

        replace_own_file(os.path.join(root, manifest.labels_name), (row.encode() for row in rows()))


class WebDatasetTar(Format):
    """Tar shards ``shard-%06d.tar`` of ``<key>.png``, ``<key>.txt`` (label), ``<key>.json`` (boxes)."""

    name = "webdataset"

    def shard_name(self, index: int) -> str:
        return f"{self.prefix}-{index:06d}.tar"

    def write(self, fs, root, shard, batch, png_level):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for i, (png, label, boxes) in enumerate(zip(encode_pngs(batch.images, png_level), shard.labels,
                                                        batch.boxes)):
                key = f"{shard.start + i:09d}"
                meta = json.dumps({"label": label, "boxes": boxes[: len(label)].tolist()}).encode()
                for suffix, data in ((".png", png), (".txt", label.encode()), (".json", meta)):
                    info = tarfile.TarInfo(key + suffix)  # fixed owner, mode and time: the same bytes anywhere
                    info.size, info.mode, info.mtime = len(data), 0o644, 0
                    tar.addfile(info, io.BytesIO(data))
        payload = buffer.getvalue()
        written = publish(fs, join(fs, root, self.shard_name(shard.index)), payload)
        return {"index": shard.index, "name": self.shard_name(shard.index), "count": len(shard.labels),
                "sha256": sha256([payload]), "written": len(shard.labels) if written else 0}


#: The Hugging Face ``datasets`` features of a Parquet export, stored in the schema
#: metadata so that ``datasets.load_dataset("parquet", ...)`` decodes the images.
HF_FEATURES = {"image": {"_type": "Image"}, "label": {"dtype": "string", "_type": "Value"},
               "boxes": {"feature": {"feature": {"dtype": "int16", "_type": "Value"}, "length": 4, "_type": "List"},
                         "_type": "List"}}


class ParquetShards(Format):
    """Parquet files ``shard-%06d.parquet``: ``image`` (``datasets.Image`` layout), ``label``, ``boxes``."""

    name, needs = "parquet", "pyarrow"
    png_level = 0  # stored PNGs in zstd pages: as small within a few percent, and 2.5x less work than deflate

    def shard_name(self, index: int) -> str:
        return f"{self.prefix}-{index:06d}.parquet"

    def write(self, fs, root, shard, batch, png_level):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pngs = encode_pngs(batch.images, png_level)
        boxes = batch.boxes.astype(np.int16)
        schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                            ("label", pa.string()), ("boxes", pa.list_(pa.list_(pa.int16(), 4)))],
                           metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})
        table = pa.table({
            "image": pa.StructArray.from_arrays([pa.array(pngs, pa.binary()), pa.nulls(len(pngs), pa.string())],
                                                names=["bytes", "path"]),
            "label": pa.array(shard.labels, pa.string()),
            "boxes": _ragged_boxes(boxes, shard.codes),
        }, schema=schema)
        buffer = io.BytesIO()
        # deflated PNGs do not compress further; stored ones do, and zstd does it faster than zlib
        pq.write_table(table, buffer, compression="zstd" if png_level == 0 else "none")
        payload = buffer.getvalue()
        written = publish(fs, join(fs, root, self.shard_name(shard.index)), payload)
        return {"index": shard.index, "name": self.shard_name(shard.index), "count": len(pngs),
                "sha256": sha256([payload]), "written": len(pngs) if written else 0}


def _ragged_boxes(boxes, codes):
    """The boxes of each image as a list array, one per digit (padding of shorter sequences dropped)."""
    import pyarrow as pa

    lengths = (np.asarray(codes) >= 0).sum(axis=1)
    keep = (np.arange(boxes.shape[1])[None, :] < lengths[:, None]).reshape(-1)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1, 4)[keep].reshape(-1), pa.int16()), 4)
    return pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)), flat)


class Lmdb(Format):
    """One LMDB in the OCR convention: ``image-%09d`` (PNG bytes), ``label-%09d``, 1-based, ``num-samples``.

    ``boxes-%09d`` (JSON) is added; each shard is one transaction, with its record
    under ``seqgen-shard-%06d``, so a shard is in the database completely or not at all.
    ``num-samples`` is written when every shard is in.
    """

    name, needs, local_only = "lmdb", "lmdb", True

    def shard_name(self, index: int) -> str:
        return f"seqgen-shard-{index:06d}"

    def write(self, fs, root, shard, batch, png_level):
        pngs = encode_pngs(batch.images, png_level)
        return {"index": shard.index, "name": self.shard_name(shard.index), "count": len(pngs),
                "sha256": sha256(pngs), "written": len(pngs),
                "payload": (shard.start, pngs, list(shard.labels), batch.boxes)}

    def open_store(self, fs, root: str):
        import lmdb

        return lmdb.open(root, map_size=1 << 40, subdir=True)  # a sparse file: grows as written

    def commit(self, store, record: dict) -> dict:
        start, pngs, labels, boxes = record.pop("payload")
        with store.begin(write=True) as txn:
            for i, (png, label, box) in enumerate(zip(pngs, labels, boxes), start + 1):
                txn.put(b"image-%09d" % i, png)
                txn.put(b"label-%09d" % i, label.encode())
                txn.put(b"boxes-%09d" % i, json.dumps(box[: len(label)].tolist()).encode())
            txn.put(record["name"].encode(), json.dumps(record).encode())
        return record

    def verify(self, fs, root, shard, record, store=None):
        with store.begin() as txn:
            if txn.get(record["name"].encode()) is None:
                return False
            pngs = [txn.get(b"image-%09d" % i) for i in range(shard.start + 1, shard.start + len(shard.labels) + 1)]
        return None not in pngs and sha256(pngs) == record["sha256"]

    def discard(self, fs, root, shard, record):
        """Nothing to remove: writing the shard again replaces its keys in one transaction."""

    def finish(self, fs, root, plan, manifest, store=None):
        with store.begin(write=True) as txn:
            present = sum(txn.get(self.shard_name(k).encode()) is not None for k in range(plan.n_shards))
            if present == plan.n_shards:  # every part of a job array is in
                txn.put(b"num-samples", str(plan.num_images).encode())


FORMATS = {f.name: f for f in (PngFolder(), Lmdb(), WebDatasetTar(), ParquetShards())}
