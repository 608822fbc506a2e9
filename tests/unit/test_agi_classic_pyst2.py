"""pyst2 0.5.1's defects (DESIGN §6), each shown on pyst2's own AGI class and then handled
by agi.classic.ClassicChannel. In-process, on in-memory pipes."""

from __future__ import annotations

import io
import os
import signal
import threading
from collections.abc import Iterator

import pytest
from asterisk.agi import AGI, AGIAppError, AGIHangup, AGIUnknownError

from agi.classic import CallerGone, ClassicChannel, quote_arg
from tests.unit.classic_agi_peer import agi_environment, parse_agi_args

ENV = agi_environment(["1764300000.1", "default", "", "", "12355", ""])


@pytest.fixture(autouse=True)
def _restore_sighup() -> Iterator[None]:
    """pyst2 installs a SIGHUP handler in AGI(); give the test process its own back."""
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


def _raw_agi(answers: bytes, *, environment: bytes = ENV,
             stderr: io.StringIO | None = None) -> tuple[AGI, io.StringIO]:
    """pyst2 as a script gets it: text stdin/stdout."""
    out = io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(environment + answers), encoding="utf-8")
    return AGI(stdin=stdin, stdout=out, stderr=stderr or io.StringIO()), out


def _channel(answers: bytes, *, environment: bytes = ENV) -> tuple[ClassicChannel, io.BytesIO]:
    out = io.BytesIO()
    return ClassicChannel(io.BytesIO(environment + answers), out), out


def _sent(out: io.BytesIO) -> list[str]:
    return out.getvalue().decode().splitlines()


# -- quoting ------------------------------------------------------------------------------


def test_pyst2_set_variable_does_not_escape_quotes_or_newlines() -> None:
    agi, out = _raw_agi(b"200 result=1\n200 result=1\n")
    agi.set_variable("X", 'say "hi"\nEXEC Dial "PJSIP/110"')
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # one value became two commands: the second is injected
    assert lines[1] == 'EXEC Dial "PJSIP/110""'


def test_values_are_escaped_into_one_command_and_route_comes_last() -> None:
    channel, out = _channel(b"200 result=1\n200 result=1\n200 result=0\n")
    value = 'say "hi"\r\nEXEC Dial \\ "PJSIP/110"'
    channel.set_variables({"HOTLINE_REASON": value, "HOTLINE_LABEL": "心理 咨询",
                           "HOTLINE_QUEUE": "psych", "HOTLINE_ROUTE": "queue"})
    sent = _sent(out)
    assert len(sent) == 3
    assert parse_agi_args(sent[0]) == ["SET", "VARIABLE", "HOTLINE_REASON",
                                       'say "hi"EXEC Dial \\ "PJSIP/110"']
    assert parse_agi_args(sent[1]) == ["SET", "VARIABLE", "HOTLINE_LABEL", "心理 咨询"]
    assert parse_agi_args(sent[2]) == ["EXEC", "MSet", "HOTLINE_QUEUE=psych,HOTLINE_ROUTE=queue"]


def test_a_route_value_that_needs_escaping_is_still_set_last() -> None:
    channel, out = _channel(b"200 result=0\n200 result=1\n")
    channel.set_variables({"HOTLINE_QUEUE": "psych", "HOTLINE_ROUTE": "a,b"})
    sent = [parse_agi_args(line) for line in _sent(out)]
    assert sent == [["EXEC", "MSet", "HOTLINE_QUEUE=psych"],
                    ["SET", "VARIABLE", "HOTLINE_ROUTE", "a,b"]]


def test_sound_names_are_quoted_arguments() -> None:
    channel, out = _channel(b"200 result=0 endpos=10\n200 result= (timeout)\n")
    channel.stream_file("hotline/欢迎 v2", "12")
    channel.get_data('a"b', 5000, 1)
    assert [parse_agi_args(line)[2] for line in _sent(out)] == ["hotline/欢迎 v2", 'a"b']
    assert quote_arg("x\ny\0") == '"xy"'


# -- hang-ups -----------------------------------------------------------------------------


def test_pyst2_reports_a_hang_up_during_get_data_as_an_application_error() -> None:
    agi, _ = _raw_agi(b"200 result=-1\n")
    with pytest.raises(AGIAppError) as caught:
        agi.get_data("hotline/menu", 5000, 1)
    assert not isinstance(caught.value, AGIHangup)


def test_a_failed_get_data_is_a_hang_up() -> None:
    channel, _ = _channel(b"200 result=-1\n")
    with pytest.raises(CallerGone):
        channel.get_data("hotline/menu", 5000, 1)


def test_pyst2_does_not_know_the_dead_channel_answer() -> None:
    agi, _ = _raw_agi(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    with pytest.raises(AGIUnknownError):
        agi.stream_file("hotline/menu")


def test_a_dead_channel_answer_is_a_hang_up() -> None:
    channel, _ = _channel(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    with pytest.raises(CallerGone):
        channel.stream_file("hotline/menu")


def test_pyst2_fails_with_a_value_error_at_end_of_input() -> None:
    agi, _ = _raw_agi(b"")
    with pytest.raises(ValueError):
        agi.get_data("hotline/menu", 5000, 1)


def test_end_of_input_is_a_hang_up() -> None:
    channel, _ = _channel(b"200 result=0 endpos=1")
    with pytest.raises(CallerGone):  # an answer cut short, then nothing
        channel.stream_file("hotline/welcome")
    with pytest.raises(CallerGone):  # end of input inside the environment
        ClassicChannel(io.BytesIO(b"agi_request: x\nagi_channel: PJSIP/a"), io.BytesIO())


def test_a_usage_answer_cut_short_does_not_loop() -> None:
    # pyst2 reads a 520 usage answer until a line starting with 520: at end of input it
    # reads '' forever (not run here: it never returns).
    channel, _ = _channel(b"520-Invalid command syntax.  Proper usage follows:\nUsage: x\n")
    result: list[BaseException] = []

    def call() -> None:
        try:
            channel.stream_file("hotline/welcome")
        except BaseException as error:
            result.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(result[0], CallerGone)


def test_a_hangup_line_is_a_hang_up() -> None:
    channel, _ = _channel(b"HANGUP\n")
    with pytest.raises(CallerGone):
        channel.get_data("hotline/menu", 5000, 1)


def test_sighup_stops_the_next_command() -> None:
    channel, out = _channel(b"200 result=0 endpos=1\n")
    os.kill(os.getpid(), signal.SIGHUP)  # pyst2's handler only sets a flag
    with pytest.raises(CallerGone):
        channel.stream_file("hotline/welcome")
    assert _sent(out) == []  # nothing more is sent to a hung-up channel


class _HangUpWhilePlaying(io.BytesIO):
    """Asterisk's pipe where SIGHUP arrives while the script waits for an answer."""

    armed = False

    def readline(self, size: int | None = -1) -> bytes:
        if self.armed:
            self.armed = False
            os.kill(os.getpid(), signal.SIGHUP)
        return super().readline(size)


def test_a_failed_prompt_is_skipped_unless_the_caller_hung_up() -> None:
    channel, _ = _channel(b"200 result=-1 endpos=0\n")
    assert channel.stream_file("hotline/missing") is None  # a missing sound file
    pipe = _HangUpWhilePlaying(ENV + b"200 result=-1 endpos=0\n")
    channel = ClassicChannel(pipe, io.BytesIO())
    pipe.armed = True
    # pyst2 raises AGIAppError for result=-1 whether the file is missing or the caller hung
    # up during playback; the SIGHUP flag tells them apart
    with pytest.raises(CallerGone):
        channel.stream_file("hotline/welcome")


# -- what it reads ------------------------------------------------------------------------


def test_pyst2_cannot_read_a_caller_name_that_is_not_utf8() -> None:
    environment = agi_environment([], name="张三".encode("gb18030"))
    with pytest.raises(UnicodeDecodeError):
        _raw_agi(b"", environment=environment)


def test_a_caller_name_that_is_not_utf8_is_read() -> None:
    channel, _ = _channel(b"", environment=agi_environment([], name=b"\xd5\xc5\xc8\xfd"))
    assert channel.env["agi_calleridname"] == "\ufffd" * 4


def test_pyst2_writes_caller_data_to_stderr_and_the_channel_does_not(
        capfd: pytest.CaptureFixture[str]) -> None:
    stderr = io.StringIO()
    _raw_agi(b"", stderr=stderr)
    assert "张三" in stderr.getvalue()  # Asterisk's console and log, with -f or not
    _channel(b"")
    assert capfd.readouterr().err == ""


def test_get_data_timeout_and_hash_alone_are_both_no_choice() -> None:
    channel, _ = _channel(b"200 result= (timeout)\n200 result=\n200 result=1 (timeout)\n")
    assert channel.get_data("hotline/menu", 5000, 1) is None
    assert channel.get_data("hotline/menu", 5000, 1) is None
    assert channel.get_data("hotline/menu", 5000, 1) == "1"


def test_leftover_environment_lines_and_trying_are_not_taken_for_answers() -> None:
    # A caller name with a blank line in it ends the environment block early; the rest of
    # the environment would be read as the answer to the first command.
    environment = ENV.replace(b"agi_calleridname: \xe5\xbc\xa0\xe4\xb8\x89\n",
                              b"agi_calleridname: x\n\n")
    channel, _ = _channel(b"100 result=0 Trying...\n200 result=50 endpos=10\n",
                          environment=environment)
    assert channel.stream_file("hotline/welcome", "0123456789") == "2"


def test_a_digit_pressed_during_a_prompt_is_returned() -> None:
    channel, _ = _channel(b"200 result=51 endpos=100\n200 result=0 endpos=8000\n")
    assert channel.stream_file("hotline/welcome", "0123456789*#") == "3"
    assert channel.stream_file("hotline/welcome", "0123456789*#") is None
