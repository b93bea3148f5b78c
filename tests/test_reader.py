"""Header reading on pydicom's real files and on written edge cases."""

from __future__ import annotations

import io

import pydicom
import pytest

from conftest import testdata as real_file
from dicom_bytes import write_dicom
from xnat_dicom_mappings.reader import UnreadableFile, read_header, resolve_character_set
from xnat_dicom_mappings.tags import parse_tag

PIXEL_SPACING = parse_tag("PixelSpacing")
MR_VARIANTS = ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
               "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "zipMR.gz"]


def values(header, text):
    found = header.lookup(parse_tag(text))
    assert len(found) == 1
    return found[0].values


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_mr_variants_pixel_spacing(name):
    header = read_header(real_file(name), [PIXEL_SPACING])
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125 ")


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_mr_variants_patient_name(name):
    header = read_header(real_file(name), [parse_tag("PatientName")])
    assert values(header, "PatientName") == ("CompressedSamples^MR1 ",)


def test_ct_private_creator_blocks():
    paths = [parse_tag(t) for t in ['(0019,"GEMS_ACQU_01",03)', '(0043,"GEMS_PARM_01",13)',
                                    '(0009,"GEMS_IDEN_01",27)']]
    header = read_header(real_file("CT_small.dcm"), paths)
    assert values(header, '(0019,"GEMS_ACQU_01",03)') == ("373.750000",)
    assert values(header, '(0043,"GEMS_PARM_01",13)') == (107, 21, 4, 2, 20)
    assert values(header, '(0009,"GEMS_IDEN_01",27)') == (862399669,)


def test_ct_wrong_creator_absent():
    path = parse_tag('(0019,"SIEMENS MR HEADER",03)')
    header = read_header(real_file("CT_small.dcm"), [path])
    assert header.lookup(path) == []


def test_big_endian_old_date():
    header = read_header(real_file("ExplVR_BigEnd.dcm"), [parse_tag("StudyDate")])
    assert values(header, "StudyDate") == ("1997.04.24",)


def test_binary_vr_numbers():
    header = read_header(real_file("rtdose.dcm"), [parse_tag("Rows"), parse_tag("BitsAllocated")])
    assert values(header, "Rows") == (10,)
    assert values(header, "BitsAllocated") == (32,)


def test_overlay_file_reads():
    header = read_header(real_file("examples_overlay.dcm"), [parse_tag("RepetitionTime")])
    assert values(header, "RepetitionTime") == ("5.53",)


def test_enhanced_ct_shared_groups():
    header = read_header(real_file("eCT_Supplemental.dcm"), [PIXEL_SPACING])
    found = header.lookup(PIXEL_SPACING)
    assert found[0].values == ("0.388672", "0.388672 ")
    assert found[0].location == "shared functional groups"


def test_enhanced_ct_per_frame_differs():
    path = parse_tag("ImagePositionPatient")
    found = read_header(real_file("eCT_Supplemental.dcm"), [path]).lookup(path)
    assert [item.frames for item in found] == [(1,), (2,)]
    assert found[0].values[2] == "-159.000 "


def test_enhanced_ct_explicit_path():
    path = parse_tag("SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness")
    header = read_header(real_file("eCT_Supplemental.dcm"), [path])
    assert header.lookup(path)[0].values == ("10.0000 ",)


def test_enhanced_mr_without_groups():
    paths = [parse_tag("RepetitionTime"), parse_tag("MagneticFieldStrength")]
    header = read_header(real_file("emri_small.dcm"), paths)
    assert header.lookup(paths[0]) == []
    assert values(header, "MagneticFieldStrength") == ("3 ",)


def test_dataset_source_not_reread():
    dataset = pydicom.dcmread(real_file("MR_small.dcm"))
    header = read_header(dataset, [PIXEL_SPACING])
    assert header.source is dataset
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125 ")


def test_dataset_typed_elements():
    dataset = pydicom.dcmread(real_file("MR_small.dcm"))
    dataset.PatientWeight = "72.50"
    assert dataset.PixelSpacing == [0.3125, 0.3125]  # pydicom converts the element here
    header = read_header(dataset, [PIXEL_SPACING, parse_tag("PatientWeight")])
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125")
    assert values(header, "PatientWeight") == ("72.50",)


def test_open_binary_file():
    with open(real_file("MR_small.dcm"), "rb") as stream:
        header = read_header(stream, [PIXEL_SPACING])
    assert values(header, "PixelSpacing") == ("0.3125", "0.3125 ")


def test_bytes_io_source():
    with open(real_file("CT_small.dcm"), "rb") as stream:
        data = io.BytesIO(stream.read())
    header = read_header(data, [parse_tag("KVP")], name="upload.dcm")
    assert header.name == "upload.dcm"
    assert values(header, "KVP") == ("120 ",)


def test_stops_before_unrequested_tags():
    header = read_header(real_file("MR_small.dcm"), [parse_tag("PatientName")])
    with pytest.raises(ValueError, match="pass every tag path"):
        header.lookup(PIXEL_SPACING)


def test_text_file_unreadable(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("Dear colleague, the scans are attached.\n")
    with pytest.raises(UnreadableFile, match="not a DICOM file"):
        read_header(path, [PIXEL_SPACING])


def test_missing_file_unreadable(tmp_path):
    with pytest.raises(UnreadableFile, match="cannot open"):
        read_header(tmp_path / "absent.dcm", [PIXEL_SPACING])


def test_truncated_header_unreadable(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [(0x00101030, "DS", b"68.5"),
                                            (0x00280030, "DS", b"0.5\\0.5")])
    data = open(path, "rb").read()
    (tmp_path / "cut.dcm").write_bytes(data[:-4])
    with pytest.raises(UnreadableFile, match="ends inside element"):
        read_header(tmp_path / "cut.dcm", [PIXEL_SPACING])


def test_text_mode_file_rejected(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x")
    with open(path) as stream, pytest.raises(TypeError, match="binary mode"):
        read_header(stream, [PIXEL_SPACING])


def test_wrong_source_type():
    with pytest.raises(TypeError, match="path, a binary file or a pydicom Dataset"):
        read_header(42, [PIXEL_SPACING])


@pytest.mark.parametrize(("raw", "encoding", "problem"), [
    (b"ISO_IR 100", "latin_1", False),
    (b"ISO_IR 192", "UTF8", False),
    (b"ISO-IR 100", "latin_1", True),
    (b"\x00ISO_IR 100", "latin_1", True),
    (b"ISO_IR 100\x00", "latin_1", False),
])
def test_character_set_terms(raw, encoding, problem):
    charset = resolve_character_set(raw)
    assert charset.encodings == (encoding,)
    assert (charset.problem is not None) == problem


def test_character_set_unknown():
    charset = resolve_character_set(b"Not Supplied")
    assert charset.encodings == ()
    assert "no known character set" in charset.problem


def test_utf8_name(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [(0x00080005, "CS", b"ISO_IR 192"),
                                            (0x00100010, "PN", "Łukasz^Żółw".encode())])
    found = read_header(path, [parse_tag("PatientName")]).lookup(parse_tag("PatientName"))
    assert found[0].values == ("Łukasz^Żółw ",)
    assert found[0].repairs == ()


def test_wrong_declared_charset(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", [(0x00080005, "CS", b"ISO_IR 192"),
                                            (0x00100010, "PN", "Müller".encode("latin-1"))])
    found = read_header(path, [parse_tag("PatientName")]).lookup(parse_tag("PatientName"))
    assert found[0].values == ("Müller",)
    assert "not valid ISO_IR 192" in found[0].repairs[0]


def test_per_frame_conflict_written(tmp_path):
    from test_cases import _sequence
    from dicom_bytes import dataset_bytes

    def frame(value: bytes) -> bytes:
        timing = _sequence(0x00189112, [dataset_bytes([(0x00180081, "DS", value)], identity=False)])
        return dataset_bytes([timing], identity=False)

    per_frame = _sequence(0x52009230, [frame(b"10"), frame(b"10"), frame(b"20")])
    path = write_dicom(tmp_path / "a.dcm", [per_frame])
    found = read_header(path, [parse_tag("EchoTime")]).lookup(parse_tag("EchoTime"))
    assert [(item.values, item.frames) for item in found] == [(("10",), (1, 2)), (("20",), (3,))]
