"""Synthetic NHS numbers for the simulated patients: the 999 test range, with a valid Modulus 11 check digit.

The bot accepts the 999 block only in test mode, so these can never reach a real record.
"""

from __future__ import annotations

from collections.abc import Iterator

TEST_PREFIX = "999"
WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(nine_digits: str) -> int | None:
    """The Modulus 11 check digit of nine digits, or None when no valid number starts with them."""
    remainder = sum(int(digit) * weight for digit, weight in zip(nine_digits, WEIGHTS, strict=True)) % 11
    check = 11 - remainder
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def synthetic_numbers(start: int = 1) -> Iterator[str]:
    """Valid test-range numbers, written 3-3-4 as a patient types them ("999 000 0019"), in order."""
    serial = start
    while serial < 1_000_000:
        nine = f"{TEST_PREFIX}{serial:06d}"
        check = check_digit(nine)
        serial += 1
        if check is not None:
            digits = f"{nine}{check}"
            yield f"{digits[:3]} {digits[3:6]} {digits[6:]}"
