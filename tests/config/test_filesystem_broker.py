"""The embedded broker: a worker polling the folder never reads a message that is still being written."""
from queue import Empty

import pytest
from kombu import Connection

from config import filesystem_broker
from config.settings import filesystem_broker_options


@pytest.fixture
def channel(tmp_path):
    with Connection("filesystem://", transport_options=filesystem_broker_options(tmp_path)) as connection:
        for folder in ("broker", "processed", "control"):
            (tmp_path / "celery" / folder).mkdir(parents=True, exist_ok=True)
        yield connection.default_channel


def test_filesystem_urls_get_the_atomic_transport(channel):
    assert isinstance(channel, filesystem_broker.Channel)


def test_a_message_is_invisible_to_a_reader_until_it_is_whole(channel, monkeypatch):
    seen_while_writing = []
    replace = filesystem_broker.os.replace

    def reader_polls_then_replace(partial, final):
        try:
            seen_while_writing.append(channel._get("default"))
        except Empty:
            seen_while_writing.append("nothing")
        replace(partial, final)

    monkeypatch.setattr(filesystem_broker.os, "replace", reader_polls_then_replace)
    channel._put("default", {"body": "x" * 100_000})

    assert seen_while_writing == ["nothing"]  # kombu's own writer let the reader take the file here, still empty
    assert channel._get("default") == {"body": "x" * 100_000}
    with pytest.raises(Empty):
        channel._get("default")
