"""Worker ids in exports: HMAC-SHA256 under a random salt made for each export and never stored.

The same worker gets the same 10-hex-character id everywhere in one export (so sessions can be grouped by
worker), a different id in every other export (exports cannot be joined on workers), and nobody can go back
from an exported id to the worker, not even with WORKER_ID_SALT, because the export's salt is thrown away.
"""
import hashlib
import hmac
import secrets

EXPORTED_WORKER_ID_LENGTH = 10


class WorkerAnonymiser:
    def __init__(self, salt=None):
        self._salt = salt if salt is not None else secrets.token_bytes(32)
        self._known = {}

    def __call__(self, worker_hashed_id):
        exported = self._known.get(worker_hashed_id)
        if exported is None:
            digest = hmac.new(self._salt, worker_hashed_id.encode(), hashlib.sha256).hexdigest()
            exported = self._known[worker_hashed_id] = digest[:EXPORTED_WORKER_ID_LENGTH].upper()
        return exported
