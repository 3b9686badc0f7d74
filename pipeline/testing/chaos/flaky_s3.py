"""A flaky S3 endpoint: a threaded HTTP proxy in front of a moto server that fails every N-th request."""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOWDOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
DENIED = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
FAULTS = ("slowdown", "dropped", "reply lost")  # answer 503; close unanswered; forward, then close unanswered
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "upgrade"}


class FlakyS3Proxy(ThreadingHTTPServer):
    """An HTTP proxy to an S3 endpoint that fails every ``every``-th request, in turn with each of
    ``FAULTS``: 503 SlowDown, a connection closed unanswered, or one closed after the request was done.

    Objects whose path holds one of ``forbidden`` answer 403 AccessDenied to every read, as an
    object whose ACL or bucket policy the job's role may not read.

    Args:
        upstream: the real endpoint, e.g. ``http://127.0.0.1:5000``.
        every: period of the faults; 0 for none.
        forbidden: substrings of object paths that answer 403.
    """

    daemon_threads = True

    def __init__(self, upstream: str, every: int = 4, forbidden: tuple[str, ...] = ()) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream, self.every, self.counts, self.lock = urlsplit(upstream), every, Counter(), threading.Lock()
        self.forbidden = forbidden
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def fault(self) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            n = self.counts["requests"]
            kind = None if not self.every or n % self.every else FAULTS[(n // self.every) % len(FAULTS)]
            if kind:
                self.counts[kind] += 1
        return kind

    def __enter__(self) -> FlakyS3Proxy:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "Expect: 100-continue" is answered

    def log_message(self, *args) -> None:
        pass

    def forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command in ("GET", "HEAD") and any(f in self.path.split("?")[0] for f in self.server.forbidden):
            self.server.counts["forbidden"] += 1
            self.reply(403, [("Content-Type", "application/xml")], DENIED)
            return
        fault = self.server.fault()
        if fault == "dropped":
            self.close_connection = True  # no answer at all: the client sees the connection end
            return
        if fault == "slowdown":
            self.reply(503, [("Content-Type", "application/xml")], SLOWDOWN)
            return
        upstream = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        if fault == "reply lost":  # done upstream, yet the client must retry (and must not duplicate)
            self.close_connection = True
            return
        self.reply(response.status, [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_HEADERS], data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

    def reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for key, value in headers:
            if key.lower() != "content-length" or self.command == "HEAD":  # HEAD keeps the object's size
                self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@contextlib.contextmanager
def moto_server():
    """A moto S3 server on 127.0.0.1 (a dev dependency); yields its URL and an s3fs client of it."""
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        url = "http://{}:{}".format(*server.get_host_and_port())
        client = {"endpoint_url": url}
        yield url, s3fs.S3FileSystem(key="chaos", secret="chaos", client_kwargs=client, skip_instance_cache=True)
    finally:
        server.stop()
