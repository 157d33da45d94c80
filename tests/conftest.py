"""Fixtures shared by the expansion model-folder tests: a tiny pickle folder served by a fake hub on
127.0.0.1 (no network)."""

from __future__ import annotations

import pytest
from expansion_fixtures import FakeHub, hub_endpoint, write_model_dir


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A complete tiny folder with the weights as a pickle, as the hub serves them."""
    return write_model_dir(tmp_path_factory.mktemp("original") / "fooocus_expansion", weights="pickle")


@pytest.fixture
def hub(original):
    server = FakeHub()
    server.add_model_folder(original)
    yield server
    server.close()


@pytest.fixture
def online(monkeypatch, hub):
    """Downloads allowed, pointed at the fake hub."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False, raising=False)
    hub.endpoint = hub_endpoint(monkeypatch, hub.url)
    return hub
