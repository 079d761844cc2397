"""Training the sequence model: loss goes down, runs repeat exactly, logs and refusals."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from seqgen.dataset import BLANK
from seqgen.model import SequenceRecognizer
from seqgen.train import LOG_COLUMNS, RECIPES, RecipeBatches, TrainingStateError, train

TINY = dict(channels=(4, 8, 16), hidden=16, features=32)
RECIPE = ({"image_width": 120, "spacing_range": (2, 6), "length": (2, 4), "augment": None},
          {"image_width": 100, "spacing_range": (-2, 0), "length": (1, 3), "augment": "light"})


def test_batches_follow_the_recipes_in_turn(train_digits):
    data = RecipeBatches(train_digits, steps=4, batch_size=5, recipes=RECIPE, seed=0)
    widths = [data[i][0].shape for i in range(4)]
    assert widths == [(5, 28, 120), (5, 28, 100), (5, 28, 120), (5, 28, 100)]
    images, targets, lengths, labels = data[1]
    assert images.dtype == torch.float32 and targets.dtype == torch.int64
    assert [len(label) for label in labels] == lengths.tolist()
    for row, label in zip(targets.tolist(), labels):
        assert row[: len(label)] == [int(c) for c in label] and set(row[len(label):]) <= {BLANK}
    again = RecipeBatches(train_digits, steps=4, batch_size=5, recipes=RECIPE, seed=0)
    assert torch.equal(again[3][0], data[3][0]) and again[3][3] == data[3][3]
    assert not torch.equal(RecipeBatches(train_digits, 4, 5, RECIPE, seed=1)[3][0], data[3][0])


def test_the_default_recipes_cover_touching_to_wide_and_augmentation():
    spacings = [r["spacing_range"] for r in RECIPES]
    assert min(lo for lo, _ in spacings) < 0 and max(hi for _, hi in spacings) >= 20
    assert {r["augment"] for r in RECIPES} >= {None, "light", "default"}
    assert any(r["length"] != "phone" for r in RECIPES)
    assert len({r["image_width"] for r in RECIPES}) >= 4


def test_a_short_run_lowers_the_loss_and_logs_the_curve(train_digits, tmp_path):
    threads_before = torch.get_num_threads()
    model = SequenceRecognizer(**TINY, seed=0)
    rows = train(model, train_digits, steps=60, batch_size=16, lr=1e-2, recipes=RECIPE, workers=0,
                 threads=1, log_path=tmp_path / "curve.csv", log_every=10, progress=False)
    losses = [row["loss"] for row in rows]
    assert len(rows) == 6 and losses[-1] < 0.7 * losses[0]
    with open(tmp_path / "curve.csv") as f:
        logged = list(csv.DictReader(f))
    assert tuple(logged[0]) == LOG_COLUMNS and [int(r["step"]) for r in logged] == list(range(10, 61, 10))
    assert float(logged[-1]["loss"]) == losses[-1]
    assert model.trained_on == "sample/train" and model.training["steps"] == 60
    assert not model.model.training  # left in eval mode
    assert torch.get_num_threads() == threads_before


def test_a_trained_model_records_a_fingerprint_of_its_data(train_digits, tmp_path):
    from seqgen.train import data_fingerprint

    model = SequenceRecognizer(**TINY, seed=0)
    train(model, train_digits, steps=3, batch_size=8, recipes=RECIPE, seed=4, workers=0, threads=1, progress=False)
    recorded = model.training["data_sha256"]
    assert recorded == data_fingerprint(train_digits, 3, 8, RECIPE, 4)
    assert SequenceRecognizer.load(model.save(tmp_path / "m.pt")).training["data_sha256"] == recorded
    # the first batch of each recipe: another seed, batch size or recipe draws other data
    others = {data_fingerprint(train_digits, 3, 8, RECIPE, 5), data_fingerprint(train_digits, 3, 9, RECIPE, 4),
              data_fingerprint(train_digits, 3, 8, (RECIPE[0], {**RECIPE[1], "augment": None}), 4),
              data_fingerprint(train_digits, 1, 8, RECIPE, 4)}
    assert recorded not in others and len(others) == 4
    # later batches are not part of it: a longer run of the same recipes starts with the same data
    assert data_fingerprint(train_digits, 30, 8, RECIPE, 4) == recorded


def test_same_seed_same_weights_with_worker_processes(train_digits):
    def weights(workers):
        model = SequenceRecognizer(**TINY, seed=5)
        train(model, train_digits, steps=6, batch_size=8, recipes=RECIPE, seed=2, workers=workers, threads=1,
              progress=False)
        return model.model.state_dict()

    a, b = weights(0), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = SequenceRecognizer(**TINY, seed=6).model.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_making_a_model_leaves_the_global_torch_random_state_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    SequenceRecognizer(seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_fit_is_train_with_the_baseline_surface(train_digits):
    model = SequenceRecognizer(**TINY).fit(train_digits, steps=2, batch_size=4, recipes=RECIPE, workers=0,
                                           progress=False)
    assert model.training["samples"] == 8


@pytest.mark.parametrize("kwargs, message", [
    ({}, "steps, minutes: give exactly one of them"),
    ({"steps": 5, "minutes": 1}, "steps, minutes: give exactly one of them"),
    ({"steps": 0}, "steps: expected a positive int"),
    ({"minutes": -1}, "minutes: expected a positive number"),
    ({"steps": 2, "lr": 0}, "lr: expected a positive number"),
    ({"steps": 2, "workers": -1}, "workers: expected an int >= 0"),
    ({"steps": 2, "workers": 10_000}, r"workers: at most \d+ local worker processes on this machine"),
    ({"steps": 2, "recipes": ()}, "recipes: expected at least one recipe"),
    ({"steps": 2, "recipes": ({"image_width": 60},)}, r"recipes\[0\]: image_width must be at least 96 for CTC, got 60"),
    ({"steps": 2, "recipes": ({}, {"image_widht": 200})},
     r"recipes\[1\]: unknown or reserved setting\(s\) 'image_widht'; a recipe sets some of image_width, "),
    ({"steps": 2, "recipes": ({"seed": 3, "batch_size": 8},)}, r"recipes\[0\]: .* 'batch_size', 'seed'; .*train sets"),
    ({"steps": 2, "recipes": ({"augment": "wild"},)}, r"recipes\[0\]: augment: expected None, a Pipeline or one of"),
    ({"steps": 2, "seed": -1}, "seed: expected an int >= 0, got -1"),
    ({"steps": 2, "batch_size": 1_000_000},
     r"batch_size: a step on 1,000,000 sequences 350 pixels wide needs about [\d,.]+ GiB in memory, more than this machine's"),
    ({"steps": 2, "batch_size": 100_000, "recipes": [{"length": 5}]},  # DataGenerator's default width
     r"batch_size: a step on 100,000 sequences 200 pixels wide needs about 234.69 GiB in memory"),
])
def test_bad_training_options_are_refused(train_digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(SequenceRecognizer(**TINY), train_digits, progress=False, **kwargs)
    if not kwargs:
        with pytest.raises(TypeError, match="^progress: expected True or False, got 'no'$"):
            train(SequenceRecognizer(**TINY), train_digits, steps=2, progress="no")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"recipes": {"image_width": 200}}, TypeError, "recipes: expected a list of dicts of DataGenerator settings, got dict"),
    ({"recipes": ["light"]}, TypeError, r"recipes\[0\]: expected a dict of DataGenerator settings, got str"),
    ({"recipes": [{"image_width": "200"}]}, TypeError, r"recipes\[0\]: image_width: expected a positive int"),
    ({"seed": None}, TypeError, "^seed: expected an int >= 0, got None$"),
    ({"seed": "x"}, TypeError, "^seed: expected an int >= 0, got 'x'$"),
    ({"workers": 1.0}, TypeError, r"^workers: expected an int >= 0, got 1.0$"),
    ({"log_path": "m.csv", "state_path": "./m.csv"}, ValueError,
     "log_path, state_path: expected two different files, got 'm.csv' for both"),
    ({"log_path": "."}, ValueError, "^log_path: '.' is a folder, expected a file$"),
    ({"state_path": " "}, ValueError, "^state_path: expected a file name, got an empty string$"),
    ({"state_path": "/proc/m.pt.partial"}, OSError, "state_path: cannot write files in '/proc'"),
    ({"log_path": "s3://bucket/m.csv"}, ValueError, "log_path: expected a local file path, got the URL 's3://bucket/m.csv'"),
    ({"state_path": "memory://m.pt.partial"}, ValueError, "state_path: expected a local file path, got the URL"),
])
def test_bad_recipes_and_paths_are_refused_before_any_work(train_digits, tmp_path, monkeypatch, kwargs, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        train(SequenceRecognizer(**TINY), train_digits, steps=2, progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_test_digits_never_train_a_model(test_digits):
    with pytest.raises(ValueError, match="never trained on test digits"):
        train(SequenceRecognizer(**TINY), test_digits, steps=1, progress=False)
    with pytest.raises(TypeError, match="digits: expected a DigitSet"):
        train(SequenceRecognizer(**TINY), np.zeros((3, 28, 28)), steps=1, progress=False)


def test_a_time_budget_becomes_a_logged_step_count(train_digits):
    model = SequenceRecognizer(**TINY)
    rows = train(model, train_digits, minutes=0.02, batch_size=4, recipes=RECIPE, workers=0, threads=1,
                 log_every=1, progress=False)
    steps = model.training["steps"]
    assert steps >= 1 and rows[-1]["step"] == steps and model.training["seconds"] < 30


def _stopped_at(step_number: int, monkeypatch):
    """Make the training receive SIGINT (as from Ctrl-C) during step ``step_number`` (1-based)."""
    import signal

    from seqgen import train as train_module

    real, calls = train_module._step, []

    def step(*args):
        calls.append(1)
        if len(calls) == step_number:
            signal.raise_signal(signal.SIGINT)  # mid-step: the step still completes
        return real(*args)

    monkeypatch.setattr(train_module, "_step", step)


@pytest.mark.parametrize("fails_at, kept", [(1, r"nothing was saved there: run the same training again to start it"),
                                             (3, (r"it keeps the state after step 1: run the same training again to "
                                                  r"resume it"))])
def test_a_state_that_cannot_be_saved_says_what_is_kept(fails_at, kept, train_digits, tmp_path, monkeypatch):
    import errno
    import os

    from seqgen import train as train_module

    options = {"steps": 4, "batch_size": 8, "recipes": RECIPE, "workers": 0, "threads": 1, "progress": False,
               "save_every": 0}  # saved as it starts, then after every step
    whole = SequenceRecognizer(**TINY, seed=2)
    train(whole, train_digits, **options)
    real, calls = train_module._save_state, []

    def full_disk(path, state):
        calls.append(1)
        if len(calls) >= fails_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, state)

    monkeypatch.setattr(train_module, "_save_state", full_disk)
    state = tmp_path / "m.pt.partial"
    with pytest.raises(OSError, match=r"^state_path: cannot save the training's state in .*m.pt.partial \(No space "
                                      rf"left on device\); {kept} once the file can be written$") as info:
        train(SequenceRecognizer(**TINY, seed=2), train_digits, state_path=state, **options)
    assert info.value.errno == errno.ENOSPC  # still a full disk, for the CLI's exit status
    monkeypatch.undo()  # room again: the same training resumes (or starts) and ends with the same weights
    resumed = SequenceRecognizer(**TINY, seed=2)
    train(resumed, train_digits, state_path=state, **options)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_stopped_training_resumes_to_the_weights_of_an_unstopped_one(workers, train_digits, tmp_path, monkeypatch):
    options = {"steps": 12, "batch_size": 8, "recipes": RECIPE, "workers": workers, "threads": 1, "log_every": 4,
               "progress": False}
    whole = SequenceRecognizer(**TINY, seed=2)
    rows = train(whole, train_digits, log_path=tmp_path / "whole.csv", **options)

    state = tmp_path / "m.pt.partial"
    _stopped_at(6, monkeypatch)
    with pytest.raises(KeyboardInterrupt, match=r"training stopped after step 6 of 12; its state is saved in "
                                                r".*m.pt.partial: run the same training again to resume it"):
        train(SequenceRecognizer(**TINY, seed=2), train_digits, log_path=tmp_path / "cut.csv", state_path=state,
              **options)
    assert torch.load(state, weights_only=True)["step"] == 6
    monkeypatch.undo()
    resumed = SequenceRecognizer(**TINY, seed=2)
    again = train(resumed, train_digits, log_path=tmp_path / "cut.csv", state_path=state, **options)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    def drop(rs):  # the seconds differ
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rs]

    assert drop(again) == drop(rows) and len(rows) == 3
    with open(tmp_path / "cut.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [4, 8, 12]  # the whole curve, once
    assert resumed.training["steps"] == 12
    finished = SequenceRecognizer(**TINY, seed=2)  # a complete state: nothing left to do
    train(finished, train_digits, state_path=state, **options)
    assert torch.equal(next(iter(finished.model.state_dict().values())), next(iter(whole.model.state_dict().values())))


def test_the_weights_need_the_same_thread_count_and_a_resume_with_another_warns(train_digits, tmp_path, monkeypatch):
    # (that other counts give other weights is torch's doing, measured in the report, not asserted here)
    options = {"steps": 4, "batch_size": 8, "recipes": RECIPE, "workers": 0, "progress": False}
    state = tmp_path / "m.pt.partial"
    _stopped_at(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(SequenceRecognizer(**TINY, seed=2), train_digits, threads=1, state_path=state, **options)
    monkeypatch.undo()
    assert torch.load(state, weights_only=True)["threads"] == 1
    resumed = SequenceRecognizer(**TINY, seed=2)
    with pytest.warns(RuntimeWarning, match=r"state_path: .*m.pt.partial began with 1 torch threads and resumes with 2: "
                                            r"its weights will differ from an unstopped run's \(threads=1 keeps"):
        train(resumed, train_digits, threads=2, state_path=state, **options)
    assert resumed.training["threads"] == 2
    with pytest.raises(ValueError, match=r"threads: at most \d+ torch threads on this machine \(\d+ cores\), got 100000"):
        train(SequenceRecognizer(**TINY, seed=2), train_digits, threads=100_000, **options)


def test_a_state_of_other_settings_is_refused(train_digits, tmp_path, monkeypatch):
    options = {"steps": 6, "batch_size": 8, "recipes": RECIPE, "workers": 0, "threads": 1, "progress": False}
    state = tmp_path / "m.pt.partial"
    _stopped_at(2, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(SequenceRecognizer(**TINY, seed=2), train_digits, state_path=state, **options)
    monkeypatch.undo()
    before = state.read_bytes()
    with pytest.raises(ValueError, match=r"state_path: .*m.pt.partial holds a training with other settings \(it "
                                         r"differs in lr, seed\); resume it with the same settings, or remove it"):
        train(SequenceRecognizer(**TINY, seed=2), train_digits, state_path=state, **{**options, "lr": 1e-2, "seed": 1})
    assert state.read_bytes() == before
    state.write_bytes(b"not a state")
    with pytest.raises(TrainingStateError, match=r"state_path: .*m.pt.partial is not a seqgen training state") as err:
        train(SequenceRecognizer(**TINY, seed=2), train_digits, state_path=state, **options)
    assert isinstance(err.value, ValueError) and err.value.path == state
    assert err.value.problem == "is not a seqgen training state (PyTorch cannot read it as a file of weights)" and not err.value.resumable
    assert str(err.value).endswith("; remove it to start again")


def test_a_stop_during_the_last_step_lets_the_training_finish(train_digits, tmp_path, monkeypatch):
    options = {"steps": 4, "batch_size": 8, "recipes": RECIPE, "workers": 0, "threads": 1, "progress": False}
    whole = SequenceRecognizer(**TINY, seed=2)
    train(whole, train_digits, **options)
    _stopped_at(4, monkeypatch)
    stopped = SequenceRecognizer(**TINY, seed=2)
    rows = train(stopped, train_digits, state_path=tmp_path / "m.pt.partial", **options)  # no KeyboardInterrupt
    assert rows[-1]["step"] == 4 and stopped.training["steps"] == 4
    assert torch.load(tmp_path / "m.pt.partial", weights_only=True)["step"] == 4
    for a, b in zip(whole.model.state_dict().values(), stopped.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_training_that_dies_before_its_first_timed_save_resumes_from_the_start(train_digits, tmp_path,
                                                                                  monkeypatch):
    from seqgen import train as train_module

    options = {"steps": 6, "batch_size": 8, "recipes": RECIPE, "workers": 0, "threads": 1, "progress": False,
               "log_every": 2}
    whole = SequenceRecognizer(**TINY, seed=2)
    train(whole, train_digits, **options)
    real, calls = train_module._step, []

    def dies_at_step_4(*args):  # as a SIGKILL would, with nothing saved since the start
        calls.append(1)
        if len(calls) == 4:
            raise SystemExit("killed")
        return real(*args)

    monkeypatch.setattr(train_module, "_step", dies_at_step_4)
    state, log = tmp_path / "m.pt.partial", tmp_path / "m.csv"
    with pytest.raises(SystemExit):
        train(SequenceRecognizer(**TINY, seed=2), train_digits, state_path=state, log_path=log, save_every=3600,
              **options)
    assert torch.load(state, weights_only=True)["step"] == 0  # saved before the learning curve was begun
    assert len(log.read_text().splitlines()) == 2  # the curve has step 2 in it
    monkeypatch.undo()
    resumed = SequenceRecognizer(**TINY, seed=2)
    train(resumed, train_digits, state_path=state, log_path=log, save_every=3600, **options)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    with open(log) as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [2, 4, 6]
