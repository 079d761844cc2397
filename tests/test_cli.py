"""The generation commands of the CLI: files written, workers, and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqgen", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ))


def test_help_is_plain_text_for_the_terminal():
    import argparse

    from seqgen.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    texts = [parser.format_help()] + [command.format_help() for command in commands.values()]
    assert len(texts) == 8 and texts[0].split("\n\n")[1].startswith("Synthetic images of handwritten digit")
    markup = re.compile(r"``|:(func|class|data|meth|mod):")  # Sphinx roles belong in docstrings only
    assert [name for name, text in zip(["seqgen", *commands], texts) if markup.search(text)] == []


def test_sequence_writes_one_png(tmp_path):
    result = run_cli("sequence", "--digits", "78677", "--image-width", "150", "--seed", "1",
                     "--source", "sample", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {tmp_path / '78677.png'}"
    again = run_cli("sequence", "--digits", "78677", "--image-width", "150", "--seed", "1",
                    "--source", "sample", "--output-dir", str(tmp_path))
    assert again.stdout.strip() == f"wrote {tmp_path / '78677_1.png'}"  # never over the first
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
    assert one.stdout.strip() == f"wrote 1200 images in 2 shards in {tmp_path / 'one'} (manifest.json, labels.csv)"
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(names) == 1202 and names == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_a_folder_with_another_export_is_refused_naming_the_flags_that_differ(tmp_path):
    # it named the settings as the API does: "differs in png_level, shard_size", "pass a seed"
    common = ["phone", "--num-images", "6", "--image-width", "100", "--source", "sample", "--quiet", "--format",
              "parquet", "--output-dir", str(tmp_path / "set")]
    assert run_cli(*common, "--seed", "1").returncode == 0
    other = run_cli(*common, "--seed", "1", "--png-level", "1", "--shard-size", "5")
    assert other.returncode == 2 and other.stderr == (
        f"seqgen phone: error: --output-dir: {tmp_path / 'set'} holds a different export (manifest.json differs in "
        "--png-level, --shard-size); choose another folder\n")
    unseeded = run_cli(*common)
    assert unseeded.returncode == 2 and unseeded.stderr.endswith(
        "(manifest.json differs in --seed) (without a seed, every export is a new one: pass --seed to "
        "resume); choose another folder\n"), unseeded.stderr


def test_png_level_changes_the_size_not_the_pixels(tmp_path):
    common = ["phone", "--num-images", "20", "--image-width", "120", "--seed", "5", "--source", "sample", "--quiet"]
    for level in ("0", "1"):
        result = run_cli(*common, "--png-level", level, "--output-dir", str(tmp_path / level))
        assert result.returncode == 0
        assert result.stdout == f"wrote 20 images in 1 shard in {tmp_path / level} (manifest.json, labels.csv)\n"
    sizes = {}
    for level in ("0", "1"):
        files = sorted((tmp_path / level).glob("*.png"))
        sizes[level] = sum(f.stat().st_size for f in files)
        for f in files:
            with Image.open(f) as png, Image.open(tmp_path / "1" / f.name) as reference:
                assert png.mode == "L"
                np.testing.assert_array_equal(np.asarray(png), np.asarray(reference))
    assert sizes["0"] > 2 * sizes["1"]


OUT = "<out>"  # replaced by a fresh folder: nothing may be written there
BAD_INPUTS = [
    # sequence
    (["sequence", "--digits", "78a77", "--image-width", "150"], "--digits: expected only the characters 0-9, got 'a'"),
    (["sequence", "--digits", "123", "--image-width", "0"], "--image-width: expected a positive int, got 0"),
    (["sequence", "--digits", "123", "--image-width", "-5"], "--image-width: expected a positive int, got -5"),
    (["sequence", "--digits", "123", "--image-width", "100000"], "--image-width: at most 8192 pixels, got 100000"),
    (["sequence", "--digits", "123", "--image-width", "100", "--spacing", "9", "2"], "--spacing: lo must not exceed hi"),
    (["sequence", "--digits", "123", "--image-width", "100", "--spacing", "-20", "2"], "--spacing: lo must be >= -8"),
    (["sequence", "--digits", "123", "--image-width", "100", "--spacing", "0", "1000000"],
     "--digits, --spacing: 3 digits with gaps up to 1000000 px can be 2000084 px wide before fitting; at most 4096"),
    (["sequence", "--digits", "1" * 300, "--image-width", "100"], "--digits, --spacing: 300 digits"),
    (["sequence", "--digits", "123", "--image-width", "100", "--seed", "-1"], "--seed: expected a non-negative int"),
    (["sequence", "--image-width", "100"], "the following arguments are required: --digits"),
    (["sequence", "--digits", "12", "--image-width", "100", "--output-dir", ""], "--output-dir: expected a folder name"),
    # a URL would otherwise become a local folder named after its scheme ('memory:')
    (["sequence", "--digits", "12", "--image-width", "100", "--output-dir", "memory://x/y"],
     "--output-dir: expected a local folder, got the URL 'memory://x/y'; only the webdataset and parquet exports"),
    # phone
    (["phone", "--num-images", "0", "--image-width", "100"], "--num-images: expected a positive int, got 0"),
    (["phone", "--num-images", "10000000000", "--image-width", "100"], "--num-images: at most 10,000,000 phone numbers"),
    (["phone", "--num-images", "2", "--image-width", "100", "--spacing", "0", "10000"],
     "--spacing: 11 digits with gaps up to 10000 px can be 100308 px wide"),
    (["phone", "--num-images", "2", "--image-width", "100", "--workers", "0"], "--workers: expected a positive int"),
    (["phone", "--num-images", "2", "--image-width", "100", "--shard-size", "0"], "--shard-size: expected a positive int"),
    (["phone", "--num-images", "2", "--image-width", "100", "--fit", "squash"], "argument --fit: invalid choice: 'squash'"),
    (["phone", "--num-images", "2", "--image-width", "abc"], "argument --image-width: invalid int value: 'abc'"),
    (["phone", "--num-images", "2", "--image-width", "100", "--shard", "3/2"], "expected K/M with 1 <= K <= M"),
    (["phone", "--num-images", "2", "--image-width", "100", "--png-level", "9"],
     "argument --png-level: invalid choice: 9 (choose from 0, 1)"),
    (["phone", "--num-images", "2", "--image-width", "100", "--format", "zip"], "argument --format: invalid choice"),
    (["phone", "--num-images", "2", "--image-width", "100", "--workers", "1000"],
     "--workers: at most"),
    (["phone", "--num-images", "2", "--image-width", "100", "--output-dir", "/proc/nosuch", "--source", "sample"],
     "--output-dir: cannot create '/proc/nosuch': No such file or directory"),
    (["phone", "--num-images", "2", "--image-width", "100", "--format", "lmdb", "--output-dir", "memory://x"],
     "--output-dir: format 'lmdb' writes a local folder"),
    (["phone", "--num-images", "2", "--image-width", "100", "--output-dir", "s3://bucket/x"],  # not "install s3fs"
     "--output-dir: format 'png' writes a local folder, got 's3://bucket/x'"),
    (["phone", "--num-images", "2", "--image-width", "100", "--format", "parquet", "--output-dir", "nope://x"],
     "--output-dir: cannot write to 'nope://x'"),
    # sequences
    (["sequences", "--num-images", "2", "--image-width", "100", "--length", "12", "1"], "--length: expected N or LO HI"),
    (["sequences", "--num-images", "2", "--image-width", "100", "--length", "1", "2", "3"], "--length: expected N or LO HI"),
    (["sequences", "--num-images", "2", "--image-width", "100", "--length", "200"], "--length, --spacing: 200 digits"),
    (["sequences", "--num-images", "-2", "--image-width", "100", "--length", "5"], "--num-images: expected a positive int"),
    (["sequences", "--num-images", "200000", "--image-width", "8192", "--length", "5", "--shard-size", "100000"],
     "--shard-size, --image-width: 100,000 images of width 8192 need"),
    # recognize, download, info (train has its own table below)
    (["recognize", "--model", "no-such-model.pt", "a.png"], "--model: no-such-model.pt is not a file"),
    (["recognize"], "the following arguments are required: files"),
    (["download", "--retries", "-1", "--data-dir", OUT], "--retries: expected an int >= 0, got -1"),
    (["info", "--data-dir", "/etc/hostname"], "--data-dir: '/etc/hostname' is a file, expected a folder"),
    (["download", "--data-dir", "/etc/hostname"], "--data-dir: '/etc/hostname' is a file, expected a folder"),
    (["download", "--data-dir", "https://mirror.example/mnist"],
     ("--data-dir: expected a local folder, got the URL 'https://mirror.example/mnist'; mirrors to download from "
      "go in $SEQGEN_MNIST_URLS")),
    (["nosuch"], "invalid choice: 'nosuch'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_every_subcommand_answers_bad_input_in_one_line_with_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    args = [str(out) if a == OUT else a for a in args]
    if args[0] in ("sequence", "phone", "sequences") and "--output-dir" not in args:
        args += ["--output-dir", str(out)]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was written


def test_output_dir_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep")
    result = run_cli("phone", "--num-images", "2", "--image-width", "100", "--output-dir", str(target))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--output-dir:" in result.stderr and "is a file" in result.stderr
    assert target.read_text() == "keep"


def test_recognize_reads_with_the_shipped_sequence_model_by_default(tmp_path, test_digits):
    from seqgen import generate_phone_numbers

    _, labels = generate_phone_numbers(3, 300, (2, 10), source=test_digits, seed=8, output_path=tmp_path)
    files = [str(tmp_path / f"{label}.png") for label in labels]
    result = run_cli("recognize", *files)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[2] for row in rows] == files
    assert sum(row[0] == label for row, label in zip(rows, labels)) >= 2
    assert all(0.0 <= float(row[1]) <= 1.0 for row in rows)


def test_train_writes_a_model_and_its_learning_curve(tmp_path):
    out = tmp_path / "m.pt"
    result = run_cli("train", "--steps", "3", "--batch-size", "4", "--workers", "0", "--source", "sample",
                     "--threads", "1", "--quiet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert torch.load(out, weights_only=True)["training"]["threads"] == 1
    assert result.stdout.startswith("trained 3 steps (12 sequences") and str(out) in result.stdout
    assert out.is_file() and (tmp_path / "m.csv").read_text().startswith("step,samples,seconds,lr,loss")
    again = run_cli("train", "--steps", "3", "--source", "sample", "--quiet", "--out", str(out))
    assert again.returncode == 2 and "--out:" in again.stderr and "--overwrite" in again.stderr
    # nor is another file where the learning curve would go
    (tmp_path / "other.csv").write_text("keep")
    taken = run_cli("train", "--steps", "3", "--source", "sample", "--quiet", "--out", str(tmp_path / "other.pt"))
    assert taken.returncode == 2 and "--out: " in taken.stderr and "other.csv (the learning curve) exists" in taken.stderr
    curve = (tmp_path / "m.csv").read_text()
    taken = run_cli("train", "--steps", "3", "--source", "sample", "--quiet", "--out", str(tmp_path / "third.pt"),
                    "--log", str(tmp_path / "m.csv"))
    assert taken.returncode == 2 and "--log: " in taken.stderr and "m.csv (the learning curve) exists" in taken.stderr
    assert (tmp_path / "other.csv").read_text() == "keep" and (tmp_path / "m.csv").read_text() == curve
    assert not (tmp_path / "other.pt").exists() and not (tmp_path / "third.pt").exists()
    read = run_cli("recognize", "--model", str(out), str(tmp_path / "m.csv"))
    assert read.returncode == 2 and read.stderr.count("\n") == 1 and "Traceback" not in read.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--out", "m.pt"], "--steps, --minutes: give exactly one of them"),
    (["train", "--out", "m.pt", "--steps", "5", "--minutes", "1"], "--steps, --minutes: give exactly one of them"),
    (["train", "--out", "m.pt", "--minutes", "-1"], "--minutes: expected a number of minutes in (0, 1440]"),
    (["train", "--out", "m.pt", "--steps", "0"], "--steps: expected a positive int, got 0"),
    (["train", "--out", "m.pt", "--steps", "5", "--batch-size", "0"], "--batch-size: expected a positive int"),
    (["train", "--out", "m.pt", "--steps", "5", "--batch-size", "1000000"],
     "--batch-size: a step on 1,000,000 sequences 350 pixels wide needs about"),
    (["train", "--out", "m.pt", "--steps", "5", "--batch-size", "1000000"],  # it said "use a smaller batch_size"
     "; use a smaller --batch-size\n"),
    (["train", "--out", "m.pt", "--steps", "5", "--lr", "2"], "--lr: expected a learning rate in (0, 1)"),
    (["train", "--out", "m.pt", "--steps", "5", "--workers", "-1"], "--workers: expected an int >= 0"),
    (["train", "--out", "m.pt", "--steps", "5", "--workers", "1000"], "--workers: at most"),
    (["train", "--out", ".", "--steps", "5"], "--out: expected a file path for the model"),
    (["train", "--steps", "5"], "the following arguments are required: --out"),
    (["train", "--out", "s3://bucket/m.pt", "--steps", "2"], "--out: expected a local file path, got the URL 's3://bucket/m.pt'"),
    (["train", "--out", "m.pt", "--log", "gs://b/m.csv", "--steps", "2"], "--log: expected a local file path, got the URL"),
    (["train", "--out", "m.pt", "--log", ".", "--steps", "2", "--overwrite"],  # it said "log_path: '.' is a folder"
     "--log: . is a folder, expected a file for the learning curve"),
    (["train", "--out", "m.pt", "--log", ".", "--steps", "2"], "--log: . is a folder"),  # not "pass --overwrite"
    # a folder the model cannot go to is refused before training, not after it
    (["train", "--out", "/proc/nosuch/m.pt", "--steps", "2", "--source", "sample"],
     "--out: cannot create '/proc/nosuch': No such file or directory"),
    (["train", "--out", "/etc/hostname/m.pt", "--steps", "2", "--source", "sample"],
     "--out: '/etc/hostname' is a file, expected a folder"),
    (["train", "--out", "m.pt", "--log", "/proc/nosuch/m.csv", "--steps", "2", "--source", "sample"],
     "--log: cannot create '/proc/nosuch'"),
    (["train", "--out", "/proc/m.pt", "--steps", "2", "--source", "sample"],  # a folder that takes no files
     "--out: cannot write files in '/proc': No such file or directory"),
    (["train", "--out", "m.pt", "--log", "m.pt", "--steps", "2", "--source", "sample"],
     "--log: m.pt is the model's file (--out); give the learning curve another file"),
    (["train", "--out", "m.pt", "--log", "./m.pt.partial", "--steps", "2", "--source", "sample"],
     "--log: m.pt.partial is where the training keeps its state; give the learning curve another file"),
    (["train", "--out", "m.csv", "--steps", "2", "--source", "sample"],
     "--out: the learning curve goes to the model's name with .csv, here m.csv itself"),
    (["train", "--out", "m.pt", "--steps", "x"], "argument --steps: invalid int value: 'x'"),
    (["train", "--out", "m.pt", "--steps", "2", "--threads", "0"], "--threads: expected a positive int, got 0"),
    (["train", "--out", "m.pt", "--steps", "2", "--threads", "100000", "--source", "sample"],
     "--threads: at most"),
    (["recognize", "--model", "no-such-model.pt", "a.png"], "--model: no-such-model.pt is not a file"),
    (["recognize", "a.png"], "seqgen recognize: error: a.png: No such file or directory"),
])
def test_train_and_recognize_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.csv").exists()
    assert not any(p.name.endswith(":") for p in tmp_path.iterdir())  # no folder named after a URL's scheme


@pytest.mark.parametrize("args, message", [
    (["train", "--out", "m.pt", "--steps", "0"], "--steps: expected a positive int, got 0"),
    (["train", "--out", "m.pt", "--steps", "5", "--lr", "2"], "--lr: expected a learning rate in (0, 1)"),
    (["train", "--out", ".", "--steps", "5"], "--out: expected a file path for the model"),
    (["train", "--out", "m.pt", "--log", "m.pt", "--steps", "2"], "--log: m.pt is the model's file (--out)"),
    (["recognize", "--model", "no-such-model.pt", "a.png"], "--model: no-such-model.pt is not a file"),
    (["recognize", "empty"], "files: the folder empty holds no .png file"),
])
def test_a_bad_flag_is_refused_before_pytorch_loads(tmp_path, args, message):
    """Loading PyTorch takes seconds: a mistyped flag of train or recognize is said without waiting for it."""
    (tmp_path / "empty").mkdir()
    code = ("import sys; from seqgen.cli import main; status = main(sys.argv[1:]); "
            "print('torch' in sys.modules); sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ), check=False)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == "False\n"


def test_train_with_a_damaged_state_file_says_to_start_again(tmp_path):
    (tmp_path / "m.pt.partial").write_bytes(b"not a state")
    result = run_cli("train", "--out", "m.pt", "--steps", "2", "--source", "sample", "--quiet", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == (
        "seqgen train: error: --out: m.pt.partial is not a seqgen training state (PyTorch cannot read it as a file of weights); "
        "pass --overwrite to start again\n")
    assert (tmp_path / "m.pt.partial").read_bytes() == b"not a state"


def test_recognize_with_a_file_that_is_not_a_model(tmp_path, test_digits):
    from seqgen import generate_phone_numbers

    generate_phone_numbers(1, 200, source=test_digits, seed=0, output_path=tmp_path)
    png = str(next(tmp_path.glob("*.png")))
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage" * 100)
    result = run_cli("recognize", "--model", str(tmp_path / "garbage.pt"), png)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "--model:" in result.stderr and "is not a seqgen sequence model" in result.stderr


def test_shards_union_equals_the_whole_export(tmp_path):
    def export(folder, *extra):
        result = subprocess.run(
            [sys.executable, "-m", "seqgen", "phone", "--num-images", "2500", "--image-width", "100", "--seed", "9",
             "--source", "sample", "--quiet", "--output-dir", str(folder), *extra],
            capture_output=True, text=True, env=dict(os.environ))
        assert result.returncode == 0, result.stderr
        return result.stdout

    export(tmp_path / "whole")
    outputs = [export(tmp_path / "shards", "--shard", f"{k}/3") for k in (1, 2, 3)]
    assert "(part 2/3)" in outputs[1]
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").glob("*.png")}
    shards = {p.name: p.read_bytes() for p in (tmp_path / "shards").glob("*.png")}
    assert len(whole) == 2500 and shards == whole
    manifest = (tmp_path / "whole" / "labels.csv").read_text().splitlines()[1:]
    parts = [(tmp_path / "shards" / f"labels-{k}-of-3.csv").read_text().splitlines()[1:] for k in (1, 2, 3)]
    assert sum(parts, []) == manifest and all(parts)


def test_version_bare_command_and_empty_output_dir(tmp_path):
    from seqgen import __version__

    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"seqgen {__version__}"
    bare = run_cli()
    assert bare.returncode == 2 and bare.stderr.startswith("usage: seqgen") and "Traceback" not in bare.stderr
    empty = run_cli("phone", "--num-images", "2", "--image-width", "100", "--output-dir", "", cwd=tmp_path)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
    assert "--output-dir: expected a folder name, got an empty string" in empty.stderr
    assert not list(tmp_path.iterdir())  # nothing written into the current folder


def test_recognize_reads_the_good_files_reports_the_bad_and_takes_folders(tmp_path, test_digits):
    from seqgen import generate_phone_numbers

    _, labels = generate_phone_numbers(2, 300, (2, 10), source=test_digits, seed=8, output_path=tmp_path / "pngs")
    good = [str(tmp_path / "pngs" / f"{label}.png") for label in labels]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "pngs" / f"{labels[0]}.png").read_bytes()[:100])
    Image.fromarray(np.full((28, 100), 255, np.uint8)).save(tmp_path / "blank.png")
    Image.fromarray(np.zeros((28, 100), np.uint8)).save(tmp_path / "dark.png")
    Image.fromarray(np.full((28, 262_145), 255, np.uint8)).save(tmp_path / "wide.png")  # past the model's memory
    Image.fromarray(np.zeros((28, 3), np.uint8)).save(tmp_path / "narrow.png")  # less than one CTC frame
    result = run_cli("recognize", good[0], str(tmp_path / "bad.png"), good[1], str(tmp_path / "narrow.png"),
                     str(tmp_path / "blank.png"), str(tmp_path / "dark.png"), str(tmp_path / "wide.png"),
                     str(tmp_path / "cut.png"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [line.split("\t")[2] for line in result.stdout.splitlines()] == [
        good[0], good[1], str(tmp_path / "blank.png"), str(tmp_path / "dark.png")]
    assert f"{tmp_path / 'bad.png'}: not an image file that Pillow can read" in result.stderr
    assert f"{tmp_path / 'cut.png'}: a damaged image file (" in result.stderr  # it said only "image file is truncated"
    assert "4 of 8 files could not be read" in result.stderr
    assert "wide.png: 262,145 pixels wide; this model reads 4 to 262,144" in result.stderr
    assert "narrow.png: 3 pixels wide; this model reads 4 to 262,144" in result.stderr
    assert "blank.png: no ink found" in result.stderr and "dark.png: mostly dark" in result.stderr
    folder = run_cli("recognize", str(tmp_path / "pngs"))
    assert folder.returncode == 0 and [line.split("\t")[2] for line in folder.stdout.splitlines()] == sorted(good)
    (tmp_path / "empty").mkdir()
    empty = run_cli("recognize", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "holds no .png file" in empty.stderr and empty.stderr.count("\n") == 1


def test_requests_that_cannot_be_served_are_one_line(tmp_path):
    huge = run_cli("phone", "--num-images", "10000000000", "--image-width", "100", "--output-dir", str(tmp_path / "o"))
    assert huge.returncode == 2 and huge.stderr.count("\n") == 1 and "Traceback" not in huge.stderr
    assert "--num-images: at most 10,000,000 phone numbers per call" in huge.stderr and not (tmp_path / "o").exists()
    offline = run_cli("sequence", "--digits", "12", "--image-width", "80", "--source", "mnist",
                      "--output-dir", str(tmp_path / "p"))  # the tests run with SEQGEN_OFFLINE=1
    assert offline.returncode == 1 and offline.stderr.count("\n") == 1 and "Traceback" not in offline.stderr
    assert "SEQGEN_OFFLINE is set and the data set is not cached" in offline.stderr


def test_more_workers_than_cores_is_a_warning_not_an_error(tmp_path):
    from seqgen.parallel import available_cores

    many = str(available_cores() + 1)
    result = run_cli("phone", "--num-images", "4", "--image-width", "100", "--seed", "1", "--source", "sample",
                     "--quiet", "--shard-size", "2", "--workers", many, "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert f"warning: --workers {many} is more than this machine's {available_cores()} cores" in result.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


def test_an_export_that_cannot_be_met_is_one_line_and_exit_2(tmp_path):
    result = run_cli("phone", "--num-images", "20", "--image-width", "40", "--fit", "error", "--workers", "2",
                     "--seed", "1", "--source", "sample", "--format", "webdataset", "--output-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()  # one line: no log or traceback from the Dask workers
    assert len(lines) == 1 and re.fullmatch(r"seqgen phone: error: --image-width: a composed strip is \d+ px wide, "
                                            r"more than --image-width 40; use --fit shrink or stretch, a larger "
                                            r"width or a smaller --spacing \(the export stopped with 0 of 20 "
                                            r"images, recorded in .*; it cannot resume with the same arguments\)",
                                            lines[0]), lines


def test_a_damaged_source_folder_is_one_line_naming_the_flag_and_the_file(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"not an IDX file")
    result = run_cli("phone", "--num-images", "2", "--image-width", "200", "--source", str(tmp_path),
                     "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert re.fullmatch(r"seqgen phone: error: --source: .*train-images-idx3-ubyte.gz: wrong magic number "
                        r"6e6f7420; an IDX file starts with two zero bytes\n", result.stderr), result.stderr


def _full_disk(*_args, **_kw):
    import errno

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(("command", "where", "message"), [
    (["sequence", "--digits", "42", "--image-width", "60", "--source", "sample", "--output-dir", "{tmp}"], ("seqgen.io", "os.write"),
     "seqgen sequence: error: --output-dir: cannot write 42.png in {tmp} (No space left on device)"),
    (["sequence", "--digits", "42", "--image-width", "60", "--source", "sample", "--output-dir", "{tmp}"],
     ("seqgen.io", "tempfile.TemporaryFile"),  # the check that the folder takes files, before any work
     "seqgen sequence: error: --output-dir: cannot write files in '{tmp}': No space left on device"),
    (["train", "--steps", "3", "--batch-size", "4", "--workers", "0", "--threads", "1", "--source", "sample",
      "--quiet", "--out", "{tmp}/m.pt"], ("seqgen.train", "_save_state"),
     ("seqgen train: error: --out: cannot save the training's state in {tmp}/m.pt.partial (No space left on device); "
      "nothing was saved there: run the same command again to start it once the file can be written")),
])
def test_a_disk_that_fills_exits_1_not_the_status_of_bad_input(command, where, message, tmp_path, monkeypatch, capsys):
    # they exited 2, as if the arguments were wrong; `sequence` said only "[Errno 28] No space left on device"
    import importlib

    from seqgen import cli

    module, name = where
    target = importlib.import_module(module)
    *inner, name = name.split(".")
    monkeypatch.setattr(getattr(target, inner[0]) if inner else target, name, _full_disk)
    status = cli.main([part.format(tmp=tmp_path) for part in command])
    assert (status, capsys.readouterr().err) == (1, message.format(tmp=tmp_path) + "\n")
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary left


def test_a_model_that_cannot_be_written_is_kept_for_the_same_command_to_save(tmp_path, monkeypatch, capsys):
    import errno

    from seqgen import cli
    from seqgen.model import SequenceRecognizer

    out = tmp_path / "m.pt"
    command = ["train", "--steps", "3", "--batch-size", "4", "--workers", "0", "--threads", "1", "--source",
               "sample", "--quiet", "--out", str(out)]
    real_save = SequenceRecognizer.save

    def full_disk(self, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(SequenceRecognizer, "save", full_disk)
    assert cli.main(command) == 1  # the machine failed, not the request: not the status of bad input
    err = capsys.readouterr().err
    assert err == (f"seqgen train: error: --out: cannot write {out} (No space left on device); the trained model is "
                   f"kept in {out}.partial: run the same command again to save it once the file can be written\n")
    assert not out.exists() and (tmp_path / "m.pt.partial").exists()
    monkeypatch.setattr(SequenceRecognizer, "save", real_save)  # room again
    assert cli.main(command) == 0
    assert out.exists() and not (tmp_path / "m.pt.partial").exists()
    assert SequenceRecognizer.load(out).training["steps"] == 3


def test_an_interrupted_training_resumes_to_the_uninterrupted_model(tmp_path):
    import signal
    import time

    import torch

    def command(out, *extra):
        return [sys.executable, "-m", "seqgen", "train", "--steps", "150", "--batch-size", "8", "--source", "sample",
                "--workers", "1", "--quiet", "--out", str(out), *extra]

    whole = subprocess.run(command(tmp_path / "whole.pt"), capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "cut" / "m.pt"
    process = subprocess.Popen(command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.with_suffix(".csv").exists()
                                               and len(out.with_suffix(".csv").read_text().splitlines()) > 1):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the DataLoader worker gets it too
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert re.fullmatch(r"seqgen train: interrupted: training stopped after step \d+ of 150; its state is saved in "
                        r".*m.pt.partial: run the same command again to resume it\n", err), err
    assert not out.exists() and (tmp_path / "cut" / "m.pt.partial").exists()

    other = run_cli(*command(out, "--seed", "1")[3:])  # another training into the same --out is refused
    assert other.returncode == 2 and other.stderr == (
        f"seqgen train: error: --out: {out}.partial holds a training with other settings (it differs in --seed); "
        "run the command that started it, or pass --overwrite to start again\n")
    again = subprocess.run(command(out), capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "cut" / "m.pt.partial").exists()
    ours, theirs = (torch.load(p, weights_only=True)["state_dict"] for p in (out, tmp_path / "whole.pt"))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    curve = [line.split(",") for line in out.with_suffix(".csv").read_text().splitlines()]
    assert [row[0] for row in curve] == ["step", "50", "100", "150"]


def test_recognize_takes_a_folders_pngs_in_any_case_and_only_files(tmp_path, test_digits, capsys):
    # scanners and cameras write IMG.PNG: a folder of them "held no .png file"; a folder named x.png was read
    from seqgen import cli, generate_phone_numbers

    _, labels = generate_phone_numbers(2, 300, (2, 10), source=test_digits, seed=8, output_path=tmp_path / "pngs")
    first, second = (tmp_path / "pngs" / f"{label}.png" for label in labels)
    first.rename(tmp_path / "pngs" / "A.PNG")
    second.rename(tmp_path / "pngs" / "b.Png")
    (tmp_path / "pngs" / "c.png").mkdir()
    (tmp_path / "pngs" / "._A.PNG").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata beside A.PNG: was "not a PNG"
    assert cli.main(["recognize", "--quiet", str(tmp_path / "pngs")]) == 0
    out, err = capsys.readouterr()
    assert [line.split("\t")[2] for line in out.splitlines()] == [str(tmp_path / "pngs" / n) for n in ("A.PNG", "b.Png")]
    assert [line.split("\t")[0] for line in out.splitlines()] == list(labels) and err == ""
    (tmp_path / "pngs" / "A.PNG").rename(tmp_path / "pngs" / ".A.png")  # named, a hidden file is read
    assert cli.main(["recognize", "--quiet", str(tmp_path / "pngs" / ".A.png")]) == 0
    assert capsys.readouterr().out.split("\t")[0] == labels[0]


def test_recognize_reads_and_prints_a_batch_at_a_time(tmp_path, test_digits, monkeypatch, capsys):
    from seqgen import cli, cli_models, generate_phone_numbers
    from seqgen.model import SequenceRecognizer

    _, labels = generate_phone_numbers(5, 300, (2, 10), source=test_digits, seed=8, output_path=tmp_path / "pngs")
    (tmp_path / "pngs" / "0bad.png").write_bytes(b"not a png")  # sorted in among the good ones
    assert cli.main(["recognize", "--quiet", str(tmp_path / "pngs")]) == 1
    whole = capsys.readouterr()
    batches = []
    read = SequenceRecognizer.predict_with_confidence
    monkeypatch.setattr(SequenceRecognizer, "predict_with_confidence",
                        lambda self, images: batches.append(len(images)) or read(self, images))
    monkeypatch.setattr(cli_models, "READ_PIXELS", 2 * 28 * 300)
    assert cli.main(["recognize", "--quiet", str(tmp_path / "pngs")]) == 1
    in_batches = capsys.readouterr()
    assert batches == [2, 2, 1]  # never more than the budget's worth of images held at once
    assert in_batches.out == whole.out and len(whole.out.splitlines()) == 5
    assert [line.split("\t")[2] for line in whole.out.splitlines()] == sorted(
        str(tmp_path / "pngs" / f"{label}.png") for label in labels)
    assert in_batches.err == whole.err and "1 of 6 files could not be read" in whole.err
