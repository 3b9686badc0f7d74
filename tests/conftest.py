"""Session fixtures: a real S3 endpoint (moto server) and, for pipeline tests, one local Ray cluster."""

from __future__ import annotations

import os

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-value",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1; AWS_ENDPOINT_URL points every client at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": url}.items():
            mp.setenv(key, value)
        yield url
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh bucket per test, named after the test."""
    import boto3

    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:50]
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session", autouse=True)
def _offline_torch_home(tmp_path_factory):
    """No test may find or fetch a checkpoint outside its own temp folder."""
    os.environ["FCN_WEIGHTS_DIR"] = str(tmp_path_factory.mktemp("weights"))
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch_home"))


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server over ``tmp_path/www``: ``(folder, base URL)`` (tests have no internet)."""
    import http.server
    import threading

    (tmp_path / "www").mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path / "www", f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """A checkpoint of the CPU model whose scoring layers are random, so masks hold several classes."""
    from imagefiles import varied_checkpoint

    return varied_checkpoint(tmp_path_factory.mktemp("ckpt") / "varied.pth")


@pytest.fixture
def ray_local(s3_endpoint, tmp_path_factory):
    """One local Ray cluster for the session (started after the S3 environment is set, so
    workers inherit it); a test that shut Ray down for its own cluster gets a fresh one.
    The stages' timing records (``pipeline.probe``) are on, as the benchmark turns them on."""
    import ray

    from pipeline.probe import ENV

    if not ray.is_initialized():
        os.environ.setdefault(ENV, str(tmp_path_factory.mktemp("probes")))
        # 3 logical CPUs on a 2-core machine: the inference actor takes one, reading and
        # decoding keep the others, so the read tasks never starve.
        ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray


@pytest.fixture(scope="session", autouse=True)
def _ray_shutdown():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def pytest_collection_modifyitems(items):
    """A test that starts Ray (the ``ray_local`` fixture) is ``slow`` by the marker's own definition,
    so ``-m "not slow"`` stays the quick, Ray-free subset."""
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
