"""The menu benchmark's helpers: its sections in docs/benchmarks.md, the second key's RTP."""

from __future__ import annotations

import struct
from itertools import pairwise
from pathlib import Path

import pytest

from bench.menu import DTMF_PCAP, Figures, later_key_pcap
from bench.report import write_sections


def test_write_sections_replaces_its_own_and_keeps_the_others(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n## IVR step — sqlite\n\nold ivr\n\n"
                      "## Menu — sqlite\n\nold\n")
    write_sections(output, {"## Menu — sqlite": "## Menu — sqlite\n\nnew\n",
                            "## Menu — postgresql": "## Menu — postgresql\n\npg\n"})
    assert output.read_text() == ("# Benchmarks\n\n## IVR step — sqlite\n\nold ivr\n\n"
                                  "## Menu — sqlite\n\nnew\n\n## Menu — postgresql\n\npg\n")


def rtp_headers(path: Path) -> list[tuple[int, int]]:
    data, offset, found = path.read_bytes(), 24, []
    while offset < len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        found.append(struct.unpack_from("!HI", data, offset + 16 + 14 + 20 + 8 + 2))
        offset += 16 + length
    return found


@pytest.mark.skipif(not DTMF_PCAP.parent.exists(), reason="sip-tester is not installed")
def test_the_second_key_comes_after_the_first(tmp_path: Path) -> None:
    first = rtp_headers(DTMF_PCAP.with_name(DTMF_PCAP.name.format("5")))
    original = rtp_headers(DTMF_PCAP.with_name(DTMF_PCAP.name.format("2")))
    moved = rtp_headers(later_key_pcap("2", "5", tmp_path / "two.pcap"))
    assert len(moved) == len(original)
    assert min(ts for _, ts in moved) > max(ts for _, ts in first)
    assert min(seq for seq, _ in moved) > max(seq for seq, _ in first)
    # the same event, only moved: the gaps between packets are kept
    assert [b[0] - a[0] for a, b in pairwise(moved)] == [
        b[0] - a[0] for a, b in pairwise(original)]


def test_figures_are_nearest_rank_percentiles_in_ms() -> None:
    figures = Figures.of([i / 1000 for i in range(1, 101)])  # 1 … 100 ms
    assert (figures.count, figures.p50, figures.p90, figures.p99, figures.max) == (
        100, pytest.approx(50), pytest.approx(90), pytest.approx(99), pytest.approx(100))
