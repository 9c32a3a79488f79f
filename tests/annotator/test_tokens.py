"""Assignment tokens and completion codes."""
import uuid

import pytest
from django.core import signing

from annotator.worker.tokens import (
    TOKEN_SALT,
    InvalidToken,
    assignment_uuid_from_token,
    completion_code,
    is_valid_completion_code,
    make_token,
)
from tests.factories import AssignmentFactory

pytestmark = pytest.mark.django_db


def test_token_names_its_assignment():
    assignment = AssignmentFactory()
    assert assignment_uuid_from_token(make_token(assignment)) == assignment.uuid


def test_token_signed_for_another_purpose_is_refused():
    assignment = AssignmentFactory()
    other_salt = signing.dumps(str(assignment.uuid), salt="password-reset")
    with pytest.raises(InvalidToken, match="not valid"):
        assignment_uuid_from_token(other_salt)


def test_token_with_another_payload_cannot_be_forged(settings):
    forged = signing.dumps(str(uuid.uuid4()), salt=TOKEN_SALT, key="not-our-secret")
    with pytest.raises(InvalidToken, match="not valid"):
        assignment_uuid_from_token(forged)


def test_expired_token_says_so(settings):
    token = make_token(AssignmentFactory())
    settings.WORKER_TOKEN_MAX_AGE = -1
    with pytest.raises(InvalidToken, match="expired"):
        assignment_uuid_from_token(token)


def test_missing_token():
    with pytest.raises(InvalidToken, match="no worker token"):
        assignment_uuid_from_token("")


def test_completion_code_is_stable_per_assignment_and_keyed_by_the_secret(settings):
    first, second = uuid.uuid4(), uuid.uuid4()
    code = completion_code(first)
    assert code == completion_code(first) and code != completion_code(second)
    assert is_valid_completion_code(first, code.lower()) and not is_valid_completion_code(second, code)
    settings.SECRET_KEY = "another-secret"
    assert completion_code(first) != code
