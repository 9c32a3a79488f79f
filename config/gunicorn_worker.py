"""A gunicorn gthread worker that gives every request a deadline to arrive (headers and body together).

gunicorn's gthread worker hands a connection to a thread as soon as its first bytes arrive; the thread then reads
the headers and the app reads the body with blocking reads and no time limit. A client that trickles its request
(slowloris: a byte a second) holds that thread for as long as it likes, and a handful of such clients hold every
thread of every worker. `--timeout` does not help: it watches the worker's main loop, which keeps running.

Here each read waits at most until the request's deadline (REQUEST_READ_TIMEOUT seconds after its first bytes
arrived, default 30, time spent queued for a thread included); a read that would have to wait past it fails, the
connection is shut for reading and the thread is free again. The app
answers a body that did not arrive in time with 408 (annotator.worker.views.read_body); a request whose headers did
not arrive is just closed. Idle keep-alive connections wait in the worker's selector and hold no thread.
This bounds how long one connection can hold a thread; it does not bound how many connections one client opens:
in production put a buffering proxy (nginx's default proxy_request_buffering) in front, see SECURITY.md.
"""
import errno
import logging
import os
import socket
import time

from gunicorn.workers.gthread import ThreadWorker

logger = logging.getLogger("gunicorn.error")

REQUEST_READ_TIMEOUT = float(os.environ.get("REQUEST_READ_TIMEOUT", "30"))
# Writes of the response get this long per send (a client that never reads its response is dropped too).
RESPONSE_WRITE_TIMEOUT = float(os.environ.get("RESPONSE_WRITE_TIMEOUT", "30"))


class DeadlineSocket:
    """The connection's socket as gunicorn's request parser sees it: recv() never waits past the deadline."""

    def __init__(self, sock, deadline, client):
        self._sock, self._deadline, self._client = sock, deadline, client

    def recv(self, size, *flags):
        # Past the deadline, what the client already sent is still read (a request that waited in the queue for a
        # thread has all its bytes here); only a read that would have to wait ends the request.
        self._sock.settimeout(max(0.0, self._deadline - time.monotonic()))
        try:
            return self._sock.recv(size, *flags)
        except (TimeoutError, BlockingIOError):  # BlockingIOError: no wait left (timeout 0) and nothing there
            self._expire()
        finally:
            self._sock.settimeout(RESPONSE_WRITE_TIMEOUT)

    def _expire(self):
        logger.warning("request from %s did not arrive within %.0f s: connection dropped", self._client,
                       REQUEST_READ_TIMEOUT)
        try:
            self._sock.shutdown(socket.SHUT_RD)  # later reads (the parser draining the body) end at once
        except OSError:
            pass
        # ENOTCONN: gunicorn closes the connection quietly instead of logging a traceback per slow client.
        raise TimeoutError(errno.ENOTCONN, f"request not received within {REQUEST_READ_TIMEOUT:.0f} s")

    def __getattr__(self, name):
        return getattr(self._sock, name)


class DeadlineThreadWorker(ThreadWorker):
    def enqueue_req(self, conn):
        # The connection has the first bytes of a request (the first, or the next on a kept-alive connection): its
        # deadline runs from now, not from when a thread is free, so time spent queued behind slow clients counts.
        conn.request_deadline = time.monotonic() + REQUEST_READ_TIMEOUT
        super().enqueue_req(conn)

    def handle(self, conn):
        raw = getattr(conn.sock, "_sock", conn.sock)
        deadline = getattr(conn, "request_deadline", time.monotonic() + REQUEST_READ_TIMEOUT)
        conn.parser.unreader.sock = DeadlineSocket(raw, deadline, conn.client)
        return super().handle(conn)
