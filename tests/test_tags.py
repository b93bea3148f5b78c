"""Tests of the tag grammar: accepted forms, canonical forms, rejections, tag_info."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydicom import datadict

from xnat_dicom_mappings.errors import TagSyntaxError
from xnat_dicom_mappings.tags import (
    MAX_DEPTH,
    MAX_INDEX,
    TagPath,
    TagStep,
    canonical_tag,
    parse_tag,
    tag_info,
)

ACCEPTED = [
    ("0x00101030", "0x00101030"),
    ("0X00101030", "0x00101030"),
    ("00101030", "0x00101030"),
    ("(0010,1030)", "0x00101030"),
    ("0010,1030", "0x00101030"),
    ("( 0010 , 1030 )", "0x00101030"),
    ("0010 ,1030", "0x00101030"),
    ("  PatientWeight  ", "0x00101030"),
    ("PatientWeight", "0x00101030"),
    ("0x0028abcd", "0x0028ABCD"),
    ("00100020", "0x00100020"),
    ("(0008,0020)", "0x00080020"),
    ("OverlayData", "0x60003000"),
    ("0x00191001", "0x00191001"),
    ("(0019,0010)", "0x00190010"),
    ("PixelSpacing[1]", "0x00280030[1]"),
    ("PixelSpacing [ 01 ]", "0x00280030[1]"),
    ("0x00280030[0]", "0x00280030[0]"),
    ('(0019,"SIEMENS MR HEADER",0C)', '(0019,"SIEMENS MR HEADER",0C)'),
    ('(0019,"SIEMENS MR HEADER",0c)', '(0019,"SIEMENS MR HEADER",0C)'),
    ('(0019,"SIEMENS MR HEADER",xx0C)', '(0019,"SIEMENS MR HEADER",0C)'),
    ('( 0019 , "  SIEMENS MR HEADER " , XX0c )', '(0019,"SIEMENS MR HEADER",0C)'),
    ('0019,"SIEMENS MR HEADER",0C', '(0019,"SIEMENS MR HEADER",0C)'),
    ('(0029,"SIEMENS CSA HEADER",10)[1]', '(0029,"SIEMENS CSA HEADER",10)[1]'),
    ('(0019,"GE.1 [v2], (x)",FF)', '(0019,"GE.1 [v2], (x)",FF)'),
    (
        "SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing",
        "0x52009229[0].0x00289110[0].0x00280030",
    ),
    (
        "0x52009229[0].0x00289110[0].0x00280030",
        "0x52009229[0].0x00289110[0].0x00280030",
    ),
    (
        "(5200,9230)[12] . MRTimingAndRelatedParametersSequence[0] . RepetitionTime",
        "0x52009230[12].0x00189112[0].0x00180080",
    ),
    (
        "SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[1]",
        "0x52009229[0].0x00289110[0].0x00280030[1]",
    ),
    (
        'ReferencedImageSequence[0].(0019,"ACME.CT",01)',
        '0x00081140[0].(0019,"ACME.CT",01)',
    ),
    (
        '(0029,"ACME",20)[0].PatientWeight',
        '(0029,"ACME",20)[0].0x00101030',
    ),
]

REJECTED = [
    ("", "empty"),
    ("   ", "empty"),
    ("PatientWeigth", "did you mean PatientWeight"),
    ("patientweight", "did you mean PatientWeight"),
    ("NoSuchKeywordAtAll", "not a DICOM keyword"),
    ("0x0010103", "7 hex digits"),
    ("0x001010300", "9 hex digits"),
    ("1030", "4 hex digits"),
    ("0x0010103G", "neither a tag number nor a DICOM keyword"),
    ("(0010,103)", "two groups of 4 hex digits"),
    ("(0010,1030", "two groups of 4 hex digits"),
    ("(0010;1030)", "neither"),
    ("(0010,0000)", "group length"),
    ("0x00280000", "group length"),
    ("CommandGroupLength", "command group 0000"),
    ("(0000,0100)", "command group 0000"),
    ("PixelData", "Pixel Data"),
    ("0x7FE00008", "Float Pixel Data"),
    ("(7FE0,0009)", "Double Float Pixel Data"),
    ("0xFFFEE000", "item or delimiter"),
    ("(FFFE,E0DD)", "item or delimiter"),
    ("ReferencedImageSequence", "sequence (SQ)"),
    ("SharedFunctionalGroupsSequence[0]", "sequence (SQ)"),
    ("0x00011010", "group 0001"),
    ("0x00190005", "neither a private creator"),
    ("(0019,0100)", "neither a private creator"),
    ('(0018,"ACME",01)', "private groups are odd"),
    ('(0001,"ACME",01)', "does not allow"),
    ('(0007,"ACME",01)', "does not allow"),
    ('(FFFF,"ACME",01)', "does not allow"),
    ('(0019,"",01)', "empty private creator"),
    ('(0019,"   ",01)', "empty private creator"),
    ('(0019,"' + "A" * 65 + '",01)', "65 characters"),
    ('(0019,"A\\B",01)', "backslash"),
    ('(0019,"A\tB",01)', "control character"),
    ('(0019,"A\x85B",01)', "control character"),
    ('(0019,"ACME",1)', "private tag of the form"),
    ('(0019,"ACME",100)', "private tag of the form"),
    ('(0019,"ACME",01', "private tag of the form"),
    ('(0019,"ACME,01)', "closing double quote"),
    ("PatientWeight[0].PixelSpacing", "not SQ"),
    ("ReferencedImageSequence.PixelSpacing", "needs a sequence item index"),
    ("PixelSpacing[0][1]", "more than one index"),
    ("PixelSpacing[x]", "malformed index"),
    ("PixelSpacing[-1]", "malformed index"),
    ("PixelSpacing[1", "malformed index"),
    ("PixelSpacing[1]x", "malformed index"),
    ("[0]", "no tag before it"),
    ("PixelSpacing[1234567]", "larger than the maximum"),
    ("a..b", "step 2 of the path is empty"),
    (".PixelSpacing", "step 1 of the path is empty"),
    ("PixelSpacing.", "step 2 of the path is empty"),
    ("0x" + "0" * 2000, "longer than"),
]


@pytest.mark.parametrize("text, canonical", ACCEPTED)
def test_accepted_canonical(text, canonical):
    assert canonical_tag(text) == canonical


@pytest.mark.parametrize("text, canonical", ACCEPTED)
def test_accepted_round_trip(text, canonical):
    path = parse_tag(text)
    assert parse_tag(path.canonical) == path


@pytest.mark.parametrize("text, fragment", REJECTED)
def test_rejected_message(text, fragment):
    with pytest.raises(TagSyntaxError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_tag(text)


@pytest.mark.parametrize("text, fragment", REJECTED)
def test_rejected_lists_forms(text, fragment):
    with pytest.raises(TagSyntaxError) as caught:
        parse_tag(text)
    assert "Accepted forms:" in str(caught.value)
    assert caught.value.text == text


def test_rejected_names_text():
    with pytest.raises(TagSyntaxError, match="'PatientWeigth'"):
        parse_tag("PatientWeigth")


def test_non_text_rejected():
    with pytest.raises(TagSyntaxError, match="expected text"):
        parse_tag(0x00101030)


def test_leading_zero_not_octal():
    assert parse_tag("00100020").steps[0].tag == 0x00100020


def test_plain_steps():
    path = parse_tag("PatientWeight")
    assert path.steps == (TagStep(tag=0x00101030),)
    assert path.value_index is None
    assert path.is_plain
    assert path.first_group == 0x0010


def test_value_index_not_plain():
    path = parse_tag("PixelSpacing[1]")
    assert path.value_index == 1
    assert path.steps[0].item is None
    assert not path.is_plain


def test_private_step_fields():
    step = parse_tag('(0019,"SIEMENS MR HEADER",0C)').steps[0]
    assert step.tag is None
    assert step.private_group == 0x0019
    assert step.private_creator == "SIEMENS MR HEADER"
    assert step.private_offset == 0x0C
    assert step.item is None
    assert step.is_anchored


def test_private_not_plain():
    path = parse_tag('(0019,"SIEMENS MR HEADER",0C)')
    assert not path.is_plain
    assert path.first_group == 0x0019


def test_private_tag_block():
    step = parse_tag('(0019,"ACME_CUSTOM",01)').steps[0]
    assert step.private_tag(0x10) == 0x00191001
    assert step.private_tag(0x11) == 0x00191101


def test_private_tag_bad_block():
    step = parse_tag('(0019,"ACME_CUSTOM",01)').steps[0]
    with pytest.raises(ValueError, match="0x10 to 0xFF"):
        step.private_tag(0x09)


def test_private_tag_public_step():
    with pytest.raises(ValueError, match="creator-anchored"):
        TagStep(tag=0x00101030).private_tag(0x10)


def test_path_steps():
    path = parse_tag("SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[2].PixelSpacing[1]")
    assert [step.tag for step in path.steps] == [0x52009229, 0x00289110, 0x00280030]
    assert [step.item for step in path.steps] == [0, 2, None]
    assert path.value_index == 1
    assert path.first_group == 0x5200
    assert not path.is_plain


def test_path_max_depth():
    steps = ["ReferencedImageSequence[0]"] * (MAX_DEPTH - 1) + ["PatientWeight"]
    assert len(parse_tag(".".join(steps)).steps) == MAX_DEPTH


def test_path_too_deep():
    steps = ["ReferencedImageSequence[0]"] * MAX_DEPTH + ["PatientWeight"]
    with pytest.raises(TagSyntaxError, match=f"at most {MAX_DEPTH} steps"):
        parse_tag(".".join(steps))


def test_max_index_accepted():
    assert parse_tag(f"PixelSpacing[{MAX_INDEX}]").value_index == MAX_INDEX


def test_unknown_public_sequence_allowed():
    # A public tag missing from pydicom's dictionary may be a sequence of a newer edition.
    assert canonical_tag("0x00081234[0].PatientWeight") == "0x00081234[0].0x00101030"


def test_from_steps_canonical():
    path = TagPath.from_steps([TagStep(0x52009229, item=0), TagStep(0x00280030)], 1)
    assert path.canonical == "0x52009229[0].0x00280030[1]"
    assert parse_tag(path.canonical) == path


def test_str_is_canonical():
    assert str(parse_tag("PatientWeight")) == "0x00101030"


INFO = [
    (
        "PatientWeight",
        {"canonical": "0x00101030", "keyword": "PatientWeight", "name": "Patient's Weight",
         "vr": "DS", "vm": "1"},
    ),
    (
        "PixelSpacing[1]",
        {"canonical": "0x00280030[1]", "keyword": "PixelSpacing", "vr": "DS", "vm": "2",
         "value_index": 1},
    ),
    (
        "SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness",
        {"keyword": "SliceThickness", "vr": "DS", "depth": 3},
    ),
    (
        '(0019,"SIEMENS MR HEADER",0C)',
        {"keyword": None, "name": "B_value", "vr": "IS", "vm": "1",
         "private_group": 0x0019, "private_creator": "SIEMENS MR HEADER", "private_offset": 0x0C},
    ),
    (
        '(0019,"ACME_CUSTOM",01)',
        {"keyword": None, "name": None, "vr": None, "vm": None, "private_creator": "ACME_CUSTOM",
         "private_offset": 0x01},
    ),
    ("(0019,0010)", {"name": "Private Creator", "vr": "LO", "private_creator": None}),
    ("0x00191001", {"keyword": None, "name": None, "vr": None}),
    ("0x00081234", {"keyword": None, "name": None, "vr": None, "vm": None}),
]  # fmt: skip


@pytest.mark.parametrize("text, expected", INFO)
def test_tag_info(text, expected):
    info = tag_info(text)
    for key, value in expected.items():
        assert info[key] == value, key


def test_tag_info_keys():
    assert {"canonical", "keyword", "name", "vr", "vm"} <= set(tag_info("PatientWeight"))


def test_tag_info_invalid():
    with pytest.raises(TagSyntaxError, match="did you mean"):
        tag_info("PatientWeigh")


# Property tests

_FORBIDDEN_PRIVATE_GROUPS = {0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF}
_PIXEL_DATA = {0x7FE00008, 0x7FE00009, 0x7FE00010}


def _vr(tag: int) -> str | None:
    try:
        return datadict.get_entry(tag)[0]
    except KeyError:
        return None


def _allowed_last(tag: int) -> bool:
    """Whether the grammar accepts a tag number as the last step of a path."""
    group, element = tag >> 16, tag & 0xFFFF
    if group in (0x0000, 0xFFFE) or element == 0 or tag in _PIXEL_DATA:
        return False
    if group % 2 == 1 and (
        group in _FORBIDDEN_PRIVATE_GROUPS or element < 0x10 or 0x100 <= element < 0x1000
    ):
        return False
    return _vr(tag) != "SQ"


def _forms(tag: int) -> list[str]:
    group, element = tag >> 16, tag & 0xFFFF
    forms = [
        f"0x{tag:08X}",
        f"0x{tag:08x}",
        f"0X{tag:08X}",
        f"{tag:08X}",
        f"({group:04X},{element:04X})",
        f"( {group:04x} , {element:04x} )",
        f"{group:04X},{element:04X}",
    ]
    keyword = datadict.keyword_for_tag(tag)
    if keyword:
        forms.append(keyword)
    return forms


_SEQUENCE_TAGS = sorted(tag for tag, entry in datadict.DicomDictionary.items() if entry[0] == "SQ")
_LEAF_TAGS = sorted(
    tag for tag in datadict.DicomDictionary if tag < 0xFFFE0000 and _allowed_last(tag)
)
_CREATOR_ALPHABET = st.characters(
    min_codepoint=0x20, max_codepoint=0x24F, exclude_characters='"\\\x7f', exclude_categories=("Cc",)
)
_CREATORS = st.text(_CREATOR_ALPHABET, min_size=1, max_size=64).filter(lambda text: text.strip(" "))
_PRIVATE_GROUPS = st.integers(0, 0x7FFF).map(lambda n: 2 * n + 1).filter(
    lambda group: group not in _FORBIDDEN_PRIVATE_GROUPS
)


@given(st.integers(0, 0xFFFFFFFF), st.data())
def test_any_tag_forms_agree(tag, data):
    assume(_allowed_last(tag))
    form = data.draw(st.sampled_from(_forms(tag)))
    path = parse_tag(form)
    assert path.canonical == f"0x{tag:08X}"
    assert parse_tag(path.canonical) == path


@given(st.sampled_from(_LEAF_TAGS), st.data())
def test_dictionary_forms_agree(tag, data):
    form = data.draw(st.sampled_from(_forms(tag)))
    assert canonical_tag(form) == f"0x{tag:08X}"


@given(_PRIVATE_GROUPS, _CREATORS, st.integers(0, 0xFF), st.booleans(), st.booleans())
def test_private_round_trip(group, creator, offset, xx_prefix, spaces):
    offset_text = ("xx" if xx_prefix else "") + f"{offset:02x}"
    padding = " " if spaces else ""
    text = f'({padding}{group:04x}{padding},{padding}"{creator}"{padding},{offset_text})'
    path = parse_tag(text)
    assert path.steps[0].private_creator == creator.strip(" ")
    assert path.canonical == f'({group:04X},"{creator.strip(" ")}",{offset:02X})'
    assert parse_tag(path.canonical) == path


_PUBLIC_SEQUENCE_STEP = st.tuples(st.sampled_from(_SEQUENCE_TAGS), st.integers(0, MAX_INDEX))
_PRIVATE_SEQUENCE_STEP = st.tuples(_PRIVATE_GROUPS, _CREATORS, st.integers(0, 0xFF), st.integers(0, 99))


def _public_text(tag: int, use_keyword: bool) -> str:
    keyword = datadict.keyword_for_tag(tag)
    if use_keyword and keyword:
        return keyword
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@given(
    st.lists(st.one_of(_PUBLIC_SEQUENCE_STEP, _PRIVATE_SEQUENCE_STEP), max_size=MAX_DEPTH - 1),
    st.sampled_from(_LEAF_TAGS),
    st.none() | st.integers(0, MAX_INDEX),
    st.booleans(),
)
def test_path_round_trip(middle, leaf, value_index, use_keywords):
    texts = []
    for step in middle:
        if len(step) == 2:
            texts.append(f"{_public_text(step[0], use_keywords)}[{step[1]}]")
        else:
            group, creator, offset, item = step
            texts.append(f'({group:04X},"{creator}",{offset:02X})[{item}]')
    last = _public_text(leaf, use_keywords)
    if value_index is not None:
        last += f"[{value_index}]"
    texts.append(last)

    path = parse_tag(".".join(texts))
    assert len(path.steps) == len(middle) + 1
    assert path.value_index == value_index
    assert parse_tag(path.canonical) == path


_GRAMMAR_CHARACTERS = st.sampled_from(list('0123456789abcdefABCDEFxX(),."[] \\\t\x00') + ["Sequence"])


@given(st.text(max_size=80))
def test_random_text_only_syntax_error(text):
    try:
        path = parse_tag(text)
    except TagSyntaxError:
        return
    assert parse_tag(path.canonical) == path


@given(st.lists(_GRAMMAR_CHARACTERS, max_size=40).map("".join))
def test_grammar_noise_only_syntax_error(text):
    try:
        path = parse_tag(text)
    except TagSyntaxError:
        return
    assert parse_tag(path.canonical) == path
