import pytest

from engine.events.counterparty_kind import INDIVIDUAL, ORGANIZATION, is_resident_id, shape_kind


def _checked(body: str) -> str:
    """``body`` with the check character that ISO 7064 MOD 11-2 gives it."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


@pytest.mark.parametrize(
    "text",
    ["11010519491231002X", _checked("44030520000229123"), _checked("44030519000101123")],
)
def test_resident_identity_numbers(text: str) -> None:
    assert is_resident_id(text)
    assert shape_kind(text) == INDIVIDUAL


@pytest.mark.parametrize(
    "text",
    [
        "110105194912310021",  # wrong check character
        _checked("11010519491331002"),  # month 13
        _checked("44030519000229123"),  # 29 February 1900
        _checked("11010518991231002"),  # born 1899
        "1101051949123100",  # too short
        "91110000600037341L",  # a credit code
        "UTIL-POWER-0001",
        "ACCT-77",
    ],
)
def test_other_ids_are_organizations(text: str) -> None:
    assert not is_resident_id(text)
    assert shape_kind(text) == ORGANIZATION


def test_exactly_one_check_character_makes_a_body_valid() -> None:
    body = "44030519900101123"
    assert [c for c in "0123456789X" if is_resident_id(body + c)] == [_checked(body)[-1]]
