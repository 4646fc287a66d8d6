"""Identifier formats: check characters, round trips, corruption is always refused, and every
error says precisely what is wrong and where."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coi.core.identifiers import (
    ALPHABET,
    UNIT_KIND_CODES,
    CoiId,
    Gs1Data,
    IdentifierError,
    IsbtDin,
    UnitSerial,
    is_reserved_facility,
    mod37_2,
    parse_scan,
)

GS = "\x1d"
DIGITS = "0123456789"

facilities = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"),
    st.text(DIGITS, min_size=4, max_size=4),
)
coi_ids = st.builds(
    CoiId,
    facility=facilities,
    year=st.text(DIGITS, min_size=2, max_size=2),
    serial=st.text(ALPHABET[:36], min_size=6, max_size=6),
)
unit_serials = st.builds(
    UnitSerial,
    coi=coi_ids,
    kind_code=st.sampled_from(sorted(UNIT_KIND_CODES.values())),
    sequence=st.integers(min_value=1, max_value=99),
)
# Beyond ALPHABET: separators, brackets and prefixes that steer format detection, FNC1 (GS),
# and lowercase letters (which count as their uppercase twins).
EXTRA_CHARACTERS = " -#(=]/.%" + GS + "oilszba"


def substitutions(text: str) -> list[str]:
    """Every text that differs from `text` by exactly one character, as an identifier."""
    mutants = []
    for index, original in enumerate(text):
        for ch in ALPHABET + EXTRA_CHARACTERS:
            if ch.upper() != original:
                mutants.append(text[:index] + ch + text[index + 1 :])
    return mutants


def transpositions(text: str) -> list[str]:
    """Every text with two different adjacent characters swapped."""
    return [
        text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        for i in range(len(text) - 1)
        if text[i] != text[i + 1]
    ]


def accepted(mutants: list[str]) -> list[tuple[str, object]]:
    """The mutants that parse_scan accepts (each should have been refused)."""
    result = []
    for mutant in mutants:
        try:
            result.append((mutant, parse_scan(mutant)))
        except IdentifierError:
            pass
    return result


def refusal(text: str) -> IdentifierError:
    with pytest.raises(IdentifierError) as info:
        parse_scan(text)
    return info.value


# --- MOD 37-2 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "check"),
    [
        ("G123498654321", "H"),  # ISO/IEC 7064 example
        ("A999818123456", "N"),  # the architecture's example
        # By hand: check = (38 - S mod 37) mod 37, S = sum(value * 2**n), n from 1 at the right.
        ("0", "1"),  # S = 0 -> 38 mod 37 = 1
        ("1", "*"),  # S = 2 -> 36 = '*'
        ("A", "I"),  # S = 10*2 = 20 -> 18 = 'I'
        ("Z", "5"),  # S = 35*2 = 70 = 33 mod 37 -> 5
        ("10", "Y"),  # S = 1*4 + 0*2 = 4 -> 34 = 'Y'
        ("AB", "D"),  # S = 10*4 + 11*2 = 62 = 25 mod 37 -> 38 - 25 = 13 = 'D'
    ],
)
def test_mod37_2_gives_the_known_check_character(data: str, check: str) -> None:
    assert mod37_2(data) == check


def test_mod37_2_refuses_a_star_or_lowercase_in_the_data_with_its_position() -> None:
    for data, position in (("AB*C", 3), ("abc", 1)):
        with pytest.raises(IdentifierError) as info:
            mod37_2(data)
        assert (info.value.code, info.value.position) == ("bad_character", position)


def test_mod37_2_refuses_empty_data() -> None:
    with pytest.raises(IdentifierError) as info:
        mod37_2("")
    assert info.value.code == "empty"


def test_error_text_is_its_message() -> None:
    error = IdentifierError("bad_check", "Check character is wrong.", 14)
    assert str(error) == error.message == "Check character is wrong."
    assert (error.code, error.position) == ("bad_check", 14)
    assert isinstance(error, ValueError)


def test_only_a9990_to_a9999_are_reserved_facilities() -> None:
    assert all(is_reserved_facility(f"A999{n}") for n in range(10))
    assert not any(is_reserved_facility(f) for f in ("A9989", "B9999", "A999", "A99990", "a9999"))


# --- COI identifiers and unit serials --------------------------------------------------------


def test_issued_identifier_round_trips_through_text_display_and_parse_scan() -> None:
    coi = CoiId.issue("A9998", 2018, 1)
    assert (coi.facility, coi.year, coi.serial) == ("A9998", "18", "000001")
    assert coi.text == coi.compact + coi.check and len(coi.text) == 14
    assert coi.display == f"A9998 18 000001 {coi.check}"
    assert parse_scan(coi.text) == coi == parse_scan(coi.display) == CoiId.parse(coi.display)
    assert str(coi) == coi.text


def test_issue_writes_the_number_in_base_36_zero_padded() -> None:
    assert CoiId.issue("A9998", 2026, 36).serial == "000010"
    assert CoiId.issue("A9998", 2026, 35).serial == "00000Z"
    assert CoiId.issue("B1234", 2099, 36**6 - 1).serial == "ZZZZZZ"


def test_the_architecture_example_parses_in_both_forms_and_in_lowercase() -> None:
    expected = CoiId("A9998", "18", "123456")
    assert expected.display == "A9998 18 123456 N"
    for text in ("A999818123456N", "A9998 18 123456 N", "a999818123456n", "  A999818123456N\r\n"):
        assert parse_scan(text) == expected


def test_a_star_check_character_is_accepted() -> None:
    coi = next(c for n in range(1, 500) if (c := CoiId.issue("A9998", 2026, n)).check == "*")
    assert parse_scan(coi.text) == coi


def test_unit_serial_round_trips_and_names_its_case() -> None:
    coi = CoiId("A9998", "18", "123456")
    unit = coi.unit("apheresis_bag", 1)
    assert unit.compact == "A999818123456A01" and len(unit.text) == 17
    assert unit.display == f"A9998 18 123456 A01 {unit.check}"
    assert unit.kind == "apheresis_bag"
    for text in (unit.text, unit.display, unit.text.lower()):
        parsed = parse_scan(text)
        assert parsed == unit and isinstance(parsed, UnitSerial) and parsed.coi == coi
    assert UnitSerial.parse(unit.display) == unit
    assert parse_scan(coi.unit("drug_product_bag", 99).text).kind == "drug_product_bag"


def test_isbt_din_round_trips_with_the_check_in_its_flags() -> None:
    coi = CoiId("A9998", "18", "123456")
    din = coi.isbt_din()
    assert din == "=A999818123456" + str(60 + ALPHABET.index("N"))
    assert parse_scan(din) == IsbtDin(coi, din[-2:], True)
    assert IsbtDin.parse(din).coi == coi


def test_din_with_flag_00_parses_unverified() -> None:
    assert parse_scan("=A99981812345600") == IsbtDin(CoiId("A9998", "18", "123456"), "00", False)


def test_din_with_a_wrong_check_flag_is_rejected_with_the_flag_position() -> None:
    error = refusal("=A99981812345661")
    assert (error.code, error.position) == ("bad_check", 15)
    assert "'61'" in error.message and "'83'" in error.message


@settings(max_examples=200, deadline=None)
@given(coi_ids)
def test_every_single_character_substitution_of_a_coi_identifier_is_rejected(coi: CoiId) -> None:
    assert parse_scan(coi.text) == coi
    assert accepted(substitutions(coi.text)) == []
    assert accepted(substitutions(coi.display)) == []


@settings(max_examples=200, deadline=None)
@given(coi_ids)
def test_every_adjacent_transposition_of_a_coi_identifier_is_rejected(coi: CoiId) -> None:
    assert accepted(transpositions(coi.text)) == []
    assert accepted(transpositions(coi.display)) == []


@settings(max_examples=200, deadline=None)
@given(unit_serials)
def test_every_single_character_substitution_of_a_unit_serial_is_rejected(unit: UnitSerial) -> None:
    assert parse_scan(unit.text) == unit
    assert accepted(substitutions(unit.text)) == []
    assert accepted(substitutions(unit.display)) == []


@settings(max_examples=200, deadline=None)
@given(unit_serials)
def test_every_adjacent_transposition_of_a_unit_serial_is_rejected(unit: UnitSerial) -> None:
    assert accepted(transpositions(unit.text)) == []
    assert accepted(transpositions(unit.display)) == []


@settings(max_examples=200, deadline=None)
@given(coi_ids)
def test_a_checked_din_with_one_wrong_character_never_names_another_case(coi: CoiId) -> None:
    din = coi.isbt_din()
    data_part = [m for m in substitutions(din) if m[14:] == din[14:]]
    assert accepted(data_part) == []
    assert accepted([m for m in transpositions(din) if m[13:] == din[13:]]) == []
    # A flag turned into 00-59 no longer carries a check, but still names the same case.
    for _, parsed in accepted([m for m in substitutions(din) if m[:14] == din[:14]]):
        assert isinstance(parsed, IsbtDin) and parsed.coi == coi and not parsed.check_verified


def test_a_truncated_coi_identifier_is_not_read_as_a_gs1_batch() -> None:
    coi = CoiId("10123", "18", "123456")  # its text minus the check would be AI 10, a batch
    error = refusal(coi.text[:-1])
    assert error.code == "wrong_length" and "14" in error.message
    other = CoiId("A1012", "18", "123456")  # GS first would make the rest AI 10, a batch
    assert (refusal(GS + other.text[1:]).code, refusal(GS + other.text[1:]).position) == (
        "bad_character",
        1,
    )


# --- precise errors: one per code ----------------------------------------------------------

DIN = CoiId.issue("A9998", 2018, 1).isbt_din()


@pytest.mark.parametrize(
    ("text", "code", "position", "names"),
    [
        (" \r\n", "empty", None, "Nothing"),
        ("A999818123456", "wrong_length", None, "14"),
        ("A999818123456NX", "wrong_length", 15, "15"),
        ("A9998#8123456N", "bad_character", 6, "'#'"),
        ("A99981812*456N", "bad_character", 10, "'*' can only be a check character"),
        ("A9O9818123456N", "bad_facility", 3, "use the digit 0?"),
        ("O999818123456N", "bad_facility", 1, "cannot start a facility id"),
        ("A9998I8123456N", "bad_year", 6, "year: use the digit 1?"),
        ("A999818123456X01K", "bad_kind", 14, "unit kind code"),
        ("A999818123456A0OK", "bad_sequence", 16, "unit sequence"),
        ("A999818123456A00K", "bad_sequence", 15, "00"),
        ("A9998 18 123456N", "bad_grouping", 16, "'A9998 18 123456 N'"),
        ("A999818123456X", "bad_check", 14, "'X' but should be 'N' for A999818123456"),
        ("A9998 18 123456 X", "bad_check", 17, "'X' but should be 'N'"),
        ("hello", "unknown_format", None, "tried COI identifier"),
        ("0" + DIN[1:], "ambiguous", 1, "DIN"),
        ("=A99981812345697", "din_bad_flag", 15, "'97'"),
        ("=%A999", "unknown_format", 2, "'=%'"),
        ("]d20109506000134352" + GS + "23ABC", "gs1_unknown_ai", 21, "'23AB'"),
        ("]d210" + "A" * 21, "gs1_bad_length", 26, "AI 10 (batch/lot) must be 1-20"),
        ("0109506000134353", "gs1_bad_check_digit", 16, "check digit 3 but should be 2"),
        ("(01)09506000134352(17)141332", "gs1_bad_date", 25, "month 13"),
        ("(17)240230", "gs1_bad_date", 9, "day 30"),
        ("]d210AB CD", "gs1_bad_character", 8, "' '"),
        ("]d201095060001343", "gs1_truncated", 18, "needs 14 characters but only 12"),
        ("]d210AB" + GS + "10CD", "gs1_duplicate_ai", 9, "AI 10 appears twice"),
        ("https:///01/09506000134352", "dl_bad_uri", None, "no host"),
        ("https://x.org/01/0950\t6000134352", "dl_bad_uri", 22, "control character"),
        ("https://example.com/products/123", "dl_no_primary_key", None, "/01/ (GTIN)"),
        ("https://id.gs1.org/01/09506000134352/21/XYZ/10/ABC", "dl_bad_order", 45, "AI 10"),
        ("https://id.gs1.org/01/09506000134352/10", "dl_bad_path", 38, "'10'"),
        ("https://id.gs1.org/01/09506000134352/17/201225", "dl_misplaced_ai", 38, "query"),
        ("https://id.gs1.org/01/09506000134352?10=AB", "dl_misplaced_ai", 38, "AI 10"),
        ("https://id.gs1.org/01/09506000134352?99999=1", "gs1_unknown_ai", 38, "99999"),
        ("https://id.gs1.org/01/09506000134353", "gs1_bad_check_digit", 36, "should be 2"),
    ],
)
def test_each_refusal_names_its_code_position_and_the_fault(
    text: str, code: str, position: int | None, names: str
) -> None:
    error = refusal(text)
    assert (error.code, error.position) == (code, position), error.message
    assert names in error.message
    assert len(error.message) < 400


def test_constructors_refuse_malformed_parts_precisely() -> None:
    cases = [
        (lambda: CoiId("A9998", "18", "12345"), "bad_serial", "serial"),
        (lambda: CoiId("A998", "18", "123456"), "bad_facility", "facility"),
        (lambda: CoiId.issue("A9998", 2026, 0), "bad_number", "Case number 0"),
        (lambda: CoiId.issue("A9998", 2026, 36**6), "bad_number", "outside"),
        (lambda: CoiId.issue("0A998", 2026, 1), "bad_facility", "cannot start"),
        (lambda: CoiId.issue("A9998", 1999, 1), "bad_year", "1999"),
        (lambda: CoiId("A9998", "18", "123456").unit("bag", 1), "bad_kind", "'bag'"),
        (lambda: CoiId("A9998", "18", "123456").unit("sample", 100), "bad_sequence", "100"),
    ]
    for build, code, names in cases:
        with pytest.raises(IdentifierError) as info:
            build()
        assert info.value.code == code and names in info.value.message


def test_messages_never_echo_a_long_payload() -> None:
    error = refusal("X" * 500)
    assert error.code == "unknown_format" and len(error.message) < 400


def test_a_unit_serial_given_where_a_coi_identifier_is_expected_says_so() -> None:
    unit = CoiId("A9998", "18", "123456").unit("sample", 2)
    with pytest.raises(IdentifierError) as info:
        CoiId.parse(unit.text)
    assert info.value.code == "wrong_length" and "unit serial" in info.value.message


# --- GS1 element strings -------------------------------------------------------------------


def test_real_gs1_payload_with_product_url_parses_exactly() -> None:
    data = parse_scan(
        "01095040000591012112345678p901"
        + GS
        + "101234567p"
        + GS
        + "171411208200http://www.gs1.org/demo/"
    )
    assert data == Gs1Data(
        (
            ("01", "09504000059101"),
            ("21", "12345678p901"),
            ("10", "1234567p"),
            ("17", "141120"),
            ("8200", "http://www.gs1.org/demo/"),
        ),
        "element_string",
        None,
    )
    assert (data.gtin, data.serial, data.batch) == ("09504000059101", "12345678p901", "1234567p")
    assert data.expiry == datetime.date(2014, 11, 20)


def test_real_gs1_pharma_payload_parses_exactly() -> None:
    data = parse_scan("010890381998765921S1ND6MPPFCGG6B869XES" + GS + "1731063010BNav4Cam2")
    assert isinstance(data, Gs1Data)
    assert data.elements == (
        ("01", "08903819987659"),
        ("21", "S1ND6MPPFCGG6B869XES"),
        ("17", "310630"),
        ("10", "BNav4Cam2"),
    )


def test_bracket_form_parses_and_allows_parentheses_inside_a_batch() -> None:
    data = parse_scan("(01)09506000134352(17)201225(10)ABC")
    assert data == Gs1Data(
        (("01", "09506000134352"), ("17", "201225"), ("10", "ABC")), "element_string", None
    )
    assert parse_scan("(10)A(B)C(21)X").elements == (("10", "A(B)C"), ("21", "X"))


def test_printed_bracket_form_with_spaces_parses() -> None:
    data = parse_scan("(01) 09506000134352 (17) 201225 (10) ABC")
    assert data.elements == (("01", "09506000134352"), ("17", "201225"), ("10", "ABC"))


def test_symbology_identifier_is_stripped_and_recorded() -> None:
    for prefix in ("]d2", "]C1", "]Q3", "]e0", "]J1"):
        data = parse_scan(prefix + "0109506000134352" + "10ABC")
        assert isinstance(data, Gs1Data) and data.symbology == prefix
        assert data.elements == (("01", "09506000134352"), ("10", "ABC"))


def test_fnc1_in_first_position_and_a_trailing_cr_lf_are_accepted() -> None:
    data = parse_scan(GS + "0109506000134352\r\n")
    assert data.gtin == "09506000134352"


def test_a_non_gs1_symbology_identifier_is_stripped_before_our_own_formats() -> None:
    coi = CoiId("A9998", "18", "123456")
    assert parse_scan("]d1" + coi.text) == coi
    assert parse_scan("]C0" + coi.isbt_din()).coi == coi
    assert refusal("]C00109506000134352").code == "unknown_format"


def test_measures_and_glns_parse_with_their_fixed_lengths() -> None:
    data = parse_scan("]C13103000150" + "4109506000134352" + "37" + "12" + GS + "422276")
    assert data.elements == (
        ("3103", "000150"),
        ("410", "9506000134352"),
        ("37", "12"),
        ("422", "276"),
    )


def test_an_invalid_gtin_check_digit_is_rejected() -> None:
    error = refusal("]d20109506000134351")
    assert (error.code, error.position) == ("gs1_bad_check_digit", 19)


def test_an_expiry_with_month_13_is_rejected() -> None:
    error = refusal("]d2010950600013435217141332")
    assert (error.code, error.position) == ("gs1_bad_date", 24)
    assert "month 13" in error.message


def test_day_00_means_the_last_day_of_the_month() -> None:
    assert parse_scan("(01)09506000134352(17)240200").expiry == datetime.date(2024, 2, 29)
    assert parse_scan("(17)230200").expiry == datetime.date(2023, 2, 28)
    assert refusal("(17)230229").code == "gs1_bad_date"


def test_expiry_date_and_time_refuses_hour_24() -> None:
    assert parse_scan("(7003)2412312359").get("7003") == "2412312359"
    assert refusal("(7003)2412312400").code == "gs1_bad_date"


def test_an_unknown_ai_is_named() -> None:
    error = refusal("(235)ABC")
    assert (error.code, error.position) == ("gs1_unknown_ai", 1)
    assert "(235)" in error.message


def test_a_variable_field_longer_than_its_maximum_is_rejected() -> None:
    error = refusal("(21)" + "A" * 21)
    assert (error.code, error.position) == ("gs1_bad_length", 25)
    assert "21" in error.message


# --- GS1 Digital Link ----------------------------------------------------------------------


def test_digital_link_example_parses_with_decoded_values() -> None:
    data = parse_scan(
        "https://id.gs1.org/01/09506000134352/10/ABC%2F1/21/XYZ?17=201225&linkType=gs1:pip"
    )
    assert data == Gs1Data(
        (("01", "09506000134352"), ("10", "ABC/1"), ("21", "XYZ"), ("17", "201225")),
        "digital_link",
        None,
    )
    assert data.expiry == datetime.date(2020, 12, 25)


def test_digital_link_pads_a_gtin_13_and_accepts_any_host_and_prefix() -> None:
    data = parse_scan("HTTPS://brand.example/some/prefix/01/9506000134352/21/A+B?3103=000150#x")
    assert data.elements == (("01", "09506000134352"), ("21", "A+B"), ("3103", "000150"))


def test_digital_link_sscc_is_a_primary_key() -> None:
    assert parse_scan("https://x.org/00/095060001343528402").sscc == "095060001343528402"


def test_digital_link_refuses_a_repeated_primary_key_as_out_of_order() -> None:
    error = refusal("https://id.gs1.org/01/09506000134352/01/09506000134352")
    assert (error.code, error.position) == ("dl_bad_order", 38)


def test_digital_link_refuses_a_bad_date_in_the_query() -> None:
    error = refusal("https://id.gs1.org/01/09506000134352?17=201332")
    assert error.code == "gs1_bad_date" and "month 13" in error.message
