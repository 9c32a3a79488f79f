"""A fake market's HTTP server on a thread of the test or demo process: started by `with`, stopped on exit."""
import threading
from http.server import ThreadingHTTPServer


class LocalServer:
    """Subclasses give _handler_class() (a BaseHTTPRequestHandler class) and call _listen() in __init__."""

    def _listen(self, host="127.0.0.1", port=0):
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
