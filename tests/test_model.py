"""The CTC sequence model: shapes, decoding, save/load and refusals, and the shipped checkpoint."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch

from seqgen import generate_phone_numbers
from seqgen.dataset import BLANK, NUM_CLASSES
from seqgen.model import CRNN, SequenceRecognizer, greedy_decode, output_length, shipped_model_path


@pytest.fixture(scope="module")
def small():
    """An untrained model (decoding and file handling do not need a trained one)."""
    return SequenceRecognizer(channels=(4, 8, 8), hidden=8, features=16, seed=3)


@pytest.mark.parametrize("width", [96, 200, 301, 1000])
def test_one_column_of_scores_per_four_pixels_for_any_width(width):
    model = CRNN().eval()
    with torch.inference_mode():
        out = model(torch.rand(3, 28, width))
    assert out.shape == (3, width // 4, NUM_CLASSES) == (3, output_length(width), 11)
    np.testing.assert_allclose(out.exp().sum(-1).numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("seed, error, message", [
    (np.random.default_rng(0), TypeError, "^seed: expected an int >= 0, got Generator"),
    (True, TypeError, "^seed: expected an int >= 0, got True$"),
    (-1, ValueError, "^seed: expected an int >= 0, got -1$"),
    (2**64, ValueError, r"^seed: expected an int below 2\*\*64, got 18446744073709551616$"),
])
def test_seed_must_be_an_int_torch_can_take(seed, error, message):
    with pytest.raises(error, match=message):
        SequenceRecognizer(seed=seed)
    assert SequenceRecognizer(channels=(4, 8, 8), hidden=8, features=16, seed=np.uint64(2**64 - 1)).model is not None


def test_default_model_is_small():
    assert 100_000 < SequenceRecognizer().num_parameters < 1_000_000


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [  # each used to reach torch ("hidden_size must be greater than zero"), or int() truncated it
        ({"hidden": -1}, ValueError, "hidden: expected a positive int, got -1"),
        ({"features": 1.5}, TypeError, "features: expected a positive int, got 1.5"),
        ({"channels": (16, 32.5, 64)}, TypeError, "channels: expected a positive int, got 32.5"),
        ({"channels": (16, 32)}, TypeError, r"channels: expected three positive ints \(one per convolution\), got \(16, 32\)"),
        ({"hidden": 10**6}, ValueError, (r"channels, hidden, features: a model of 8,00\d,\d{3},\d{3},\d{3} weights "
                                         r"needs [\d,.]+ GiB in memory, more than this machine's")),
    ],
)
def test_model_sizes_are_checked_before_any_weight_is_made(kwargs, error, message):
    with pytest.raises(error, match="^" + message):
        SequenceRecognizer(**kwargs)


@pytest.mark.parametrize("sizes", [{}, {"channels": (4, 8, 8), "hidden": 8, "features": 16}, {"hidden": 7}])
def test_the_memory_check_counts_the_weights_the_model_has(sizes, monkeypatch):
    counted = []
    monkeypatch.setattr("seqgen.validation.within_memory",
                        lambda need, names, what, advice: counted.append(int(what.split()[3].replace(",", ""))))
    recognizer = SequenceRecognizer(**sizes)
    assert counted == [recognizer.num_parameters]


def _table(path: list[int], p: float = 0.9) -> np.ndarray:
    """Log-probabilities whose best path is ``path``, each column's best at probability ``p``."""
    table = np.full((1, len(path), NUM_CLASSES), (1 - p) / (NUM_CLASSES - 1))
    table[0, np.arange(len(path)), path] = p
    return np.log(table)


@pytest.mark.parametrize("path, expected", [
    ([BLANK, 1, 1, BLANK, 1, 2, 2, BLANK], "112"),   # a blank separates the repeated 1s
    ([3, 3, 3], "3"),                                  # repeats merge
    ([BLANK] * 5, ""),                                 # all blank reads nothing
    ([0, BLANK, 0, BLANK, 0], "000"),
    ([7, 8, 9, BLANK, 0], "7890"),
])
def test_greedy_decoding_merges_repeats_and_drops_blanks(path, expected):
    strings, confidence = greedy_decode(_table(path, p=0.999))
    assert strings == [expected]
    assert confidence[0] == pytest.approx(0.999 ** len(path), rel=1e-3)  # one alignment carries it all


def test_confidence_sums_over_the_alignments_of_the_read():
    # Column 1 is "1" at 0.6 or blank at 0.4, column 2 is "1": "1" is read by the
    # paths (1, 1), (blank, 1), whose probabilities add up to 1 (the best path has 0.6).
    table = np.full((1, 2, NUM_CLASSES), 1e-12)
    table[0, 0, 1], table[0, 0, BLANK], table[0, 1, 1] = 0.6, 0.4, 1.0
    strings, confidence = greedy_decode(np.log(table))
    assert strings == ["1"] and confidence[0] == pytest.approx(1.0, abs=1e-6)
    table[0, 1, 1], table[0, 1, 7] = 0.7, 0.3  # now the "1" may be a "7"
    strings, confidence = greedy_decode(np.log(table))
    assert strings == ["1"] and confidence[0] == pytest.approx(0.6 * 0.7 + 0.4 * 0.7, abs=1e-6)


def test_greedy_decoding_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match=r"log_probs: expected shape \(B, T, 11\)"):
        greedy_decode(np.zeros((2, 5, 10)))


def test_inference_with_batch_norm_folded_reads_as_the_training_model(small, test_digits):
    images, _ = generate_phone_numbers(6, 160, source=test_digits, seed=0)
    model = SequenceRecognizer(seed=1).model.eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
    recognizer = SequenceRecognizer(seed=1)
    recognizer.model.load_state_dict(model.state_dict())
    recognizer.model.eval()
    with torch.inference_mode():
        direct = model(torch.from_numpy(images)).numpy()
    folded = np.stack(recognizer.log_probs(images))
    np.testing.assert_allclose(folded, direct, atol=1e-4)


def test_predictions_for_mixed_widths_keep_the_input_order(small, test_digits):
    a, _ = generate_phone_numbers(2, 120, source=test_digits, seed=0)
    b, _ = generate_phone_numbers(2, 200, source=test_digits, seed=1)
    images = [a[0], b[0], a[1], b[1]]
    scores = small.log_probs(images)
    assert [s.shape[0] for s in scores] == [30, 50, 30, 50]
    np.testing.assert_allclose(scores[1], small.log_probs([b[0]])[0], atol=1e-5)  # batch size may move the last bit


def test_batches_of_wide_images_stay_within_the_pixel_budget(small, monkeypatch):
    import seqgen.model

    shapes = []
    model = small._inference_model()
    monkeypatch.setattr(small, "_inference_model", lambda: lambda x: shapes.append(tuple(x.shape)) or model(x))
    monkeypatch.setattr(seqgen.model, "PREDICT_PIXELS", 28 * 1000)  # 1,000 columns a batch
    monkeypatch.setattr(small, "max_width", 1000)
    images = np.ones((5, 28, 300), np.float32)
    images[:, 10:18, 40:260:20] = 0.0
    scores = small.log_probs(images)
    assert shapes == [(3, 28, 300), (2, 28, 300)]
    np.testing.assert_allclose(scores[4], small.log_probs(images[4:])[0], atol=1e-5)
    with pytest.raises(ValueError, match="images: expected images at most 1,000 pixels wide .*, got 1,001"):
        small.predict([np.ones((28, 100), np.float32), np.ones((28, 1001), np.float32)])
    assert shapes == [(3, 28, 300), (2, 28, 300), (1, 28, 300)]  # refused before any image was read


def test_bad_images_are_refused(small):
    with pytest.raises(ValueError, match="images: expected shape"):
        small.predict(np.ones((2, 27, 100), np.float32))
    with pytest.raises(ValueError, match="at least 4 pixels wide"):
        small.predict(np.ones((1, 28, 3), np.float32))


def test_channels_last_batches_read_as_the_same_images(test_digits):
    from seqgen import DataGenerator

    model = SequenceRecognizer.load(shipped_model_path())
    options = {"batch_size": 6, "image_width": 200, "length": (5, 8), "source": test_digits, "split": "test",
               "seed": 5}
    x, _ = DataGenerator(channels_last=True, **options)[0]
    plain, _ = DataGenerator(**options)[0]
    assert x.shape == (6, 28, 200, 1)
    reads = model.predict(x)
    assert reads == model.predict(plain) == model.predict(list(x)) and any(reads)
    np.testing.assert_array_equal(model.log_probs(x)[2], model.log_probs(plain)[2])
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 28, W\) or \(N, 28, W, 1\), got \(6, 28, 200, 3\)"):
        model.predict(np.repeat(x, 3, axis=3))
    with pytest.raises(ValueError, match=r"images: expected \(28, W\) or \(28, W, 1\) arrays, got one of shape \(28, 200, 2\)"):
        model.predict([plain[0], np.repeat(x[1], 2, axis=2)])


def test_save_and_load_give_the_same_reads(small, tmp_path, test_digits):
    images, _ = generate_phone_numbers(8, 200, source=test_digits, seed=2)
    small.training = {"steps": 3}
    path = small.save(tmp_path / "m.pt")
    again = SequenceRecognizer.load(path)
    assert again.model.config == small.model.config and again.training == {"steps": 3}
    before, after = small.predict_with_confidence(images), again.predict_with_confidence(images)
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left


def test_a_saved_model_is_readable_like_any_output_and_a_folder_is_refused(small, tmp_path, monkeypatch):
    umask = os.umask(0o022)
    os.umask(umask)
    path = small.save(tmp_path / "m.pt")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(ValueError, match=r"^path: '.*' is a folder, expected a file$"):
        small.save(tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("seqgen.io.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        small.save(tmp_path / "again.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left


def test_saving_to_a_url_is_refused_not_made_into_a_folder(small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="^path: expected a local file path, got the URL 's3://bucket/m.pt'$"):
        small.save("s3://bucket/m.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_model_is_refused(tmp_path, small):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all" * 10)
    unreadable = "is not a seqgen sequence model \\(PyTorch cannot read it as a file of weights\\)$"
    with pytest.raises(ValueError, match=f"garbage.pt {unreadable}"):
        SequenceRecognizer.load(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(small.save(tmp_path / "whole.pt").read_bytes()[:2000])
    with pytest.raises(ValueError, match=f"truncated.pt {unreadable}"):
        SequenceRecognizer.load(truncated)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt is not a seqgen sequence model \(an empty file\)$"):
        SequenceRecognizer.load(tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="is not a file"):
        SequenceRecognizer.load(tmp_path / "missing.pt")


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_loading_never_unpickles_arbitrary_objects(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"architecture": "seqgen-crnn", "format": 1, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="is not a seqgen sequence model"):
        SequenceRecognizer.load(path)
    assert "unpickled!" not in capsys.readouterr().out
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"model": _Payload()}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="is not a seqgen sequence model"):
            SequenceRecognizer.load(plain)
    assert "unpickled!" not in capsys.readouterr().out
    # torch warns that the pickle's protocol may be unknown to its safe loader; the error says all that matters
    assert [str(w.message) for w in caught] == []


def test_a_file_of_another_architecture_is_refused(tmp_path, small):
    other = tmp_path / "other.pt"
    torch.save({"format": 1, "architecture": "something-else", "state_dict": {}}, other)
    with pytest.raises(ValueError, match="no 'seqgen-crnn' header"):
        SequenceRecognizer.load(other)
    mismatched = tmp_path / "mismatched.pt"
    state = {"format": 1, "architecture": "seqgen-crnn", "config": {"channels": [4, 8, 8], "hidden": 9,
                                                                    "features": 16},
             "state_dict": small.model.state_dict()}
    torch.save(state, mismatched)
    with pytest.raises(ValueError, match="does not match the seqgen-crnn architecture"):
        SequenceRecognizer.load(mismatched)
    newer = tmp_path / "newer.pt"
    torch.save({**state, "format": 99}, newer)
    with pytest.raises(ValueError, match="file format 99"):
        SequenceRecognizer.load(newer)


def test_shipped_checkpoint_reads_held_out_phone_numbers(test_digits):
    path = shipped_model_path()
    assert path.is_file() and path.stat().st_size <= 5 * 2**20
    model = SequenceRecognizer.load(path)
    assert model.trained_on == "sample/train" and model.num_parameters < 1_000_000
    images, labels = generate_phone_numbers(100, 300, (2, 10), source=test_digits, seed=123)
    reads, confidence = model.predict_with_confidence(images)
    scores = model.evaluate(images, labels)
    assert scores["char_accuracy"] >= 0.95  # the benchmark's target is 0.985 on 500
    right = np.array([r == t for r, t in zip(reads, labels)])
    assert confidence[right].mean() > confidence[~right].mean() if (~right).any() else True
    touching, labels = generate_phone_numbers(100, 200, (-2, 0), source=test_digits, seed=123)
    assert model.evaluate(touching, labels)["char_accuracy"] >= 0.9


def test_the_shipped_checkpoint_is_what_its_command_trains_today(train_digits):
    """models/README.md gives the command that made the checkpoint; it gives the same weights only while
    seqgen draws the same training data.  A change of seqgen's output (the augmenters, say) fails here:
    run that command again to ship a checkpoint of today's data."""
    from seqgen.train import RECIPES, data_fingerprint

    training = SequenceRecognizer.load(shipped_model_path()).training
    assert (training["steps"], training["batch_size"], training["seed"], training.get("threads")) == (4000, 64, 0, 2)
    today = data_fingerprint(train_digits, training["steps"], training["batch_size"], RECIPES, training["seed"])
    assert training.get("data_sha256") == today, "retrain: seqgen train --steps 4000 --source sample " \
        "--out models/crnn-sample.pt --threads 2 --overwrite"
