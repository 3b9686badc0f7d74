"""Fetching a registered checkpoint on request: the hash is checked before the file is where the job looks."""

from __future__ import annotations

import hashlib
import socket

import pytest

from jobs.weights import main
from models import Weights
from models.registry import WEIGHTS


@pytest.fixture
def record(monkeypatch, http_root, tmp_path):
    """A registered checkpoint published on the local server, looked for in a fresh weights folder."""
    www, url = http_root
    (www / "net.pth").write_bytes(b"the published checkpoint")
    digest = hashlib.sha256(b"the published checkpoint").hexdigest()
    monkeypatch.setenv("FCN_WEIGHTS_DIR", str(tmp_path / "weights"))
    entry = Weights(name="test_net", arch="fcn8s_mobilenet_v3", uri="net.pth", sha256=digest[:8],
                    categories=("a", "b"), url="https://example.invalid/models/net.pth")  # fmt: skip
    monkeypatch.setitem(WEIGHTS, "test_net", entry)
    return www, url


def test_list_names_model_classes_url_hash_and_whether_it_is_here(record, tmp_path, capsys):
    assert main(["list"]) == 0
    said = capsys.readouterr().out
    assert "test_net  model fcn8s_mobilenet_v3, 2 classes" in said
    assert (
        f"missing: {tmp_path / 'weights' / 'net.pth'}" in said
        and "from: https://example.invalid/models/net.pth" in said
    )
    assert "fcn_resnet50_coco" in said and "https://download.pytorch.org/models/fcn_resnet50_coco-1167a1af.pth" in said


def test_fetch_keeps_a_file_with_the_right_hash_and_refuses_a_wrong_one(record, tmp_path, capsys):
    www, url = record
    assert main(["fetch", "test_net", "--mirror", url]) == 0
    assert (tmp_path / "weights" / "net.pth").read_bytes() == b"the published checkpoint"
    (tmp_path / "weights" / "net.pth").unlink()
    (www / "net.pth").write_bytes(b"a tampered checkpoint")
    assert main(["fetch", "test_net", "--mirror", url]) == 1
    said = capsys.readouterr().err
    assert "expected" in said and "not kept" in said
    assert list((tmp_path / "weights").iterdir()) == []  # neither the file nor a partial one


def test_offline_fetch_says_where_to_put_the_file(record, tmp_path, capsys):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: as a machine without internet
    assert main(["fetch", "test_net", "--mirror", f"http://127.0.0.1:{port}"]) == 1
    said = capsys.readouterr().err
    assert f"http://127.0.0.1:{port}/net.pth" in said and f"put it at {tmp_path / 'weights' / 'net.pth'}" in said
    assert not (tmp_path / "weights" / "net.pth").exists()
