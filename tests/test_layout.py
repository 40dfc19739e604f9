"""The message layout has one source (cosim/wire/layout.py); the C++ header is generated from it."""

from cosim.wire import layout


def test_committed_cpp_header_is_generated_from_layout():
    assert layout.CPP_HEADER_PATH.read_text() == layout.render_cpp_header(), \
        "ns3_scenarios/cosim-messages.h is stale: run `make layout`"


def test_header_asserts_every_offset_the_python_side_uses():
    text = layout.render_cpp_header()
    for struct in layout.STRUCTS:
        dt = struct.dtype
        assert f"sizeof({struct.name}) == {dt.itemsize}" in text
        for name, (_, offset) in dt.fields.items():
            assert f"offsetof({struct.name}, {name}) == {offset}" in text


def test_prelude_is_stable():
    """magic and layout_version must stay where an old binary looks for them."""
    fields = layout.SEGMENT_HEADER.dtype.fields
    assert fields["magic"][1] == 0
    assert fields["layout_version"][1] == 4
    assert fields["peer_layout_version"][1] == 8


def test_regions_do_not_overlap_and_are_aligned():
    seg = layout.SegmentLayout(max_devices=7, max_steps=30)
    offsets = list(seg.offsets.values())
    assert offsets == sorted(offsets)
    assert all(o % 8 == 0 for o in offsets)
    assert seg.offsets["plan_steps"] == seg.offsets["plan_records"] + 7 * layout.PLAN_RECORD.dtype.itemsize
    last = seg.offsets["outcome_steps"]
    assert seg.total_bytes == last + 30 * layout.OUTCOME_STEP.dtype.itemsize


def test_check_mode_detects_a_stale_header(tmp_path, monkeypatch):
    stale = tmp_path / "cosim-messages.h"
    stale.write_text("// old\n")
    monkeypatch.setattr(layout, "CPP_HEADER_PATH", stale)
    assert layout.main(["--check"]) == 1
    assert layout.main([]) == 0
    assert layout.main(["--check"]) == 0
