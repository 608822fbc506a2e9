from hypothesis import given
from hypothesis import strategies as st

from routing.ivr import Reason, Reprompt, RouteDecision, RouteKind, decide, default_menu

MENU = default_menu()


def test_digit_one_goes_to_psych():
    decision = decide(MENU, ["1"])
    assert isinstance(decision, RouteDecision)
    assert decision.destination.queue == "psych"
    assert decision.destination.route is RouteKind.QUEUE
    assert decision.reason is Reason.CHOSEN


def test_digit_two_goes_to_legal():
    decision = decide(MENU, ["2"])
    assert isinstance(decision, RouteDecision)
    assert decision.destination.queue == "legal"


def test_digit_three_is_crisis_with_top_priority():
    decision = decide(MENU, ["3"])
    assert isinstance(decision, RouteDecision)
    assert decision.destination.route is RouteKind.CRISIS
    assert decision.destination.queue == "crisis"
    assert decision.destination.priority > MENU.options["1"].priority


def test_zero_and_no_input_reach_a_human():
    for inputs in (["0"], [None], [""]):
        decision = decide(MENU, inputs)
        assert isinstance(decision, RouteDecision)
        assert decision.destination == MENU.human


def test_first_invalid_digit_reprompts_and_second_reaches_a_human():
    assert decide(MENU, ["7"]) == Reprompt(invalid_count=1)
    decision = decide(MENU, ["7", "#"])
    assert isinstance(decision, RouteDecision)
    assert decision.reason is Reason.INVALID
    assert decision.destination == MENU.human


def test_invalid_then_valid_choice_counts():
    decision = decide(MENU, ["9", "3"])
    assert isinstance(decision, RouteDecision)
    assert decision.destination.route is RouteKind.CRISIS


@given(st.lists(st.one_of(st.none(), st.sampled_from(list("0123456789*#"))), min_size=1,
                max_size=6))
def test_every_input_sequence_ends_at_a_queue_within_two_invalid_tries(inputs):
    """No caller loops: replaying the IVR's loop over any digits ends at a human queue."""
    seen: list[str | None] = []
    for digit in inputs:
        seen.append(digit)
        decision = decide(MENU, seen)
        if isinstance(decision, RouteDecision):
            assert decision.destination.queue in {"psych", "legal", "crisis"}
            assert len(seen) <= MENU.max_invalid
            return
    assert len(seen) < MENU.max_invalid


def test_sip_display_names_are_unescaped():
    from routing.callers import display_name_from_sip

    assert display_name_from_sip('O\\"Brien \\\\ x') == 'O"Brien \\ x'
    assert display_name_from_sip("张三") == "张三"
