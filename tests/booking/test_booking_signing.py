"""Unit tests for `app.signing` (SPEC §7), the algorithm the booking simulator signs hooks with."""

from __future__ import annotations

import pytest

from app.core.signing import TOLERANCE_S, SignatureError, sign, verify

SECRET = "s3cret"
BODY = b'{"type":"loan.created","loan":{}}'
T = 1_900_000_000


def test_good_signature_verifies() -> None:
    verify(SECRET, BODY, sign(SECRET, BODY, timestamp=T), now=T)


def test_header_format() -> None:
    header = sign(SECRET, BODY, timestamp=T)
    t, v1 = header.split(",")
    assert t == f"t={T}"
    assert v1.startswith("v1=") and len(v1) == 3 + 64


def test_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="invalid signature"):
        verify(SECRET, BODY, sign("other", BODY, timestamp=T), now=T)


def test_tampered_body() -> None:
    with pytest.raises(SignatureError, match="invalid signature"):
        verify(SECRET, BODY + b" ", sign(SECRET, BODY, timestamp=T), now=T)


def test_tampered_timestamp() -> None:
    header = sign(SECRET, BODY, timestamp=T).replace(f"t={T}", f"t={T + 1}")
    with pytest.raises(SignatureError, match="invalid signature"):
        verify(SECRET, BODY, header, now=T)


@pytest.mark.parametrize("offset", [-TOLERANCE_S, TOLERANCE_S])
def test_timestamp_at_the_tolerance_boundary_is_accepted(offset: int) -> None:
    verify(SECRET, BODY, sign(SECRET, BODY, timestamp=T + offset), now=T)


@pytest.mark.parametrize("offset", [-TOLERANCE_S - 1, TOLERANCE_S + 1])
def test_timestamp_beyond_the_tolerance_is_stale(offset: int) -> None:
    with pytest.raises(SignatureError, match="stale"):
        verify(SECRET, BODY, sign(SECRET, BODY, timestamp=T + offset), now=T)


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(SECRET, BODY, header, now=T)


@pytest.mark.parametrize(
    "header",
    ["garbage", f"t={T}", "v1=abc", f"t=abc,v1={'0' * 64}", f"t={T},v1", f"t={T};v1=00",
     # Unbounded or signed timestamps: `int()` accepts them, float arithmetic would overflow (a 500 before).
     f"t={'9' * 400},v1={'0' * 64}", f"t=-{T},v1={'0' * 64}", f"t=+{T},v1={'0' * 64}", f"t= {T},v1={'0' * 64}",
     f"t=١٢٣,v1={'0' * 64}"],
)
def test_malformed_header(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        verify(SECRET, BODY, header, now=T)


def test_any_of_several_v1_values_verifies_for_secret_rotation() -> None:
    good = sign(SECRET, BODY, timestamp=T).split(",")[1]
    verify(SECRET, BODY, f"t={T},v1={'0' * 64},{good}", now=T)


def test_error_message_does_not_reveal_the_expected_digest() -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, BODY, sign("other", BODY, timestamp=T), now=T)
    assert sign(SECRET, BODY, timestamp=T).split("v1=")[1] not in str(info.value)
