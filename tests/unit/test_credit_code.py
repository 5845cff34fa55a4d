import random

from hypothesis import given
from hypothesis import strategies as st

from engine.events import credit_code

# Published examples of valid unified social credit codes.
KNOWN_VALID = ["91350100M000100Y43", "91110000600037341L"]


def test_known_codes_are_valid() -> None:
    for code in KNOWN_VALID:
        assert credit_code.is_valid(code), code


def test_a_wrong_final_check_character_is_invalid() -> None:
    code = KNOWN_VALID[0]
    for replacement in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        if replacement != code[-1]:
            assert not credit_code.is_valid(code[:-1] + replacement)


def test_a_wrong_organization_check_character_is_invalid_even_with_a_matching_final_one() -> None:
    # Change the GB 11714 check character (position 17) and recompute the final one, so only
    # the inner check can catch it.
    code = KNOWN_VALID[0]
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [pow(3, i, 31) for i in range(17)]
    for replacement in "0123456789X":
        if replacement == code[16]:
            continue
        body = code[:16] + replacement
        check = 31 - sum(alphabet.index(c) * w for c, w in zip(body, weights, strict=True)) % 31
        candidate = body + alphabet[0 if check == 31 else check]
        assert not credit_code.is_valid(candidate), candidate


ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@given(st.text(max_size=20))
def test_text_of_another_length_or_alphabet_is_invalid(text: str) -> None:
    if len(text) != 18 or any(c not in ALPHABET for c in text):
        assert credit_code.is_valid(text) is False


def test_every_single_substitution_of_a_valid_code_is_invalid() -> None:
    # The final check is a weighted sum modulo the prime 31 with weights that are never 0
    # modulo 31: changing one character always changes it.
    for code in KNOWN_VALID:
        for position in range(18):
            for replacement in ALPHABET:
                if replacement != code[position]:
                    changed = code[:position] + replacement + code[position + 1 :]
                    assert not credit_code.is_valid(changed), changed


def test_random_well_formed_strings_are_valid_about_once_in_341() -> None:
    # Two independent check characters: 1/31 for the final one, 1/11 for the organization's.
    rng = random.Random(7)
    trials = 200_000
    valid = sum(
        credit_code.is_valid(
            "".join(rng.choice(ALPHABET) for _ in range(2))
            + "".join(rng.choice("0123456789") for _ in range(6))
            + "".join(rng.choice(ALPHABET) for _ in range(8))
            + rng.choice("0123456789X")
            + rng.choice(ALPHABET)
        )
        for _ in range(trials)
    )
    assert trials / 341 * 0.8 < valid < trials / 341 * 1.2, valid


@given(st.integers(min_value=0, max_value=2**32))
def test_generated_codes_are_valid(seed: int) -> None:
    code = credit_code.generate(random.Random(seed))
    assert len(code) == 18 and credit_code.is_valid(code)
