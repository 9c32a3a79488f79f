"""kombu's filesystem transport (the embedded default broker) with messages written atomically.

kombu writes a message straight into the queue folder; a worker polling the folder can take the file while it is
still empty and dies on the JSON ("Unrecoverable error: JSONDecodeError", seen with the demo's worker and in the
tests). Here a message is written under a name no queue matches, then renamed into place: a reader sees either no
file or the whole message. Imported by config.celery, it is what `filesystem://` means in every process of ours.
"""
import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"  # kombu's own name and order
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"{uuid.uuid4()}.writing")
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as error:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory: {error}") from error


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
