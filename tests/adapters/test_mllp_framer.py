"""MLLP blocks cut from a byte stream: whole, oversized, cut off, or garbage between them."""

from __future__ import annotations

from pumpguard.adapters.hl7v2.mllp_blocks import CutOff, Frame, Framer, Garbage, Oversize, frame


def feed_all(framer: Framer, *chunks: bytes) -> list[object]:
    return [item for chunk in chunks for item in framer.feed(chunk)]


def test_frame_split_across_reads_is_one_message():
    data = frame(b"MSH|a\rPID|b\r")
    items = feed_all(Framer(), *(data[i : i + 3] for i in range(0, len(data), 3)))
    assert items == [Frame(b"MSH|a\rPID|b\r")]


def test_end_byte_at_a_read_boundary_swallows_its_cr_in_the_next_read():
    framer = Framer()
    assert framer.feed(b"\x0bMSH|1\r\x1c") == [Frame(b"MSH|1\r")]
    assert framer.feed(b"\r\x0bMSH|2\r\x1c\r") == [Frame(b"MSH|2\r")]
    assert not framer.garbage_pending


def test_blank_bytes_between_frames_are_not_garbage():
    items = feed_all(Framer(), frame(b"MSH|1") + b"\r\n \n" + frame(b"MSH|2"))
    assert items == [Frame(b"MSH|1"), Frame(b"MSH|2")]


def test_oversized_frame_keeps_only_its_head_and_the_next_frame_is_whole():
    framer = Framer(max_message_bytes=10_000)
    big = b"MSH|big\r" + b"x" * 50_000
    items = feed_all(framer, b"\x0b", big[:30_000], big[30_000:] + b"\x1c\r", frame(b"MSH|ok"))
    assert isinstance(items[0], Oversize)
    assert items[0].size == len(big)
    assert items[0].head.startswith(b"MSH|big")
    assert len(items[0].head) <= 4096
    assert items[1] == Frame(b"MSH|ok")
    assert framer.pending() == 0
    assert not framer.inside


def test_garbage_before_a_frame_is_reported_when_the_frame_starts():
    framer = Framer()
    assert framer.feed(b"hello there") == []
    assert framer.garbage_pending
    assert framer.feed(frame(b"MSH|1")) == [Garbage(b"hello there", 11), Frame(b"MSH|1")]


def test_garbage_with_no_frame_after_it_is_given_up_by_flush():
    framer = Framer()
    framer.feed(b"\x1c\rjunk")
    assert framer.flush_garbage() == Garbage(b"\x1c\rjunk", 6)
    assert framer.flush_garbage() is None


def test_endless_garbage_is_reported_each_time_it_passes_the_limit():
    framer = Framer(max_message_bytes=1000)
    items = feed_all(framer, *(b"z" * 600 for _ in range(4)))
    assert [type(i) for i in items] == [Garbage, Garbage]
    assert all(len(i.head) <= 4096 for i in items if isinstance(i, Garbage))


def test_start_byte_inside_a_frame_cuts_the_first_one_off():
    items = feed_all(Framer(), b"\x0bMSH|half" + frame(b"MSH|whole"))
    assert items == [CutOff(b"MSH|half", 8), Frame(b"MSH|whole")]
