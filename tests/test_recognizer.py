"""The baseline recognizer: reads sequences, fails clearly, saves and loads, CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from seqgen import generate_numbers_sequence, generate_phone_numbers
from seqgen.recognizer import BaselineRecognizer, edit_distance, evaluate_grid, native_width, score


@pytest.fixture(scope="module")
def small_model(train_digits):
    return BaselineRecognizer(copies=1).fit(train_digits.subset(per_class=120), seed=0)


def test_small_fit_reads_clean_wide_spaced_sequences(small_model, test_digits):
    images, labels = generate_phone_numbers(60, 320, (6, 12), source=test_digits, seed=0)
    scores = small_model.evaluate(images, labels)
    assert scores["n"] == 60 and scores["char_accuracy"] >= 0.90
    exact = np.mean([p == t for p, t in zip(small_model.predict(images), labels)])
    assert scores["sequence_accuracy"] == exact


def test_blank_image_reads_as_empty(small_model):
    assert small_model.predict(np.ones((2, 28, 90), np.float32)) == ["", ""]


def test_predict_accepts_a_channel_axis_of_one(small_model, test_digits):
    images, _ = generate_phone_numbers(4, 200, source=test_digits, seed=2)
    assert small_model.predict(images[..., None]) == small_model.predict(images)
    assert small_model.predict([im[..., None] for im in images]) == small_model.predict(images)


def test_predict_accepts_a_list_of_widths(small_model, test_digits):
    a = generate_numbers_sequence("123", 90, (8, 8), source=test_digits, seed=1)
    b = generate_numbers_sequence("4567", 150, (8, 8), source=test_digits, seed=1)
    out = small_model.predict([a, b])
    assert len(out) == 2 and all(s.isdigit() for s in out)


@pytest.mark.parametrize(
    "images, error, pattern",
    [
        (np.ones((2, 27, 90), np.float32), ValueError, r"images: expected shape \(N, 28, W\) or \(N, 28, W, 1\), got \(2, 27, 90\)"),
        (np.ones((28, 90), np.float32), ValueError, r"images: expected shape \(N, 28, W\)"),
        (np.full((1, 28, 90), 255, np.uint8), TypeError, "images: expected float images in \\[0, 1\\]"),
        (np.full((1, 28, 90), 2.0, np.float32), ValueError, r"images: expected values in \[0, 1\] .*, got values from 2 to 2$"),
        (np.full((1, 28, 90), np.nan, np.float32), ValueError, r"images: expected values in \[0, 1\] .*, got NaN$"),
        ([np.ones((28, 50), np.float32), np.array([[np.nan] * 50] + [[1.0] * 50] * 27)], ValueError, "got NaN$"),
        ("image.png", TypeError, "images: expected an \\(N, 28, W\\) array"),
        (np.ones((2, 28, 90, 3), np.float32), ValueError, r"images: expected shape \(N, 28, W\) or \(N, 28, W, 1\), got \(2, 28, 90, 3\)"),
        ([np.ones((28, 90, 1), np.float32), np.ones((90,), np.float32)], ValueError, r"got one of shape \(90,\)$"),
    ],
)
def test_bad_images_are_clear_errors(small_model, images, error, pattern):
    with pytest.raises(error, match=pattern):
        small_model.predict(images)


def test_unfitted_model_and_bad_labels(small_model):
    with pytest.raises(RuntimeError, match="call fit"):
        BaselineRecognizer().predict(np.ones((1, 28, 50), np.float32))
    with pytest.raises(ValueError, match="labels: expected 1 labels, got 2"):
        small_model.evaluate(np.ones((1, 28, 50), np.float32), ["1", "2"])
    with pytest.raises(TypeError, match="labels: expected a sequence of digit strings, got one str '12'; wrap it"):
        score(["1", "2"], "12")  # would be two labels of one digit each
    with pytest.raises(TypeError, match="predicted: expected a sequence of digit strings, got one str"):
        score("12", ["1", "2"])


def test_save_load_round_trip(small_model, test_digits, tmp_path):
    images, _ = generate_phone_numbers(20, 250, source=test_digits, seed=4, augment="light")
    path = small_model.save(tmp_path / "models" / "r.pkl")
    loaded = BaselineRecognizer.load(path)
    assert loaded.predict(images) == small_model.predict(images)
    assert loaded.trained_on == "sample/train"
    (tmp_path / "junk.pkl").write_bytes(__import__("pickle").dumps([1, 2]))
    with pytest.raises(ValueError, match="is not a seqgen recognizer file"):
        BaselineRecognizer.load(tmp_path / "junk.pkl")


def test_edit_distance_and_char_accuracy():
    assert edit_distance("0123", "0123") == 0
    assert edit_distance("0123", "023") == 1  # a missing digit
    assert edit_distance("0123", "01233") == 1  # an extra digit
    assert edit_distance("0123", "0923") == 1 and edit_distance("", "12") == 2


def _levenshtein(a: str, b: str) -> int:
    """The textbook recursion, memoised: the reference rapidfuzz's distance is checked against."""
    import functools

    @functools.cache
    def d(i: int, j: int) -> int:
        if not i or not j:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def test_edit_distance_matches_the_textbook_recursion():
    rng = np.random.default_rng(0)
    pairs = [("".join(map(str, rng.integers(0, 3, rng.integers(0, 9)))),
              "".join(map(str, rng.integers(0, 3, rng.integers(0, 9))))) for _ in range(300)]
    assert [edit_distance(a, b) for a, b in pairs] == [_levenshtein(a, b) for a, b in pairs]


@pytest.mark.parametrize(
    ("predicted", "labels", "error", "message"),
    [
        ([12], ["12"], TypeError, r"predicted: expected digit strings, got 12 \(int\) at position 0"),
        (["1", None], ["1", "2"], TypeError, r"predicted: expected digit strings, got None \(NoneType\) at position 1"),
        ([], [], ValueError, "labels: expected at least one label to score, got none"),  # was char 1.0, sequence 0.0
    ],
)
def test_score_refuses_what_it_cannot_score(predicted, labels, error, message):
    with pytest.raises(error, match="^" + message):
        score(predicted, labels)


def test_native_width_checks_its_arguments():
    assert native_width((2, 10)) == 11 * 28 + 10 * 10 and native_width((-2, 0), digits=3) == 84
    with pytest.raises(TypeError, match=r"spacing_range: expected a pair \(lo, hi\) of ints"):
        native_width(10)
    with pytest.raises(ValueError, match=r"spacing_range: lo must not exceed hi"):
        native_width((5, 2))
    with pytest.raises(ValueError, match="digits: expected a positive int, got 0"):
        native_width((2, 10), digits=0)


def test_grid_uses_held_out_digits_only(small_model, train_digits, test_digits):
    with pytest.raises(ValueError, match="test_digits: expected a test split"):
        evaluate_grid(small_model, train_digits)
    rows = evaluate_grid(small_model, test_digits, n=5, spacings=[(2, 10)], widths=["native", 200], augments=[None])
    assert [(r["width"], r["augment"], r["n"]) for r in rows] == [("native", "none", 5), (200, "none", 5)]
    assert native_width((2, 10)) == 11 * 28 + 100


class _Counting:
    """A recognizer that reads nothing and counts its calls."""

    def __init__(self):
        self.calls = 0

    def evaluate(self, images, labels):
        self.calls += 1
        return score(["0"] * len(labels), labels)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n": 0}, ValueError, "n: expected a positive int, got 0"),
    ({"seed": -1}, ValueError, "seed: expected a non-negative int, got -1"),
    ({"spacings": (2, 10)}, TypeError, r"spacings: expected a list of \(lo, hi\) pairs, got one pair \(2, 10\); wrap"),
    ({"spacings": []}, TypeError, r"spacings: expected a non-empty list of \(lo, hi\) pairs, got \[\]"),
    ({"spacings": [(2, 10), (5, 2)]}, ValueError, r"^spacings\[1\]: lo must not exceed hi, got \(5, 2\)$"),
    ({"spacings": [(0, 900)]}, ValueError, r"^spacings\[0\]: 11 digits with gaps up to 900 px can be 9308 px wide"),
    ({"widths": "native"}, TypeError, "widths: expected a non-empty list of widths \\(ints or 'native'\\), got 'native'"),
    ({"widths": [200, "wide"]}, TypeError, r"^widths\[1\]: expected a positive int or 'native', got 'wide'$"),
    ({"widths": [9000]}, ValueError, r"^widths\[0\]: at most 8192 pixels, got 9000$"),
    ({"augments": [None, "wild"]}, ValueError, r"^augments\[1\]: expected None, a Pipeline or one of 'light'"),
    ({"augments": None}, TypeError, "augments: expected a non-empty list of presets or None, got None"),
])
def test_bad_grids_are_refused_before_any_cell_is_read(test_digits, kwargs, error, message):
    recognizer = _Counting()
    with pytest.raises(error, match=message):
        evaluate_grid(recognizer, test_digits, **({"n": 2} | kwargs))
    assert recognizer.calls == 0
    with pytest.raises(TypeError, match=r"test_digits: expected a DigitSet \(load_mnist\('test'\)\), got str"):
        evaluate_grid(recognizer, "test")
    with pytest.raises(TypeError, match="recognizer: expected a fitted recognizer with evaluate"):
        evaluate_grid("model.pt", test_digits)
    rows = evaluate_grid(recognizer, test_digits, n=2, spacings=[(2, 10)], widths=[200], augments=[None])
    assert recognizer.calls == 1 and rows[0]["char_accuracy"] == pytest.approx(1 / 11)  # every read is "0"


def test_cli_recognize_baseline_trains_once_then_uses_the_cache(tmp_path, test_digits):
    images, labels = generate_phone_numbers(2, 300, (4, 8), source=test_digits, seed=3, output_path=tmp_path / "png")
    files = [str(tmp_path / "png" / f"{label}.png") for label in labels]
    env = dict(os.environ, SEQGEN_DATA_DIR=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "seqgen", "recognize", "--model", "baseline"]
    first = subprocess.run([*command, *files], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert "training the baseline recognizer" in first.stderr
    rows = [line.split("\t") for line in first.stdout.splitlines()]
    assert [row[2] for row in rows] == files and [row[1] for row in rows] == ["-", "-"]  # no confidence
    assert all(len(row[0]) == 11 for row in rows)
    assert list((tmp_path / "cache").glob("recognizer-*.pkl"))
    second = subprocess.run([*command, "--quiet", *files], capture_output=True, text=True, env=env)
    assert second.returncode == 0 and second.stdout == first.stdout and "training" not in second.stderr
    cached = next((tmp_path / "cache").glob("recognizer-*.pkl"))
    cached.write_bytes(cached.read_bytes()[:100])  # a truncated cache entry
    third = subprocess.run([*command, *files], capture_output=True, text=True, env=env)
    assert third.returncode == 0 and third.stdout == first.stdout and "is damaged; training it again" in third.stderr
    fourth = subprocess.run([*command, "--quiet", *files], capture_output=True, text=True, env=env)
    assert fourth.returncode == 0 and fourth.stdout == first.stdout  # rebuilt once, never fatal twice


def test_a_baseline_that_cannot_be_cached_still_reads(train_digits, test_digits, monkeypatch):
    import errno

    from seqgen import data, recognizer

    monkeypatch.setattr(data, "load_mnist", lambda split, **kwargs: train_digits)  # what "auto" gives offline
    fit, few = recognizer.BaselineRecognizer.fit, train_digits.subset(per_class=30)
    monkeypatch.setattr(recognizer.BaselineRecognizer, "fit", lambda self, digits, seed=0: fit(self, few, seed))

    def full_disk(self, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(recognizer.BaselineRecognizer, "save", full_disk)
    with pytest.warns(RuntimeWarning, match=r"the baseline recognizer could not be cached in .*recognizer-.*\.pkl "
                                            r"\(No space left on device\); it is trained again at its next use"):
        reader = recognizer.default_recognizer(progress=lambda message: None)
    images, _ = generate_phone_numbers(3, 300, (4, 8), source=test_digits, seed=3)
    assert [len(read) for read in reader.predict(images)] == [11, 11, 11]
    assert not list(data.cache_dir().glob("recognizer-*.pkl"))


def test_the_baseline_cache_key_follows_the_training_jitter(train_digits, monkeypatch):
    """A cached baseline trained on copies that today's augmentation code would draw differently is not reused."""
    from seqgen import recognizer
    from seqgen.augment import functional

    before = recognizer._jitter_fingerprint(train_digits)
    assert before == recognizer._jitter_fingerprint(train_digits) and len(before) == 12
    remap = functional._remap_row
    monkeypatch.setattr(functional, "_remap_row", lambda *args: remap(*args) // 2)
    assert recognizer._jitter_fingerprint(train_digits) != before


def test_saving_to_a_url_is_refused_not_made_into_a_folder(small_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="^path: expected a local file path, got the URL 'gs://b/r.pkl'$"):
        small_model.save("gs://b/r.pkl")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_no_temporary(small_model, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("seqgen.io.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        small_model.save(tmp_path / "r.pkl")
    assert list(tmp_path.iterdir()) == []


def test_a_saved_recognizer_is_readable_like_any_output(small_model, tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = small_model.save(tmp_path / "r.pkl")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not private to its writer, as mkstemp makes it
    small_model.save(path)  # saved again: replaced
    assert [p.name for p in tmp_path.iterdir()] == ["r.pkl"]


def test_a_folder_or_missing_file_is_refused_by_name(small_model, tmp_path):
    with pytest.raises(ValueError, match=r"^path: '.*' is a folder, expected a file$"):
        small_model.save(tmp_path)
    with pytest.raises(ValueError, match=r"^path: .*missing.pkl is not a file$"):
        BaselineRecognizer.load(tmp_path / "missing.pkl")
    with pytest.raises(ValueError, match=r"^path: .* is not a file$"):
        BaselineRecognizer.load(tmp_path)


def test_cli_recognize_bad_file(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "tall.png")
    for path, message in [(tmp_path / "tall.png", "expected an image 28 pixels high, got 30"),
                          (tmp_path / "missing.png", "No such file")]:
        result = subprocess.run([sys.executable, "-m", "seqgen", "recognize", str(path)], capture_output=True, text=True)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr


def test_a_damaged_or_foreign_file_is_a_value_error_that_names_it(tmp_path):
    # Pillow's "Truncated File Read" or "broken data stream when reading image file" named no file, so
    # `seqgen recognize FOLDER` could not say which of its files was damaged
    import io

    from PIL import Image

    from seqgen.recognizer import read_png

    encoded = io.BytesIO()
    Image.fromarray(np.full((28, 60), 255, np.uint8)).save(encoded, "PNG")
    whole = encoded.getvalue()
    damaged = bytearray(whole)
    damaged[whole.index(b"IDAT") + 6] ^= 0xFF  # inside the compressed pixels
    cases = {"truncated.png": whole[:60], "damaged.png": bytes(damaged), "text.png": b"not an image"}
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ValueError) as info:
            read_png(tmp_path / name)
        expected = "not an image file that Pillow can read" if name == "text.png" else "a damaged image file ("
        assert str(info.value).startswith(f"{tmp_path / name}: {expected}"), str(info.value)
    with pytest.raises(FileNotFoundError):  # the file system's errors stay OSErrors, for the caller to word
        read_png(tmp_path / "missing.png")


def test_16_bit_colour_and_transparent_pngs_read_as_the_same_image(tmp_path, test_digits):
    from PIL import Image

    from seqgen.recognizer import read_png

    grey = np.rint(generate_numbers_sequence("0123456789", 300, (2, 10), source=test_digits, seed=0) * 255)
    Image.fromarray(grey.astype(np.uint8)).save(tmp_path / "8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "16.png")  # 0-255 onto 0-65535
    Image.fromarray(grey.astype(np.uint8)).convert("RGB").save(tmp_path / "rgb.png")
    Image.fromarray(grey.astype(np.int32) * 257).save(tmp_path / "32.tif")  # opens in mode I, as older Pillows open 16.png
    assert Image.open(tmp_path / "16.png").mode == "I;16" and Image.open(tmp_path / "32.tif").mode == "I"
    eight = read_png(tmp_path / "8.png")
    assert eight.dtype == np.float32 and eight.shape == (28, 300) and eight.min() < 0.1  # ink, not blank paper
    for other in ("16.png", "32.tif", "rgb.png"):
        image = read_png(tmp_path / other)
        assert image.dtype == np.float32 and np.abs(image - eight).max() < 1e-6, other
    # black ink whose darkness is its opacity, on transparent paper: a viewer shows it on white
    ink = (255 - grey).astype(np.uint8)
    Image.fromarray(np.stack([np.zeros_like(ink), ink], -1), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.stack([np.zeros_like(ink)] * 3 + [ink], -1), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(grey.astype(np.uint8)).convert("RGBA").save(tmp_path / "opaque.png")
    for other in ("la.png", "rgba.png", "opaque.png"):
        assert np.abs(read_png(tmp_path / other) - eight).max() <= 1 / 255 + 1e-6, other
    # seqgen's own float32 image saved by Pillow (a mode F TIFF) read as 0 or 1/255 everywhere: "mostly dark"
    image = generate_numbers_sequence("0123456789", 300, (2, 10), source=test_digits, seed=0)
    Image.fromarray(image).save(tmp_path / "float.tif")
    Image.fromarray(image * 255).save(tmp_path / "float-255.tif")  # Pillow's own scale for mode F
    assert Image.open(tmp_path / "float.tif").mode == "F"
    assert np.array_equal(read_png(tmp_path / "float.tif"), image)
    assert np.abs(read_png(tmp_path / "float-255.tif") - image).max() < 1e-6
    Image.fromarray(np.full((28, 5), np.nan, np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match="nan.tif: a float image with NaN or infinite pixels"):
        read_png(tmp_path / "nan.tif")
    # 16-bit grey whose darkest ink is marked transparent (tRNS): that ink is paper, as a viewer shows it
    darkest = int(grey.min()) * 257
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "16-trns.png", transparency=darkest)
    see_through = read_png(tmp_path / "16-trns.png")
    assert (see_through[grey * 257 == darkest] == 1.0).all() and (grey * 257 == darkest).any()
    assert np.array_equal(see_through[grey * 257 != darkest], eight[grey * 257 != darkest])
