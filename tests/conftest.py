"""Shared fixtures: an offline, isolated environment and the sample digits."""

from __future__ import annotations

import pytest

from seqgen.data import load_mnist


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    """No test touches the network, the user's cache or the global mirror list."""
    monkeypatch.setenv("SEQGEN_OFFLINE", "1")
    monkeypatch.setenv("SEQGEN_DATA_DIR", str(tmp_path_factory.mktemp("seqgen-cache")))
    monkeypatch.delenv("SEQGEN_MNIST_URLS", raising=False)


@pytest.fixture(scope="session")
def train_digits():
    return load_mnist("train", source="sample")


@pytest.fixture(scope="session")
def test_digits():
    return load_mnist("test", source="sample")
