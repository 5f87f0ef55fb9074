"""The remote shell's framing: output ends exactly where our marker starts; streamed lines match it."""

from __future__ import annotations

import pytest

from etcdrescue.ssh.shell import _emit, _marker

TOKEN = b"__etcdrescue_0123456789abcdef__"


def framed(output: bytes, code: int = 0) -> bytes:
    return output + b"\n" + TOKEN + b" " + str(code).encode() + b"\n"


@pytest.mark.parametrize("output", [b"", b"x", b"x\n", b"x\n\n", b"a\nb", b"a\nb\n", b"\n", TOKEN[:-2] + b"\n"])
def test_output_is_exact_and_streamed_lines_match(output: bytes) -> None:
    buf = framed(output)
    end = _marker(bytearray(buf), TOKEN)
    assert buf[: end - 1] == output
    for chunk in (1, 3, len(buf)):
        lines: list[str] = []
        grown = bytearray()
        emitted = 0
        for i in range(0, len(buf), chunk):
            grown += buf[i:i + chunk]
            emitted = _emit(grown, emitted, _marker(grown, TOKEN), TOKEN, lines.append)
        expected = output.decode().split("\n")
        if expected[-1] == "":
            expected.pop()
        assert lines == expected, (output, chunk)


def test_non_empty_lines_stream_before_the_command_ends() -> None:
    lines: list[str] = []
    emitted = _emit(bytearray(b"one\ntwo\n"), 0, -1, TOKEN, lines.append)
    assert lines == ["one", "two"] and emitted == 8


def test_marker_needs_the_whole_status_line() -> None:
    assert _marker(bytearray(b"out\n" + TOKEN + b" 0"), TOKEN) == -1
    assert _marker(bytearray(b"out\n" + TOKEN + b" 0\n"), TOKEN) == 4
