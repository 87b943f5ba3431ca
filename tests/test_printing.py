"""The one number printer, lumos.tools.printing.format_number, on the edge cases where the converter's
old copy (arith.format_number) and the tools' (_fmt_rational) disagreed or could have."""
from fractions import Fraction

import sympy as sp

from lumos.annotations import gsm8k
from lumos.tools.maths import Calculator
from lumos.tools.printing import format_number, format_value


def test_tiny_values_keep_six_significant_digits():
    # the converter's copy printed 1/3,000,000 as "0"; the tools printed it as below (the chosen rule)
    assert format_number(Fraction(1, 3_000_000)) == "3.33333e-07"
    assert format_number(Fraction(-1, 3_000_000)) == "-3.33333e-07"
    assert Calculator("1 / 3000000") == "3.33333e-07"
    assert format_number(Fraction(1, 2_100_000)) == "4.7619e-07"       # 4.76190476e-07: rounds to 0 at 6 places
    assert format_number(Fraction(1, 2_000_001)) == "5e-07"            # 4.9999975e-07: 6 significant digits
    assert format_number(Fraction(1, 1_999_999)) == "0.000001"         # rounds up to 1e-6


def test_terminating_decimals_exact_up_to_12_places():
    assert format_number(Fraction(1, 1024)) == "0.0009765625"
    assert format_number(Fraction(1, 2_000_000)) == "0.0000005"
    assert format_number(Fraction(-1, 8)) == "-0.125"
    assert format_number(Fraction(1, 10 ** 12)) == "0.000000000001"
    assert format_number(Fraction(1, 2 ** 20)) == "0.000001"           # 20 places: rounded like a repeating one


def test_repeating_fractions_round_half_up_to_six_places():
    assert [format_number(Fraction(1, d)) for d in (3, 6, 7, 9)] == ["0.333333", "0.166667", "0.142857", "0.111111"]
    assert format_number(Fraction(-2, 3)) == "-0.666667"
    assert format_number(Fraction(10, 3)) == "3.333333"
    assert format_number(Fraction(2_999_999, 3_000_000)) == "1"        # 0.9999996... -> 1, not 1.0 or 1.000000


def test_huge_values_in_full():
    assert format_number(Fraction(10 ** 40)) == "1" + "0" * 40
    assert format_number(Fraction(-(10 ** 40))) == "-1" + "0" * 40
    assert format_number(Fraction(10 ** 30, 3)) == "3" * 30 + ".333333"


def test_zero_is_never_negative():
    assert format_number(Fraction(0)) == "0"
    assert format_number(Fraction(-1, 3 * 10 ** 400)) == "0"           # below the smallest float
    assert format_number(Fraction(-1, 10 ** 7 * 3)) == "-3.33333e-08"
    assert format_value(sp.Float(-0.0)) == "0" and format_value(-sp.Rational(1, 10 ** 9) * 0) == "0"


def test_integers_as_floats_print_as_integers():
    assert format_number(Fraction("144.00")) == "144"
    assert format_value(sp.Float(24.0)) == "24" and format_value(sp.Float(2.5)) == "2.5"
    assert Calculator("48 / 2.0") == "24"


def test_the_converter_prints_with_the_tools_printer():
    assert gsm8k.format_number is format_number
