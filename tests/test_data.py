"""The data layer: IDX files, the sample, DigitSet, downloads against a local server."""

from __future__ import annotations

import dataclasses
import os
import gzip
import json
import re
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

from seqgen import data
from seqgen.data import (
    DigitSet,
    MnistUnavailableError,
    SampleFallbackWarning,
    download_mnist,
    load_mnist,
)
from seqgen.idx import IdxFormatError, read_idx, write_idx

from mnist_server import FILES, MnistServer


@pytest.fixture
def server(tmp_path):
    with MnistServer(tmp_path / "served") as srv:
        yield srv


@pytest.fixture
def cache(tmp_path):
    data.clear_cache()
    yield tmp_path / "cache"
    data.clear_cache()


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_every_type(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4 * 5) - 7).reshape(2, 3, 4, 5).astype(dtype)
    back = read_idx(write_idx(tmp_path / f"a.idx{suffix}", array))
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(back, array)


def test_idx_write_names_the_types_it_can_store_and_leaves_no_temporary(tmp_path):
    # a list of Python ints is int64, which IDX cannot store
    with pytest.raises(TypeError, match=r"^array: dtype int64 has no IDX type code \(allowed: uint8, int8, int16, "
                                        r"int32, float32, float64\)$"):
        write_idx(tmp_path / "x.idx", np.array([1, 2, 3]))
    write_idx(tmp_path / "x.idx", np.arange(3, dtype=np.uint8))
    write_idx(tmp_path / "x.idx", np.arange(4, dtype=np.uint8))  # written again: replaced whole
    assert [p.name for p in tmp_path.iterdir()] == ["x.idx"] and read_idx(tmp_path / "x.idx").tolist() == [0, 1, 2, 3]


def test_idx_rejects_wrong_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x00\x08\x01" + b"\x00\x00\x00\x02" + b"ab")
    with pytest.raises(IdxFormatError, match=r"bad\.idx: wrong magic number"):
        read_idx(path)


def test_idx_rejects_unknown_type(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x07\x01" + b"\x00\x00\x00\x02" + b"ab")
    with pytest.raises(IdxFormatError, match="unknown IDX type code 0x07"):
        read_idx(path)


def test_idx_detects_truncation_and_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.zeros((4, 28, 28), np.uint8))
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(IdxFormatError, match=r"x\.idx: truncated: header \(4, 28, 28\)"):
        read_idx(path)
    path.write_bytes(raw + b"\x00")
    with pytest.raises(IdxFormatError, match="trailing bytes"):
        read_idx(path)
    path.write_bytes(raw[:6])
    with pytest.raises(IdxFormatError, match="truncated header"):
        read_idx(path)


def test_idx_detects_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "x.idx.gz", np.arange(1000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IdxFormatError, match=r"x\.idx\.gz: corrupt or truncated gzip"):
        read_idx(path)


# --------------------------------------------------------------------------- sample and DigitSet


def test_sample_split_is_fixed_stratified_and_disjoint(train_digits, test_digits):
    assert (len(train_digits), len(test_digits)) == (4000, 1000)
    assert train_digits.class_counts.tolist() == [400] * 10
    assert test_digits.class_counts.tolist() == [100] * 10
    assert train_digits.images.shape == (4000, 28, 28) and train_digits.images.dtype == np.uint8
    assert train_digits.labels.dtype == np.uint8
    assert (train_digits.split, test_digits.split) == ("train", "test")
    # MNIST convention: background 0, ink up to 255.
    assert train_digits.images[:, 0, :].max() == 0 and train_digits.images.max() == 255
    # No test image is also a train image.
    train_keys = {img.tobytes() for img in train_digits.images}
    assert not any(img.tobytes() in train_keys for img in test_digits.images)


def test_sets_are_loaded_once_and_read_only(train_digits):
    assert load_mnist("train", source="sample") is train_digits
    with pytest.raises(ValueError):
        train_digits.images[0, 0, 0] = 1


def test_class_indices_and_ink_extents():
    images = np.zeros((3, 28, 28), np.uint8)
    images[0, 5:20, 10:15] = 200
    images[1, 3, 2] = 1
    labels = np.array([7, 3, 7])
    digits = DigitSet(images, labels)
    assert [idx.tolist() for idx in digits.class_indices] == [[], [], [], [1], [], [], [], [0, 2], [], []]
    assert digits.ink_extents.tolist() == [[10, 15], [2, 3], [14, 14]]
    assert digits.ink_widths.tolist() == [5, 1, 0]


def test_digitset_accepts_float_and_validates():
    images = np.zeros((2, 28, 28), np.float32)
    images[0, 10, 10] = 1.0
    digits = DigitSet(images, [1, 2], name="mine")
    assert digits.images.dtype == np.uint8 and digits.images[0, 10, 10] == 255
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 28, 28\)"):
        DigitSet(np.zeros((2, 28, 27)), [1, 2])
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\)"):
        DigitSet(np.zeros((2, 28, 28)), [1, 2, 3])
    with pytest.raises(ValueError, match="labels: expected integers 0..9"):
        DigitSet(np.zeros((2, 28, 28)), [1, 10])
    with pytest.raises(ValueError, match=r"float pixels must lie in \[0, 1\] \(ink high\), got values from 2 to 2$"):
        DigitSet(np.full((1, 28, 28), 2.0), [1])
    with pytest.raises(ValueError, match=r"float pixels must lie in \[0, 1\] \(ink high\), got NaN$"):
        DigitSet(np.full((1, 28, 28), np.nan), [1])  # it used to become a blank digit
    with pytest.raises(ValueError, match="labels: expected integers 0..9, got values from 1 to 10"):
        DigitSet(np.zeros((2, 28, 28)), [1, 10])
    with pytest.raises(ValueError, match="labels: expected integers 0..9, got dtype float64"):
        DigitSet(np.zeros((2, 28, 28)), [1.0, 2.0])
    with pytest.raises(ValueError, match="split: expected one of"):
        DigitSet(np.zeros((1, 28, 28)), [1], split="val")


def test_dark_ink_on_light_paper_is_warned_about(train_digits):
    with pytest.warns(UserWarning, match=r"images: the digits' edges are bright \(mean 255 of 255\): a DigitSet "
                                         r"expects ink high .*; pass 255 - images"):
        DigitSet(255 - train_digits.images[:50], train_digits.labels[:50])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DigitSet(train_digits.images, train_digits.labels)  # MNIST itself: no warning


def test_subset(train_digits):
    small = train_digits.subset(per_class=3)
    assert len(small) == 30 and small.class_counts.tolist() == [3] * 10
    assert small.split == "train" and small.name == "sample"
    assert len(train_digits.subset(np.arange(5))) == 5
    assert len(train_digits.subset(train_digits.labels == 4)) == 400
    with pytest.raises(IndexError, match=f"index: index 5000 is out of bounds .* has {len(train_digits)} digits"):
        train_digits.subset([0, 5000])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [  # each used to fail inside numpy, or as a DigitSet of the wrong shape ("images: ... got (28, 28)")
        ({"index": 3}, TypeError, "index: expected an array of ints or bools, or a slice, got 3; wrap one position"),
        ({"index": np.array([[0, 1]])}, ValueError, r"index: expected a 1-d array of ints or bools, got shape \(1, 2\)"),
        ({"index": []}, ValueError, "index: selects no digits; a DigitSet needs at least one"),
        ({"index": slice(5, 5)}, ValueError, "index: selects no digits"),
        ({"per_class": 1.5}, TypeError, "per_class: expected a positive int, got 1.5"),
        ({"per_class": True}, TypeError, "per_class: expected a positive int, got True"),
        ({"per_class": 0}, ValueError, "per_class: expected a positive int, got 0"),
    ],
)
def test_subset_refuses_by_name(train_digits, kwargs, error, message):
    with pytest.raises(error, match="^" + message):
        train_digits.subset(**kwargs)


def test_load_mnist_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split: expected one of"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="source: expected 'auto', 'mnist', 'sample' or an existing folder"):
        load_mnist("train", source=str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="source:"):
        load_mnist("train", source=3)


# --------------------------------------------------------------------------- local folder


def test_local_folder_with_gz_or_raw_files(server, tmp_path, cache):
    digits = load_mnist("test", source=server.folder)
    sample = load_mnist("test", source="sample")
    np.testing.assert_array_equal(digits.images, sample.images)
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in FILES:
        (raw / name[:-3]).write_bytes(gzip.decompress((server.folder / name).read_bytes()))
    np.testing.assert_array_equal(load_mnist("test", source=raw).labels, sample.labels)


def test_local_folder_missing_and_mismatched_files(server, tmp_path, cache):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "t10k-images-idx3-ubyte.gz").write_bytes((server.folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(FileNotFoundError, match="has no t10k-labels-idx1-ubyte.gz"):
        load_mnist("test", source=partial)
    write_idx(partial / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match=r"^source: .*t10k-labels-idx1-ubyte.gz: 7 labels for 1000 images"):
        load_mnist("test", source=partial)
    (partial / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x08\x01\x00\x00"))
    with pytest.raises(IdxFormatError, match=r"^source: .*t10k-labels-idx1-ubyte.gz: wrong magic number"):
        load_mnist("test", source=partial)


# --------------------------------------------------------------------------- download


def test_download_then_cache_hit_without_contacting_the_server(server, cache):
    paths = download_mnist(cache, urls=server.url(), registry=server.registry, progress=False)
    assert sorted(p.name for p in paths.values()) == sorted(FILES)
    assert len(server.requests) == 4
    for name in FILES:
        assert (cache / name).read_bytes() == (server.folder / name).read_bytes()
    download_mnist(cache, urls=server.url(), registry=server.registry, progress=False)
    assert len(server.requests) == 4  # every file verified from the cache


def test_mirror_failover_past_404_500_and_refused(server, cache):
    urls = [_refused_url(), server.url("404"), server.url("500"), server.url()]
    download_mnist(cache, urls=urls, registry=server.registry, progress=False, retries=0)
    assert sum(r.startswith("/good/") for r in server.requests) == 4
    assert sum(r.startswith("/404/") for r in server.requests) == 4
    assert sum(r.startswith("/500/") for r in server.requests) == 4


def test_retries_before_moving_on(server, cache):
    with pytest.raises(MnistUnavailableError):
        download_mnist(cache, urls=server.url("500"), registry=server.registry, progress=False, retries=1)
    assert len(server.requests) == 2  # one file, tried twice, then given up


def test_checksum_mismatch_names_file_and_hashes_and_keeps_nothing(server, cache):
    with pytest.raises(MnistUnavailableError) as info:
        download_mnist(cache, urls=server.url("corrupt"), registry=server.registry, progress=False, retries=0)
    message = str(info.value)
    first = next(iter(FILES))
    assert first in message and server.registry[first].split(":")[1] in message
    assert "does not match" in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_interrupted_download_leaves_nothing_behind(server, cache):
    with pytest.raises(MnistUnavailableError, match="could not download train-images"):
        download_mnist(cache, urls=server.url("truncated"), registry=server.registry, progress=False, retries=0)
    assert not cache.exists() or list(cache.iterdir()) == []
    download_mnist(cache, urls=server.url(), registry=server.registry, progress=False)
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)
    assert all((cache / n).read_bytes() == (server.folder / n).read_bytes() for n in FILES)


def _a_full_disk(monkeypatch):
    """Every download's bytes meet a full disk (the request itself is made)."""
    import errno
    import io

    import pooch

    class Full(io.RawIOBase):
        def write(self, _data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fetch = pooch.HTTPDownloader.__call__
    monkeypatch.setattr(pooch.HTTPDownloader, "__call__",
                        lambda self, url, output_file, *args, **kw: fetch(self, url, Full(), *args, **kw))


def _a_folder_no_one_may_create(monkeypatch):
    import errno

    def refused(path, *args, **kw):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "makedirs", refused)  # what pooch meets in a folder this user cannot write


@pytest.mark.parametrize(("disk", "reason", "advice", "asked"), [
    (_a_full_disk, "No space left on device", "free space there or choose another folder", 1),
    (_a_folder_no_one_may_create, "Permission denied", "choose another folder", 0),
])
def test_a_cache_folder_that_cannot_take_the_files_is_named_and_no_other_mirror_is_tried(
        server, cache, monkeypatch, disk, reason, advice, asked):
    # it was tried on every mirror and reported as failed downloads, which the CLI told to "Check the network"
    disk(monkeypatch)
    with pytest.raises(MnistUnavailableError) as info:
        download_mnist(cache, urls=[server.url(), server.url("500")], registry=server.registry, progress=False)
    assert str(info.value) == (f"data_dir: cannot save train-images-idx3-ubyte.gz in the cache folder {cache} "
                               f"({reason}); {advice} with data_dir= or SEQGEN_DATA_DIR")
    assert server.requests == ["/good/train-images-idx3-ubyte.gz"][:asked]
    monkeypatch.undo()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_the_cli_names_the_flag_of_a_cache_folder_that_cannot_take_the_files(server, cache, monkeypatch, capsys):
    from seqgen import cli

    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())
    _a_folder_no_one_may_create(monkeypatch)
    assert cli.main(["download", "--quiet", "--data-dir", str(cache)]) == 1
    assert capsys.readouterr().err == (
        f"seqgen download: --data-dir: cannot save train-images-idx3-ubyte.gz in the cache folder {cache} "
        "(Permission denied); choose another folder with --data-dir or SEQGEN_DATA_DIR\n")


def test_seqgen_download_offers_its_flag_when_the_environment_chose_the_folder(server, cache, monkeypatch, capsys):
    # it advised only SEQGEN_DATA_DIR, although this command also takes --data-dir
    from seqgen import cli

    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())
    monkeypatch.setenv("SEQGEN_DATA_DIR", str(cache))
    _a_folder_no_one_may_create(monkeypatch)
    assert cli.main(["download", "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"seqgen download: SEQGEN_DATA_DIR: cannot save train-images-idx3-ubyte.gz in the cache folder {cache} "
        "(Permission denied); choose another folder with --data-dir or SEQGEN_DATA_DIR\n")


@pytest.mark.parametrize("chosen_by", ["SEQGEN_DATA_DIR", "the OS"])
def test_a_cache_folder_the_environment_chose_is_named_with_the_variable_that_chooses_another(
        server, cache, monkeypatch, chosen_by):
    # it said "data_dir: ... with data_dir=", an argument that exports, generators and `seqgen phone` do not take
    import pooch

    if chosen_by == "SEQGEN_DATA_DIR":
        monkeypatch.setenv("SEQGEN_DATA_DIR", str(cache))
    else:
        monkeypatch.delenv("SEQGEN_DATA_DIR", raising=False)
        monkeypatch.setattr(pooch, "os_cache", lambda project: cache)
    _a_folder_no_one_may_create(monkeypatch)
    with pytest.raises(data.CacheFolderError) as info:
        download_mnist(urls=server.url(), registry=server.registry, progress=False)
    head, folder = ("SEQGEN_DATA_DIR: ", "the cache folder") if chosen_by == "SEQGEN_DATA_DIR" else \
        ("", "the OS's cache folder")
    assert str(info.value) == (f"{head}cannot save train-images-idx3-ubyte.gz in {folder} {cache} "
                               "(Permission denied); choose another folder with SEQGEN_DATA_DIR")


def test_source_mnist_with_a_cache_folder_that_cannot_take_it_does_not_send_the_user_online(
        server, cache, monkeypatch, capsys):
    from seqgen import cli

    monkeypatch.delenv("SEQGEN_OFFLINE")
    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())
    monkeypatch.setenv("SEQGEN_DATA_DIR", str(cache))
    _a_folder_no_one_may_create(monkeypatch)
    with pytest.raises(data.CacheFolderError, match=r"\(Permission denied\); choose another folder with "
                                                    r"SEQGEN_DATA_DIR\)\. Use source='sample' or a local folder\.$"):
        load_mnist("train", source="mnist", progress=False)
    code = cli.main(["phone", "--num-images", "2", "--image-width", "200", "--source", "mnist",
                     "--output-dir", str(cache.parent / "out"), "--quiet"])
    assert (code, capsys.readouterr().err) == (1, (
        "seqgen phone: error: --source mnist: full MNIST is unavailable (SEQGEN_DATA_DIR: cannot save "
        f"train-images-idx3-ubyte.gz in the cache folder {cache} (Permission denied); choose another folder "
        "with SEQGEN_DATA_DIR). Use --source sample or a local folder.\n"))


def test_a_cache_folder_that_cannot_take_full_mnist_is_asked_again_next_time(cache, monkeypatch, server):
    # it was remembered as a failed download: the next process said "could not be downloaded in the last 10 minutes"
    monkeypatch.delenv("SEQGEN_OFFLINE")
    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())
    _a_full_disk(monkeypatch)
    with pytest.warns(SampleFallbackWarning) as caught:
        load_mnist("train", data_dir=cache, progress=False)
    assert str(caught[0].message).endswith("(4,000 train / 1,000 test).")  # no "once online": it was not the network
    assert not (cache / ".download-failed").exists()
    data.clear_cache()
    with pytest.warns(SampleFallbackWarning, match=r"^full MNIST could not be cached \(data_dir: cannot save"):
        load_mnist("train", data_dir=cache, progress=False)
    assert len(server.requests) == 2


def test_a_failed_download_says_to_check_the_network(tmp_path):
    with pytest.raises(MnistUnavailableError, match=r"connection failed; check the network, or name other mirrors "
                                                    r"in SEQGEN_MNIST_URLS$"):
        download_mnist(tmp_path, urls=_refused_url(), progress=False, retries=0)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_downloaded_files_get_the_mode_the_umask_gives_new_files(server, cache, umask):
    # pooch saves through a private temporary file: the cache was readable by its owner only (0600)
    before = os.umask(umask)
    try:
        download_mnist(cache, urls=server.url(), registry=server.registry, progress=False)
    finally:
        os.umask(before)
    assert {name: (cache / name).stat().st_mode & 0o777 for name in FILES} == dict.fromkeys(FILES, 0o666 & ~umask)


def test_truncated_or_corrupt_cached_file_is_fetched_again(server, cache):
    download_mnist(cache, urls=server.url(), registry=server.registry, progress=False)
    target = cache / "t10k-images-idx3-ubyte.gz"
    good = target.read_bytes()
    target.write_bytes(good[: len(good) // 3])
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    download_mnist(cache, urls=server.url(), registry=server.registry, progress=False)
    assert target.read_bytes() == good
    assert server.requests[4:] == ["/good/t10k-images-idx3-ubyte.gz", "/good/t10k-labels-idx1-ubyte.gz"]


def test_two_processes_downloading_into_an_empty_cache(server, cache):
    script = (
        "import json, sys; from seqgen.data import download_mnist, load_mnist;"
        "download_mnist(sys.argv[1], urls=sys.argv[2], registry=json.loads(sys.argv[3]), progress=False);"
        "print(int(load_mnist('train', source=sys.argv[1]).images.sum()))"
    )
    args = [sys.executable, "-c", script, str(cache), server.url(), json.dumps(server.registry)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    expected = int(load_mnist("train", source="sample").images.sum())
    assert [int(out) for out, _ in outputs] == [expected, expected]
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)


# --------------------------------------------------------------------------- load_mnist sources


def test_mnist_source_downloads_and_loads(server, cache, monkeypatch):
    monkeypatch.delenv("SEQGEN_OFFLINE")
    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(data.MNIST, registry=server.registry))
    digits = load_mnist("test", source="mnist", data_dir=cache, progress=False)
    assert digits.name == "mnist" and digits.split == "test" and len(digits) == 1000
    assert load_mnist("test", source="auto", data_dir=cache, progress=False).name == "mnist"


def test_mnist_source_without_network_is_a_clear_error(cache, monkeypatch):
    monkeypatch.delenv("SEQGEN_OFFLINE")
    with pytest.raises(MnistUnavailableError, match="source='mnist': full MNIST is unavailable.*seqgen download"):
        load_mnist("train", source="mnist", data_dir=cache, urls=[_refused_url()], progress=False)


def test_auto_falls_back_to_the_sample_with_one_warning(cache, monkeypatch):
    monkeypatch.delenv("SEQGEN_OFFLINE")
    monkeypatch.setenv("SEQGEN_MNIST_URLS", _refused_url())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = load_mnist("train", data_dir=cache, progress=False)
        test = load_mnist("test", data_dir=cache, progress=False)
    assert (train.name, len(train), test.name, len(test)) == ("sample", 4000, "sample", 1000)
    messages = [str(w.message) for w in caught if issubclass(w.category, SampleFallbackWarning)]
    assert len(messages) == 1 and "seqgen download" in messages[0]


def test_auto_says_why_when_the_cache_folder_cannot_take_full_mnist(cache, monkeypatch, server):
    # the warning said "full MNIST could not be downloaded", which sent users to the network
    monkeypatch.delenv("SEQGEN_OFFLINE")
    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())
    _a_folder_no_one_may_create(monkeypatch)
    with pytest.warns(SampleFallbackWarning) as caught:
        digits = load_mnist("train", data_dir=cache, progress=False)
    assert digits.name == "sample" and len(caught) == 1
    assert str(caught[0].message).startswith(
        f"full MNIST could not be cached (data_dir: cannot save train-images-idx3-ubyte.gz in the cache folder {cache} "
        "(Permission denied); choose another folder with data_dir= or SEQGEN_DATA_DIR): using the 5,000-digit")


def test_a_failed_download_is_remembered_so_the_next_process_starts_at_once(cache, monkeypatch, server):
    monkeypatch.delenv("SEQGEN_OFFLINE")
    monkeypatch.setenv("SEQGEN_MNIST_URLS", _refused_url())
    with pytest.warns(SampleFallbackWarning, match="full MNIST could not be downloaded: using"):
        load_mnist("train", data_dir=cache, progress=False)
    data.clear_cache()  # as a new process would start
    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())  # reachable now, but not asked for a while
    with pytest.warns(SampleFallbackWarning, match="in the last 10 minutes \\(not tried again until then\\)"):
        assert load_mnist("train", data_dir=cache, progress=False).name == "sample"
    assert server.requests == []
    os.utime(cache / ".download-failed", (0, 0))  # long ago: the network is tried again
    data.clear_cache()
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(data.MNIST, registry=server.registry))
    assert load_mnist("train", data_dir=cache, progress=False).name == "mnist"
    assert server.requests and not (cache / ".download-failed").exists()


def test_offline_env_skips_the_network(cache, monkeypatch, server):
    monkeypatch.setenv("SEQGEN_MNIST_URLS", server.url())  # would be asked if the network were tried
    with pytest.warns(SampleFallbackWarning, match="SEQGEN_OFFLINE"):
        assert load_mnist("train", data_dir=cache).name == "sample"
    assert server.requests == []


def test_offline_auto_uses_a_complete_cache(server, cache, monkeypatch):
    download_mnist(cache, urls=server.url(), registry=server.registry, progress=False)
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(data.MNIST, registry=server.registry))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_mnist("train", data_dir=cache).name == "mnist"


# --------------------------------------------------------------------------- import and CLI


def test_import_is_cheap_and_touches_no_data():
    code = (
        "import sys, time; t = time.perf_counter(); import seqgen; dt = time.perf_counter() - t;"
        "heavy = [m for m in ('numpy', 'pooch', 'requests', 'matplotlib', 'sklearn', 'skimage', 'torch', 'scipy')"
        " if m in sys.modules];"
        "print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seconds, heavy = out.split(" ", 1)
    assert heavy.strip() == "[]"  # what keeps it cheap: no library is imported
    assert float(seconds) < 2.0  # a generous bound (about 0.002 s here), for slow and busy machines


def _cli(*args, env_extra=None):
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "seqgen", *args], capture_output=True, text=True, env=env)


def test_cli_info_offline(tmp_path):
    result = _cli("info", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "auto source : sample (SEQGEN_OFFLINE is set" in result.stdout
    assert f"cache folder: {tmp_path}" in result.stdout
    assert "train sample   4000 digits" in result.stdout and "test  sample   1000 digits" in result.stdout


def test_cli_download_offline_is_one_line_and_exit_1(tmp_path):
    result = _cli("download", "--retries", "0", "--data-dir", str(tmp_path), env_extra={"SEQGEN_MNIST_URLS": _refused_url()})
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("seqgen download: could not download train-images-idx3-ubyte.gz")
    assert result.stderr.endswith("connection failed; check the network, or name other mirrors in SEQGEN_MNIST_URLS\n")


def test_cli_download_refuses_files_with_the_wrong_checksum(server, tmp_path):
    # The real registry does not match the served sample files: the download must refuse them.
    cache = tmp_path / "cache"
    result = _cli("download", "--quiet", "--retries", "0", "--data-dir", str(cache), env_extra={"SEQGEN_MNIST_URLS": server.url()})
    assert result.returncode == 1 and "does not match" in result.stderr
    assert not cache.exists() or list(cache.iterdir()) == []


def test_cli_usage_error_is_one_line_exit_2():
    result = _cli("nonsense")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "invalid choice: 'nonsense'" in result.stderr


def test_a_new_data_set_is_one_entry_of_the_registry(server, cache, monkeypatch, test_digits):
    """Another IDX data set (QMNIST, EMNIST-digits, ...) needs an entry, not a change of the loader."""
    from seqgen import sources

    names = sorted(FILES)  # the served files stand in for another data set's
    entry = sources.IdxDataset(name="tinymnist", mirrors=(server.url(),),
                               registry=server.registry,
                               splits={"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")},
                               urls_env="SEQGEN_TINYMNIST_URLS")
    monkeypatch.setitem(data.DATASETS, "tinymnist", entry)
    monkeypatch.delenv("SEQGEN_OFFLINE")
    digits = load_mnist("test", source="tinymnist", data_dir=cache, progress=False)
    assert digits.name == "tinymnist" and len(digits) == 1000
    np.testing.assert_array_equal(digits.images, test_digits.images)
    assert sorted(p.name for p in cache.iterdir()) == names and data.is_cached(cache, "tinymnist")
    monkeypatch.setenv("SEQGEN_TINYMNIST_URLS", "http://127.0.0.1:9/a, http://127.0.0.1:9/b")
    assert data.mirror_urls(dataset="tinymnist") == ("http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/")


def test_without_a_folder_the_cache_variable_decides(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQGEN_DATA_DIR", str(tmp_path / "from-env"))
    paths = download_mnist(urls=server.url(), registry=server.registry, progress=False)
    assert {p.parent for p in paths.values()} == {tmp_path / "from-env"}
    explicit = download_mnist(tmp_path / "explicit", urls=server.url(), registry=server.registry, progress=False)
    assert {p.parent for p in explicit.values()} == {tmp_path / "explicit"}  # an explicit folder wins


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("On", True), (" on ", True),
                                             ("0", False), ("", False), ("off", False), ("no", False)])
def test_offline_accepts_the_usual_spellings(monkeypatch, value, expected):
    monkeypatch.setenv("SEQGEN_OFFLINE", value)
    assert data.offline() is expected


def test_offline_never_tries_the_network_even_for_an_explicit_source(cache, monkeypatch):
    monkeypatch.setenv("SEQGEN_MNIST_URLS", _refused_url())  # would fail loudly if it were contacted
    with pytest.raises(MnistUnavailableError, match="source='mnist': SEQGEN_OFFLINE is set and the data set is not cached"):
        load_mnist("train", source="mnist", data_dir=cache, progress=False)


def test_info_verifies_the_cache_and_names_corrupt_files(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    for name in data.MNIST_REGISTRY:
        (folder / name).write_bytes(b"garbage")
    result = _cli("info", "--data-dir", str(folder))
    assert result.returncode == 0, result.stderr
    assert "corrupt cached file(s) train-images-idx3-ubyte.gz" in result.stderr
    assert "auto source : sample" in result.stdout and not data.is_cached(folder)


def test_a_data_dir_variable_that_names_a_file_is_refused_at_once(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("")
    result = _cli("info", env_extra={"SEQGEN_DATA_DIR": str(target)})
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "SEQGEN_DATA_DIR:" in result.stderr and "is a file, expected a folder" in result.stderr


def test_a_data_dir_that_names_a_file_is_refused_before_any_download(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep")
    # it was tried on every mirror and reported as a failed download ("check the network")
    with pytest.raises(NotADirectoryError, match=r"^data_dir: '.*a-file' is a file, expected a folder$"):
        download_mnist(target, urls="http://127.0.0.1:9/", progress=False)
    with pytest.raises(NotADirectoryError, match=r"^data_dir: '.*a-file' is a file, expected a folder$"):
        load_mnist(source="mnist", data_dir=target, progress=False)
    assert target.read_text() == "keep"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"retries": 1.5}, TypeError, "retries: expected an int >= 0, got 1.5"),
        ({"retries": True}, TypeError, "retries: expected an int >= 0, got True"),
        ({"timeout": 0}, ValueError, "timeout: expected a positive number of seconds, got 0"),
        ({"timeout": "5"}, TypeError, "timeout: expected a positive number of seconds, got '5'"),
        ({"urls": 5}, TypeError, "urls: expected a base URL or a sequence of them, got int"),
        ({"urls": ["ftp://mirror.example/mnist/"]},
         ValueError, "urls: expected http:// or https:// base URLs, got 'ftp://mirror.example/mnist/'"),
        ({"urls": ""}, ValueError, "urls: expected http:// or https:// base URLs, got ''"),
        ({"dataset": "emnist"}, ValueError, "dataset: expected one of 'mnist'"),
    ],
)
def test_download_arguments_are_checked_before_any_mirror_is_tried(tmp_path, kwargs, error, message):
    # each of these used to fail on every mirror and file, reported as a network failure (or a KeyError)
    args = {"urls": _refused_url(), "progress": False} | kwargs
    with pytest.raises(error, match="^" + re.escape(message)):
        download_mnist(tmp_path / "cache", **args)
    assert not (tmp_path / "cache").exists()


def test_mirrors_from_the_environment_are_checked_by_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQGEN_MNIST_URLS", "https://a.example/mnist ftp://b.example/mnist")
    with pytest.raises(ValueError, match="^SEQGEN_MNIST_URLS: expected http:// or https:// base URLs, got 'ftp://"):
        download_mnist(tmp_path, progress=False)
    monkeypatch.setenv("SEQGEN_MNIST_URLS", " , ")  # blank: the built-in mirrors
    assert data.mirror_urls() == data.MNIST_MIRRORS


def test_a_data_dir_url_is_refused_with_where_mirrors_go(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^data_dir: expected a local folder, got the URL 'https://m.example/mnist'; "
                                         r"mirrors to download from go in \$SEQGEN_MNIST_URLS \(or urls= in Python\)$"):
        download_mnist("https://m.example/mnist", progress=False)
    monkeypatch.setenv("SEQGEN_DATA_DIR", "s3://bucket/cache")
    with pytest.raises(ValueError, match="^SEQGEN_DATA_DIR: expected a local folder, got the URL 's3://bucket/cache'"):
        load_mnist("train", source="mnist", progress=False)
    assert list(tmp_path.iterdir()) == []  # no folder named 'https:' or 's3:'


def test_progress_takes_a_bool_only(tmp_path):
    with pytest.raises(TypeError, match="^progress: expected True or False, got 'no'$"):
        load_mnist("train", source="sample", progress="no")
    with pytest.raises(TypeError, match="^progress: expected True or False, got 0$"):
        download_mnist(tmp_path / "cache", progress=0)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_commands_show_no_download_bar(quiet, server, tmp_path, monkeypatch):
    """``--quiet`` silences the download of full MNIST on first use too, not only the shards' or steps' bar."""
    monkeypatch.delenv("SEQGEN_OFFLINE")
    flags = ["--quiet"] if quiet else []
    commands = {"phone": ["phone", "--num-images", "3", "--image-width", "200", "--seed", "1", "--output-dir",
                          str(tmp_path / "phones")],
                "train": ["train", "--steps", "1", "--batch-size", "2", "--workers", "0", "--out",
                          str(tmp_path / "m.pt")]}
    for name, args in commands.items() if quiet else [("phone", commands["phone"])]:  # shown: one is enough
        # a cache of its own each: a failed download is remembered, and the next command would not try
        env = {"SEQGEN_MNIST_URLS": server.url(), "SEQGEN_DATA_DIR": str(tmp_path / f"cache-{name}")}
        result = _cli(*args, *flags, env_extra=env)
        assert result.returncode == 0, result.stderr
        # the served files are built from the sample, not MNIST's: after the download the loader falls back
        assert "full MNIST could not be downloaded" in result.stderr
        assert ("/657k" in result.stderr) is not quiet, result.stderr  # pooch's bar over train-images
