"""The record types: one shape for the worker API and the published formats, differing only where they do."""
import msgspec
import pytest

from luab.records import MAX_ACTIONS, CocoRecord, PublishedCocoRecord

ACTION = {"actionType": "add", "iconType": "car", "pointFrom": None, "pointTo": {"x": 0.5, "y": 0.5}, "timeAt": 10}
RECORD = {"image_id": 459214, "imageWidth": 640, "imageHeight": 480, "timeSpent": 5000, "actionHistories": [ACTION]}
PUBLISHED = {**RECORD, "worker_id": "w1", "hit_id": "h1", "page_id": 0}


def test_a_published_record_is_the_record_with_its_session():
    published = msgspec.convert(PUBLISHED, PublishedCocoRecord)
    assert isinstance(published, CocoRecord)
    assert (published.hit_key, published.page_index) == ("h1", 0)
    legacy = msgspec.convert({**RECORD, "worker_id": "w1", "assignment_id": "a1", "page_idx": 3}, PublishedCocoRecord)
    assert (legacy.hit_key, legacy.page_index) == ("a1", 3)


def test_published_sizes_are_integers_where_the_api_takes_any_number():
    assert msgspec.convert({**RECORD, "imageWidth": 640.5}, CocoRecord).imageWidth == 640.5
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int`, got `float` - at `\$.imageWidth`"):
        msgspec.convert({**PUBLISHED, "imageWidth": 640.5}, PublishedCocoRecord)


def test_request_lists_are_bounded_and_published_ones_are_not():
    many = {"actionHistories": [ACTION] * (MAX_ACTIONS + 1)}
    with pytest.raises(msgspec.ValidationError, match=f"Expected `array` of length <= {MAX_ACTIONS}"):
        msgspec.convert({**RECORD, **many}, CocoRecord)
    assert len(msgspec.convert({**PUBLISHED, **many}, PublishedCocoRecord).actionHistories) == MAX_ACTIONS + 1
