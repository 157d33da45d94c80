"""A local HTTP server for tests that download: 127.0.0.1, a free port, served from a thread."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler] | object) -> Iterator[str]:
    """Serve `handler` (a request handler class, or a partial of one) until the block ends; yields
    the server's base URL, `http://127.0.0.1:<port>`."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
