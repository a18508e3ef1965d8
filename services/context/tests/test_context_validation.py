"""Unit tests of the request checks (no I/O)."""

from __future__ import annotations

import base64
import uuid

import pytest

from parley.context.domain.validation import (
    DEFAULT_PAGE_SIZE,
    check_identifier,
    check_page_size,
    check_principal,
    check_search_limit,
    check_text,
    decode_page_token,
    encode_page_token,
    parse_uuid,
)
from parley.core.errors import InvalidInputError


def test_parse_uuid_accepts_uuid_and_names_the_field_otherwise() -> None:
    value = uuid.uuid4()
    assert parse_uuid(str(value)) == value
    with pytest.raises(InvalidInputError, match="conversation_id must be a UUID"):
        parse_uuid("not-a-uuid")
    with pytest.raises(InvalidInputError, match=r"messages\[2\]\.conversation_id is required"):
        parse_uuid("", "messages[2].conversation_id")


def test_page_token_round_trips_and_rejects_forgeries() -> None:
    assert decode_page_token("") == 0
    assert decode_page_token(encode_page_token(42)) == 42
    forged = [base64.urlsafe_b64encode(raw).decode() for raw in (b"seq:-1", b"seq:\xc2\xb2", b"offset:3")]
    for bad in ("42", "!!!", "@@", encode_page_token(2**63), *forged):
        with pytest.raises(InvalidInputError, match="page_token"):
            decode_page_token(bad)


def test_page_size_and_search_limit_bounds() -> None:
    assert check_page_size(0) == DEFAULT_PAGE_SIZE
    assert check_page_size(1) == 1
    assert check_page_size(500) == 500
    for bad in (-1, 501):
        with pytest.raises(InvalidInputError, match="page_size must be between 1 and 500"):
            check_page_size(bad)
    assert check_search_limit(0) == 10
    with pytest.raises(InvalidInputError, match="limit"):
        check_search_limit(101)


def test_principal_and_identifiers() -> None:
    assert check_principal("acme", "u1").user_id == "u1"
    with pytest.raises(InvalidInputError, match="principal is required"):
        check_principal("", "")
    with pytest.raises(InvalidInputError, match=r"principal\.user_id is required"):
        check_principal("acme", "  ")
    with pytest.raises(InvalidInputError, match="longer than"):
        check_identifier("x" * 257, "event_id")
    with pytest.raises(InvalidInputError, match="NUL"):
        check_text("a\x00b")
    assert check_text("") == ""
