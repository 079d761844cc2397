"""The generation commands of the CLI: files written, workers, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqgen", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ))


def test_sequence_writes_one_png(tmp_path):
    result = run_cli("sequence", "--digits", "78677", "--image-width", "150", "--seed", "1",
                     "--source", "sample", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 1 image of 78677 to {tmp_path}"
    with Image.open(tmp_path / "78677.png") as png:
        assert png.size == (150, 28) and png.mode == "L"
    from seqgen import generate_numbers_sequence, load_mnist

    expected = generate_numbers_sequence("78677", 150, source=load_mnist("train", source="sample"), seed=1)
    with Image.open(tmp_path / "78677.png") as png:
        np.testing.assert_array_equal(np.asarray(png), np.rint(expected * 255).astype(np.uint8))


def test_augmented_sequence(tmp_path):
    result = run_cli("sequence", "--digits", "0042", "--image-width", "120", "--augment", "heavy", "--seed", "3",
                     "--source", "sample", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "0042.png") as png:
        assert png.size == (120, 28)


def test_phone_files_are_the_same_for_any_number_of_workers(tmp_path):
    common = ["phone", "--num-images", "1200", "--image-width", "120", "--seed", "5", "--source", "sample", "--quiet"]
    one = run_cli(*common, "--output-dir", str(tmp_path / "one"))
    two = run_cli(*common, "--workers", "2", "--output-dir", str(tmp_path / "two"))
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    assert one.stdout.strip() == f"wrote 1200 images and labels.csv to {tmp_path / 'one'}"
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(names) == 1201 and names == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_png_level_changes_the_size_not_the_pixels(tmp_path):
    common = ["phone", "--num-images", "20", "--image-width", "120", "--seed", "5", "--source", "sample", "--quiet"]
    for level in ("0", "1"):
        assert run_cli(*common, "--png-level", level, "--output-dir", str(tmp_path / level)).returncode == 0
    sizes = {}
    for level in ("0", "1"):
        files = sorted((tmp_path / level).glob("*.png"))
        sizes[level] = sum(f.stat().st_size for f in files)
        for f in files:
            with Image.open(f) as png, Image.open(tmp_path / "1" / f.name) as reference:
                assert png.mode == "L"
                np.testing.assert_array_equal(np.asarray(png), np.asarray(reference))
    assert sizes["0"] > 2 * sizes["1"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["sequence", "--digits", "78a77", "--image-width", "150"], "digits: expected only the characters 0-9, got 'a'"),
        (["sequence", "--digits", "123", "--image-width", "0"], "image_width: expected a positive int, got 0"),
        (["sequence", "--digits", "123", "--image-width", "-5"], "image_width: expected a positive int, got -5"),
        (["sequence", "--digits", "123", "--image-width", "100", "--spacing", "9", "2"], "spacing_range: lo must not exceed hi"),
        (["sequence", "--digits", "123", "--image-width", "100", "--spacing", "-20", "2"], "spacing_range: lo must be >= -8"),
        (["phone", "--num-images", "0", "--image-width", "100"], "--num-images: expected a positive int, got 0"),
        (["phone", "--num-images", "2", "--image-width", "100", "--workers", "0"], "--workers: expected a positive int"),
        (["phone", "--num-images", "2", "--image-width", "100", "--fit", "squash"], "argument --fit: invalid choice: 'squash'"),
        (["phone", "--num-images", "2", "--image-width", "abc"], "argument --image-width: invalid int value: 'abc'"),
        (["phone", "--num-images", "2", "--image-width", "100", "--shard", "3/2"], "expected K/M with 1 <= K <= M"),
        (["sequence", "--image-width", "100"], "the following arguments are required: --digits"),
        (["phone", "--num-images", "2", "--image-width", "100", "--png-level", "9"], "argument --png-level: invalid choice: 9 (choose from 0, 1)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli(*args, "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "out").exists()  # nothing was written


def test_output_dir_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep")
    result = run_cli("phone", "--num-images", "2", "--image-width", "100", "--output-dir", str(target))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "output_path:" in result.stderr and "is a file" in result.stderr
    assert target.read_text() == "keep"
