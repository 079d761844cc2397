"""Files: atomic, never overwritten, written where hard links are refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from seqgen import generate_numbers_sequence
from seqgen.io import prepare_file_path, save_file, write_new_file


def test_concurrent_writers_of_one_name_keep_every_file(tmp_path):
    payloads = [bytes([k]) * 5000 for k in range(8)]
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda p: write_new_file(tmp_path, "0123", ".png", p), payloads))
    assert sorted(p.name for p in paths) == ["0123.png"] + [f"0123_{k}.png" for k in range(1, 8)]
    assert sorted(p.read_bytes() for p in paths) == payloads
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporaries left


def test_files_are_written_where_there_are_no_hard_links(train_digits, tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted", src)

    monkeypatch.setattr("seqgen.io.os.link", no_links)
    for _ in range(2):
        generate_numbers_sequence("42", 60, source=train_digits, seed=0, output_path=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["42.png", "42_1.png"]
    assert (tmp_path / "42.png").read_bytes() == (tmp_path / "42_1.png").read_bytes()


def test_png_bytes_hold_the_exact_pixels_unfiltered_and_smaller_than_adaptive_filtering(train_digits):
    """encode_pngs: Pillow decodes the exact 8-bit pixels; every row is stored with filter type 0 (none),
    and the files are smaller than Pillow's adaptively filtered ones at the same zlib level."""
    import io
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    from seqgen import generate_phone_numbers
    from seqgen.io import encode_pngs, to_uint8

    images = generate_phone_numbers(50, 200, (2, 10), source=train_digits, seed=1, augment="default")[0]
    pngs = encode_pngs(images)
    pillow = 0
    for png, pixels in zip(pngs, to_uint8(images)):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels)
        data, at = b"", 8  # the IDAT chunks after the 8-byte signature
        while at < len(png):
            size, kind = struct.unpack(">I4s", png[at : at + 8])
            data += png[at + 8 : at + 8 + size] if kind == b"IDAT" else b""
            at += 12 + size
        rows = np.frombuffer(zlib.decompress(data), np.uint8).reshape(28, 1 + 200)
        assert (rows[:, 0] == 0).all()
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "PNG", compress_level=1)
        pillow += len(out.getvalue())
    assert sum(map(len, pngs)) < pillow


def test_to_uint8_rounds_as_rint_and_saturates_outside_0_1():
    import numpy as np

    from seqgen.io import to_uint8

    # every float32 between 0 and 1 whose product with 255 is a half (the rounding edge), and its neighbours
    halves = np.arange(255, dtype=np.float32) + np.float32(0.5)
    edges = (halves / np.float32(255)).astype(np.float32)
    values = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 1),
                             np.random.default_rng(0).random(100_000, dtype=np.float32)])
    np.testing.assert_array_equal(to_uint8(values), np.rint(values * np.float32(255)).astype(np.uint8))
    assert to_uint8(np.array([-3.0, -0.01, 1.004, 1.01, 7.0])).tolist() == [0, 0, 255, 255, 255]
    image = np.random.default_rng(1).random((3, 28, 50))
    assert to_uint8(image).shape == (3, 28, 50) and to_uint8(image[:, :, ::2]).shape == (3, 28, 25)
    assert to_uint8(np.zeros((0, 28, 5))).shape == (0, 28, 5)


def test_save_file_makes_its_folders_and_replaces_its_own_file(tmp_path):
    path = tmp_path / "a" / "b" / "m.bin"
    assert save_file(path, b"one") == path
    save_file(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["m.bin"]  # no temporary left


@pytest.mark.parametrize("path, error, message", [
    ("", ValueError, "^out: expected a file name, got an empty string$"),
    ("s3://bucket/m.pt", ValueError, "^out: expected a local file path, got the URL 's3://bucket/m.pt'"),
    (".", ValueError, r"^out: '\.' is a folder, expected a file$"),
    ("taken/m.pt", NotADirectoryError, "^out: 'taken' is a file, expected a folder$"),
    ("taken/deeper/m.pt", NotADirectoryError, "^out: a parent of 'taken/deeper' is a file$"),
])
def test_a_file_path_that_cannot_be_written_is_refused_before_any_write(tmp_path, monkeypatch, path, error, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("keep")
    for check in (prepare_file_path, lambda p, name: save_file(p, b"x", name)):
        with pytest.raises(error, match=message):
            check(path, "out")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
    assert (tmp_path / "taken").read_text() == "keep"
