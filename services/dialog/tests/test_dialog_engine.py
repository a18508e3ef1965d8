"""The flow engine, pattern by pattern, on the small assistant of conftest.py (pure: no service runs)."""

from __future__ import annotations

import pytest
from dialog_testkit import FLOWS, Conversation, FakeTools, flows_file, names, parse

from parley.core.errors import ConfigurationError
from parley.dialog.domain import DialogState, Engine, Turn
from parley.dialog.ports import ToolResult


def one(result, name):
    return next(a for a in result.actions if a.name == name)


# --- slot filling and incomplete information --------------------------------------------------------------


async def test_a_flow_asks_for_each_missing_slot_in_turn(conv):
    r = await conv.say(parse("book_flight", text="Book a flight"))
    assert (names(r), r.reason, r.active_flow, r.step) == (
        ["utter_ask_origin"],
        "flow",
        "book_flight",
        "collect:origin",
    )
    assert r.actions[0].kind == "ask"
    r = await conv.say(parse("inform", text="from Berlin", city="Berlin"))
    assert names(r) == ["utter_ask_destination"]
    r = await conv.say(parse("inform", text="Paris", city="Paris"))
    assert names(r) == ["utter_ask_date"]
    r = await conv.say(parse("inform", text="on Tuesday", date="2026-12-01"))
    assert names(r) == ["utter_ask_passengers"]
    r = await conv.say(parse("inform", text="two of us", number="2"))
    assert (names(r), r.step) == (["utter_confirm_flight"], "confirm")
    assert r.actions[0].kind == "confirm"
    assert [o.payload for o in r.actions[0].options] == ["/affirm", "/deny"]
    assert {k: r.slots[k] for k in ("origin", "destination", "date", "passengers")} == {
        "origin": "Berlin",
        "destination": "Paris",
        "date": "2026-12-01",
        "passengers": 2,
    }
    r = await conv.say(parse("affirm", text="yes"))
    assert (names(r), r.active_flow) == (["utter_flight_booked"], "")
    assert r.actions[0].params["destination"] == "Paris"
    assert conv.state.history[-1].flow == "book_flight"
    assert conv.state.history[-1].status == "completed"


async def test_slots_given_with_the_request_are_not_asked_for(conv):
    r = await conv.say(
        parse(
            "book_flight",
            text="a flight from Rome to Oslo on Monday",
            city=["Rome", "Oslo"],
            date="2026-12-07",
        )
    )
    assert names(r) == ["utter_ask_passengers"]
    assert (r.slots["origin"], r.slots["destination"], r.slots["date"]) == ("Rome", "Oslo", "2026-12-07")


async def test_when_asked_slots_ignore_entities_until_asked(conv):
    # A number in an unrelated message does not become the passenger count.
    r = await conv.say(parse("order_status", text="order 12345, 3 items", order_id="12345", number="3"))
    assert "passengers" not in r.slots
    assert r.slots["order_id"] == "12345"


async def test_a_text_slot_takes_the_answer_text(conv):
    await conv.say(parse("address.update", text="change my address", order_id="12345"))
    r = await conv.say(parse("", text="12 Main Street, Springfield"))
    assert names(r) == ["utter_address_updated"]
    assert r.slots["address"] == "12 Main Street, Springfield"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (parse("inform", text="twelve", number="12"), ["utter_invalid_passengers", "utter_ask_passengers"]),
        (parse("inform", text="zero", number="0"), ["utter_invalid_passengers", "utter_ask_passengers"]),
        (parse("", text="lots"), ["utter_invalid_passengers", "utter_ask_passengers"]),
        (parse("affirm", text="yes"), ["utter_ask_passengers"]),
    ],
)
async def test_an_invalid_or_missing_answer_is_asked_again(conv, answer, expected):
    await conv.say(parse("book_flight", city=["Rome", "Oslo"], date="2026-12-07"))
    r = await conv.say(answer)
    assert names(r) == expected
    assert r.step == "collect:passengers"
    assert "passengers" not in r.slots


async def test_attempts_run_out_into_on_fail(conv):
    await conv.say(parse("book_flight", city=["Rome", "Oslo"], date="2026-12-07"))
    await conv.say(parse("inform", number="40"))  # attempt 2 of 2
    r = await conv.say(parse("inform", number="50"))
    assert names(r) == ["utter_invalid_passengers", "utter_handoff"]  # on_fail defaults to handoff
    assert (r.handoff, r.reason, r.active_flow) == (True, "handoff", "")


async def test_a_regex_checked_slot_rejects_a_malformed_value(conv):
    await conv.say(parse("order_status", text="where is my order"))
    r = await conv.say(parse("inform", text="order 12", order_id="12"))
    assert names(r) == ["utter_ask_order_id"]
    assert "order_id" not in r.slots


# --- confirmation and correction ------------------------------------------------------------------------


async def _at_confirmation(conv):
    await conv.say(parse("order.cancel", text="cancel order 12345", order_id="12345"))
    assert conv.results[-1].step == "confirm"


async def test_confirming_runs_the_action(conv, tools):
    await _at_confirmation(conv)
    r = await conv.say(parse("affirm", text="yes"))
    assert [a.name for a in r.actions] == ["cancel_order", "utter_order_cancelled"]
    assert r.actions[0].kind == "execute_task"
    assert r.actions[0].params["tool"]["ok"] is True
    assert tools.calls == [("cancel_order", {"order_id": "12345"})]


async def test_denying_goes_to_on_deny(conv, tools):
    await _at_confirmation(conv)
    r = await conv.say(parse("deny", text="no"))
    assert names(r) == ["utter_order_kept"]
    assert tools.calls == []


@pytest.mark.parametrize("intent", ["deny", "correct", ""])
async def test_a_correction_while_confirming_changes_the_slot_and_asks_again(conv, tools, intent):
    await _at_confirmation(conv)
    r = await conv.say(parse(intent, text="no, order 67890", order_id="67890"))
    assert (names(r), r.reason) == (["utter_confirm_cancel"], "correction")
    assert r.slots["order_id"] == "67890"
    assert r.actions[0].params["order_id"] == "67890"
    r = await conv.say(parse("affirm", text="yes"))
    assert tools.calls == [("cancel_order", {"order_id": "67890"})]


async def test_no_make_it_tuesday_replaces_the_date_and_reconfirms(conv):
    await conv.say(
        parse("book_flight", city=["Rome", "Oslo"], date="2026-12-07", text="flight Rome to Oslo on Monday")
    )
    await conv.say(parse("inform", number="2"))
    r = await conv.say(parse("correct", text="no, make it Tuesday", date="2026-12-08"))
    assert (names(r), r.reason, r.slots["date"]) == (["utter_confirm_flight"], "correction", "2026-12-08")


async def test_a_correction_before_confirming_asks_the_current_question_again(conv):
    await conv.say(parse("book_flight", city=["Rome", "Oslo"], date="2026-12-07"))
    r = await conv.say(parse("correct", text="no, from Vienna", city="Vienna"))
    # "city" maps origin and destination: the later one the flow has filled is corrected.
    assert (names(r), r.reason) == (["utter_ask_passengers"], "correction")
    assert (r.slots["origin"], r.slots["destination"]) == ("Rome", "Vienna")


async def test_a_correction_outside_any_flow_updates_the_slot(conv):
    r = await conv.say(parse("correct", text="my order is 67890", order_id="67890"))
    assert (names(r), r.slots["order_id"]) == (["utter_slot_updated"], "67890")
    assert one(r, "utter_slot_updated").params["slot"] == "order_id"


async def test_a_confirmation_not_answered_is_asked_again_then_denied(conv, tools):
    await _at_confirmation(conv)
    r = await conv.say(parse("", text="hmm"))
    assert (names(r), r.reason) == (["utter_confirm_cancel"], "reask")
    r = await conv.say(parse("", text="hmm?"))
    assert names(r) == ["utter_order_kept"]  # max_attempts 2, then on_deny
    assert tools.calls == []


# --- questions and timeouts -------------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "expected"), [("affirm", ["utter_glad"]), ("deny", ["utter_sorry"])])
async def test_a_question_goes_where_the_expected_intent_says(conv, answer, expected):
    r = await conv.say(parse("feedback"))
    assert (names(r), r.step) == (["utter_ask_satisfied"], "question:utter_ask_satisfied")
    r = await conv.say(parse(answer))
    assert names(r) == expected
    assert r.handoff is (answer == "deny")
    if answer == "deny":
        assert one(r, "utter_sorry").params["queue"] == "support"


async def test_a_question_answered_after_its_timeout_goes_to_on_timeout(conv):
    await conv.say(parse("feedback"))
    r = await conv.say(parse("affirm"), after_s=61)
    assert (names(r), r.reason) == (["utter_no_answer"], "timeout")


async def test_a_question_answered_in_time_is_not_timed_out(conv):
    await conv.say(parse("feedback"))
    r = await conv.say(parse("affirm"), after_s=59)
    assert names(r) == ["utter_glad"]


async def test_an_unexpected_answer_is_asked_again_then_on_fail(conv):
    await conv.say(parse("feedback"))
    r = await conv.say(parse("", text="purple"))
    assert names(r) == ["utter_ask_satisfied"]
    r = await conv.say(parse("", text="purple!"))
    assert (names(r), r.active_flow) == (["utter_rephrase"], "")  # on_fail: end, then nothing to say


# --- meta intents -----------------------------------------------------------------------------------------


async def test_cancel_stops_the_running_flow(conv):
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("cancel", text="forget it"))
    assert (names(r), r.reason, r.active_flow) == (["utter_flow_cancelled"], "cancel", "")
    assert one(r, "utter_flow_cancelled").params["flow"] == "booking a flight"
    assert conv.state.history[-1].status == "cancelled"


async def test_human_handoff_and_goodbye_stop_everything(conv):
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("human_handoff", text="let me talk to a person"))
    assert (names(r), r.handoff, r.active_flow, r.actions[0].kind) == (["utter_handoff"], True, "", "handoff")
    r = await conv.say(parse("goodbye"))
    assert (names(r), r.ended, r.handoff, r.actions[0].kind) == (
        ["utter_goodbye"],
        True,
        False,
        "end_conversation",
    )


async def test_an_ended_conversation_restarts_on_a_new_message(conv):
    r = await conv.say(parse("bye_for_good"))
    assert (names(r), r.ended) == (["utter_farewell"], True)
    r = await conv.say(parse("book_flight"))
    assert (names(r), r.ended) == (["utter_ask_origin"], False)


async def test_a_greeting_mid_flow_greets_and_asks_again(conv):
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("greet", text="hi"))
    assert [(a.name, a.kind) for a in r.actions] == [("utter_greet", "greet"), ("utter_ask_origin", "ask")]


async def test_greeting_and_request_in_one_message(conv):
    r = await conv.say(parse("greet", text="hi, book a flight", intents=["book_flight"]))
    assert names(r) == ["utter_greet", "utter_ask_origin"]


# --- clarification ----------------------------------------------------------------------------------------


async def test_nlu_requires_clarification_offers_the_flows(conv):
    r = await conv.say(
        parse(
            "order_status",
            confidence=0.45,
            clarify=True,
            ranking=[("order_status", 0.45), ("order.cancel", 0.44)],
        )
    )
    (action,) = r.actions
    assert (action.name, action.kind, r.reason) == ("utter_clarify", "clarify", "clarify")
    assert [(o.title, o.payload) for o in action.options] == [
        ("checking order", "/order_status"),
        ("cancelling order", "/order.cancel"),
    ]
    assert action.params["options"] == "checking order or cancelling order"


@pytest.mark.parametrize(
    "answer",
    [
        parse("order.cancel", confidence=1.0, text="/order.cancel"),
        parse("", text="2"),
        parse("", text="the second one"),
        parse("", text="Cancelling order"),
    ],
)
async def test_a_clarification_is_answered_by_intent_number_or_title(conv, answer):
    await conv.say(
        parse("order_status", clarify=True, ranking=[("order_status", 0.45), ("order.cancel", 0.44)])
    )
    r = await conv.say(answer)
    assert (names(r), r.active_flow) == (["utter_ask_order_id"], "cancel_order")


async def test_an_ignored_clarification_gives_way_to_a_new_request(conv):
    await conv.say(
        parse("order_status", clarify=True, ranking=[("order_status", 0.45), ("order.cancel", 0.44)])
    )
    r = await conv.say(parse("book_flight"))
    assert (names(r), r.active_flow) == (["utter_ask_origin"], "book_flight")


# --- digression and resumption ----------------------------------------------------------------------------


async def test_a_digression_pauses_the_flow_and_offers_to_resume_it(conv, tools):
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("weather", text="what's the weather in Paris?", city="Paris"))
    assert names(r) == ["utter_weather", "utter_resume"]
    assert (r.reason, r.active_flow) == ("digression", "")
    assert one(r, "utter_weather").params["weather_summary"] == "sunny in Paris (#1)"
    assert one(r, "utter_resume").params["flow"] == "booking a flight"
    assert "origin" not in r.slots  # the city was the weather's, not the flight's origin
    r = await conv.say(parse("affirm"))
    assert (names(r), r.reason, r.active_flow) == (["utter_ask_origin"], "resume", "book_flight")


async def test_declining_to_resume_drops_the_paused_flow(conv):
    await conv.say(parse("book_flight"))
    await conv.say(parse("weather"))
    r = await conv.say(parse("deny"))
    assert (names(r), r.active_flow, conv.state.stack) == (["utter_flow_cancelled"], "", [])


async def test_a_flow_without_ask_to_resume_resumes_silently(tools):
    data = flows_file().model_dump(by_alias=True, exclude_none=True)
    data["flows"]["book_flight"]["ask_to_resume"] = False
    conv = Conversation(Engine(flows_file(data), tools))
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("weather"))
    assert names(r) == ["utter_weather", "utter_ask_origin"]
    assert r.active_flow == "book_flight"


async def test_a_flow_that_is_not_interruptible_queues_the_request(tools):
    data = flows_file().model_dump(by_alias=True, exclude_none=True)
    data["flows"]["book_flight"]["interruptible"] = False
    conv = Conversation(Engine(flows_file(data), tools))
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("weather"))
    assert (names(r), r.reason, [q.intent for q in r.state.queue]) == (
        ["utter_ask_origin"],
        "queued",
        ["weather"],
    )


async def test_asking_for_the_running_flow_again_just_continues_it(conv):
    await conv.say(parse("book_flight"))
    r = await conv.say(parse("book_flight", text="I said I want a flight"))
    assert (names(r), len(conv.state.stack)) == (["utter_ask_origin"], 1)


# --- several intents --------------------------------------------------------------------------------------


async def test_the_second_intent_waits_for_the_first_flow(conv):
    r = await conv.say(parse("weather", intents=["order_status"], text="weather and my order status"))
    assert [a.name for a in r.actions] == [
        "get_weather",
        "utter_weather",
        "utter_transition",
        "utter_ask_order_id",
    ]
    assert one(r, "utter_transition").params["flow"] == "checking order"
    assert r.active_flow == "order_status"


async def test_queued_intents_are_bounded(tools):
    data = flows_file().model_dump(by_alias=True, exclude_none=True)
    data["settings"] = {"max_queued_intents": 1}
    conv = Conversation(Engine(flows_file(data), tools))
    r = await conv.say(parse("book_flight", intents=["weather", "order_status"]))
    assert [q.intent for q in r.state.queue] == ["weather"]


# --- the fallback ladder ----------------------------------------------------------------------------------


async def test_the_fallback_ladder_rephrases_offers_options_then_hands_over(conv):
    r1 = await conv.say(parse("", text="blorp"))
    assert [(a.name, a.kind) for a in r1.actions] == [("utter_rephrase", "unknown")]
    r2 = await conv.say(parse("", text="zorp"))
    assert names(r2) == ["utter_offer_options"]
    assert [o.payload for o in r2.actions[0].options] == [
        "/order_status",
        "/order.cancel",
        "/address.update",
        "/book_flight",
        "/meal_preference",
    ]
    r3 = await conv.say(parse("", text="qwerty"))
    assert (names(r3), r3.handoff, r3.reason) == (["utter_handoff"], True, "handoff")


async def test_an_understood_turn_resets_the_ladder(conv):
    await conv.say(parse("", text="blorp"))
    await conv.say(parse("greet"))
    r = await conv.say(parse("", text="zorp"))
    assert names(r) == ["utter_rephrase"]


async def test_picking_a_fallback_option_starts_its_flow(conv):
    await conv.say(parse("", text="blorp"))
    await conv.say(parse("", text="zorp"))
    r = await conv.say(parse("", text="4"))
    assert (names(r), r.active_flow) == (["utter_ask_origin"], "book_flight")


@pytest.mark.parametrize("confidence", [0.2, 0.49])
async def test_a_low_confidence_intent_is_not_understood(conv, confidence):
    r = await conv.say(parse("book_flight", confidence=confidence))
    assert (names(r), r.active_flow) == (["utter_rephrase"], "")


async def test_a_flow_trigger_may_ask_for_more_confidence(tools):
    data = flows_file().model_dump(by_alias=True, exclude_none=True)
    data["flows"]["book_flight"]["trigger"]["min_confidence"] = 0.9
    engine = Engine(flows_file(data), tools)
    assert names(await Conversation(engine).say(parse("book_flight", confidence=0.8))) == ["utter_rephrase"]
    assert names(await Conversation(engine).say(parse("book_flight", confidence=0.95))) == [
        "utter_ask_origin"
    ]


# --- tools ------------------------------------------------------------------------------------------------


async def test_a_tool_result_fills_templates_and_its_error_branches(conv, tools):
    r = await conv.say(parse("order_status", order_id="12345"))
    assert [a.name for a in r.actions] == ["get_order", "utter_order_status"]
    assert one(r, "utter_order_status").params["status"] == "shipped"
    assert r.state.results["order"] == {"status": "shipped"}
    r = await conv.say(parse("order_status", order_id="99999"))
    assert names(r) == ["utter_order_not_found"]
    assert r.actions[0].params["tool"]["error"] == "no such order"


async def test_a_tool_error_without_on_error_apologises_and_ends_the_flow(conv, tools):
    tools.handlers["get_weather"] = lambda args: ToolResult(ok=False, error="down")
    r = await conv.say(parse("weather"))
    assert (names(r), r.reason, r.active_flow) == (["utter_error"], "tool_error", "")
    assert conv.state.history[-1].status == "failed"


async def test_a_tool_runner_that_raises_does_not_lose_the_turn(conv, tools):
    async def broken(name, args):
        raise RuntimeError("bug")

    tools.call = broken
    r = await conv.say(parse("order_status", order_id="12345"))
    assert names(r) == ["utter_order_not_found"]


# --- steps: call, link, branch, validate, end; the loop guard ---------------------------------------------

STEPS = {
    "version": "2",
    "slots": {
        "tier": {"type": "categorical", "values": ["gold", "basic"], "entity": "tier"},
        "n": {"type": "integer"},
    },
    "flows": {
        "main": {
            "trigger": {"intents": ["go"]},
            "steps": [
                {"respond": "utter_start"},
                {"call": "sub"},
                {"respond": "utter_back"},
                {"validate": ["tier"], "on_missing": "no_tier"},
                {
                    "branch": [
                        {"if": "slots.tier == 'gold'", "then": "gold"},
                        {"else": "basic"},
                    ]
                },
                {"id": "gold", "respond": "utter_gold", "next": "end"},
                {"id": "basic", "link": "other"},
                {"id": "no_tier", "respond": "utter_no_tier"},
            ],
        },
        "sub": {"steps": [{"respond": "utter_in_sub"}]},
        "other": {"steps": [{"respond": "utter_other"}, {"end": "conversation"}]},
        "loop": {
            "trigger": {"intents": ["loop"]},
            "steps": [{"id": "a", "respond": "utter_again", "next": "a"}],
        },
    },
}


@pytest.mark.parametrize(
    ("entities", "expected", "ended"),
    [
        ({"tier": "gold"}, ["utter_start", "utter_in_sub", "utter_back", "utter_gold"], False),
        (
            {"tier": "basic"},
            ["utter_start", "utter_in_sub", "utter_back", "utter_other", "utter_goodbye"],
            True,
        ),
        ({}, ["utter_start", "utter_in_sub", "utter_back", "utter_no_tier"], False),
    ],
)
async def test_call_link_validate_branch_and_end(entities, expected, ended):
    conv = Conversation(Engine(flows_file(STEPS), FakeTools()))
    r = await conv.say(parse("go", **entities))
    assert names(r) == expected
    assert r.ended is ended
    assert [h.flow for h in conv.state.history][-1] == ("other" if ended else "main")


async def test_a_flow_that_loops_is_stopped_and_handed_over():
    conv = Conversation(Engine(flows_file(STEPS), FakeTools(), max_steps=10))
    r = await conv.say(parse("loop"))
    assert names(r) == ["utter_again"] * 10 + ["utter_error", "utter_handoff"]
    assert (r.reason, r.handoff) == ("error", True)


def test_a_flows_file_with_a_dangling_target_cannot_run():
    data = {"version": "2", "flows": {"f": {"steps": [{"respond": "utter_x", "next": "nowhere"}]}}}
    with pytest.raises(ConfigurationError, match="nowhere"):
        Engine(flows_file(data))


# --- purity and idempotency -------------------------------------------------------------------------------


async def test_the_given_state_is_never_changed(engine):
    state = DialogState()
    before = state.to_dict()
    result = await engine.decide(state, Turn("e1", parse("book_flight"), 10.0))
    assert state.to_dict() == before
    assert result.state.to_dict() != before


async def test_deciding_a_turn_again_returns_the_recorded_decision(engine, tools):
    first = await engine.decide(DialogState(), Turn("e1", parse("order_status", order_id="12345"), 10.0))
    again = await engine.decide(first.state, Turn("e1", parse("goodbye"), 99.0))
    assert again.replayed and again.actions == first.actions and again.reason == first.reason
    assert again.state is first.state
    assert len(tools.calls) == 1


async def test_same_state_and_turn_give_the_same_decision(tools):
    a = await Engine(flows_file(), FakeTools()).decide(DialogState(), Turn("e", parse("book_flight"), 5.0))
    b = await Engine(flows_file(), FakeTools()).decide(DialogState(), Turn("e", parse("book_flight"), 5.0))
    assert a.state.to_dict() == b.state.to_dict() and a.actions == b.actions


def test_flows_fixture_is_valid():
    assert set(flows_file(FLOWS).flows) >= {"book_flight", "meal", "weather"}


# --- more options of flows.yml ------------------------------------------------------------------------------

OPTIONS = {
    "version": "2",
    "slots": {
        "order_id": {"entity": "order_id"},
        "tier": {"type": "categorical", "values": ["gold", "basic"], "entity": "tier"},
        "email": {"type": "text", "entity": "email", "persist": False},
        "code": {"type": "integer", "entity": "number", "fill": "when_asked"},
        "note": {"type": "text", "initial": "none"},
    },
    "flows": {
        "status_by_id": {
            "trigger": {"intents": ["order"], "entities": ["order_id"]},
            "steps": [{"respond": "utter_status_by_id"}],
        },
        "status_generic": {"trigger": {"intents": ["order"]}, "steps": [{"respond": "utter_status_generic"}]},
        "gold_desk": {
            "trigger": {"intents": ["help"], "condition": "slots.tier == 'gold'"},
            "steps": [{"respond": "utter_gold_desk"}],
        },
        "help": {"trigger": {"intents": ["help"]}, "steps": [{"respond": "utter_help"}]},
        "signup": {
            "trigger": {"intents": ["signup"]},
            "steps": [
                {"collect": "email", "ask_again": True, "reask": "utter_email_again"},
                {
                    "collect": "code",
                    "validate": "value % 2 == 0",
                    "invalid_response": "utter_code_must_be_even",
                    "on_fail": "give_up",
                },
                {"respond": "utter_signed_up", "next": "end"},
                {"id": "give_up", "handoff": True, "queue": "signup"},
            ],
        },
        "poll": {
            "trigger": {"intents": ["poll"]},
            "steps": [
                {
                    "id": "ask",
                    "question": "utter_poll",
                    "expect": {"affirm": "end", "deny": "repeat"},
                    "timeout_s": 30,
                },
            ],
        },
    },
}


@pytest.mark.parametrize(
    ("understanding", "expected"),
    [
        (
            parse("order", order_id="12345"),
            ["utter_status_by_id"],
        ),  # the flow whose trigger entities are there
        (parse("order"), ["utter_status_generic"]),
        (parse("order.track"), ["utter_status_generic"]),  # a child intent starts its parent's flow
        (parse("help", tier="gold"), ["utter_gold_desk"]),  # the trigger condition holds
        (parse("help", tier="basic"), ["utter_help"]),
    ],
)
async def test_trigger_entities_conditions_and_parent_intents(understanding, expected):
    conv = Conversation(Engine(flows_file(OPTIONS), FakeTools()))
    assert names(await conv.say(understanding)) == expected


async def test_ask_again_reask_validate_and_on_fail():
    conv = Conversation(Engine(flows_file(OPTIONS), FakeTools()))
    conv.state = DialogState(slots={"email": "old@example.com"}, turns=1)
    r = await conv.say(parse("signup", email="old@example.com"))
    assert names(r) == ["utter_ask_email"]  # ask_again: asked although filled
    r = await conv.say(parse("affirm", text="yes"))
    assert names(r) == ["utter_email_again"]  # not an answer: the reask
    r = await conv.say(parse("", text="new@example.com"))
    assert (names(r), r.slots["email"]) == (["utter_ask_code"], "new@example.com")
    r = await conv.say(parse("", text="7", number="7"))
    assert names(r) == ["utter_code_must_be_even", "utter_ask_code"]
    r = await conv.say(parse("", text="4", number="4"))
    assert names(r) == ["utter_signed_up"]
    assert "email" not in r.slots  # persist: false, cleared with its flow
    assert r.slots["code"] == 4


async def test_on_fail_can_go_to_a_handoff_step():
    conv = Conversation(Engine(flows_file(OPTIONS), FakeTools()))
    await conv.say(parse("signup", email="a@b.c"))
    await conv.say(parse("", text="a@b.c"))
    for odd in ("1", "3"):
        await conv.say(parse("", text=odd, number=odd))
    r = await conv.say(parse("", text="5", number="5"))
    assert names(r) == ["utter_code_must_be_even", "utter_handoff"]
    assert (r.handoff, r.actions[-1].params["queue"]) == (True, "signup")


async def test_repeat_asks_the_question_afresh_and_a_timeout_without_on_timeout_repeats():
    conv = Conversation(Engine(flows_file(OPTIONS), FakeTools()))
    await conv.say(parse("poll"))
    r = await conv.say(parse("deny"))
    assert (names(r), r.step) == (["utter_poll"], "ask")
    r = await conv.say(parse("affirm"), after_s=31)
    assert (names(r), r.reason) == (["utter_poll"], "timeout")
    r = await conv.say(parse("affirm"))
    assert (names(r), r.active_flow) == (["utter_rephrase"], "")  # the poll ended without a word


async def test_initial_values_are_set_once_at_the_start():
    conv = Conversation(Engine(flows_file(OPTIONS), FakeTools()))
    r = await conv.say(parse("greet"))
    assert r.slots["note"] == "none"
    conv.state.slots.pop("note")
    r = await conv.say(parse("greet"))
    assert "note" not in r.slots


async def test_cancel_while_resuming_is_offered_drops_the_paused_flow(conv):
    await conv.say(parse("book_flight"))
    await conv.say(parse("weather"))
    r = await conv.say(parse("cancel"))
    assert (names(r), conv.state.stack, conv.state.pending) == (["utter_flow_cancelled"], [], None)
    assert r.actions[0].params["flow"] == "booking a flight"


async def test_an_unanswered_conflict_is_asked_again_then_both_values_go(conv):
    await conv.say(parse("meal_preference", diet="vegan", ingredient="ham"))
    r = await conv.say(parse("affirm", text="yes"))
    assert (names(r), r.reason) == (["utter_diet_conflict"], "conflict")
    r = await conv.say(parse("", text="whatever"))
    assert "diet" not in r.slots and "ingredients" not in r.slots
    assert names(r) == ["utter_ask_diet"]


# --- what an intent means while a flow runs -----------------------------------------------------------------

ORDERS = {
    "version": "2",
    "slots": {"order_id": {"entity": "order_id"}, "city": {"entity": "city", "fill": "when_asked"}},
    "flows": {
        "status": {
            "trigger": {"intents": ["order_status", "delivery_question", "inform_order_id"]},
            "steps": [
                {"collect": "order_id"},
                {"branch": [{"if": "intent == 'delivery_question'", "then": "eta"}]},
                {"respond": "utter_status", "next": "end"},
                {"id": "eta", "respond": "utter_eta"},
            ],
        },
        "cancel": {
            "trigger": {"intents": ["order.cancel"]},
            "steps": [{"collect": "order_id"}, {"call": "sub"}],
        },
        "sub": {
            "steps": [
                {"branch": [{"if": "intent == 'order.cancel'", "then": "yes"}]},
                {"id": "yes", "respond": "utter_cancelled"},
            ]
        },
        "weather": {
            "trigger": {"intents": ["weather"]},
            "steps": [{"collect": "city"}, {"respond": "utter_weather"}],
        },
    },
}


async def test_conditions_in_a_flow_read_the_intent_that_started_it():
    conv = Conversation(Engine(flows_file(ORDERS), FakeTools()))
    await conv.say(parse("delivery_question", text="when will it arrive?"))
    r = await conv.say(parse("inform_order_id", text="12345", order_id="12345"))
    assert names(r) == ["utter_eta"]  # the branch saw delivery_question, not this message's intent


async def test_a_called_flow_inherits_the_intent():
    conv = Conversation(Engine(flows_file(ORDERS), FakeTools()))
    r = await conv.say(parse("order.cancel", order_id="12345"))
    assert names(r) == ["utter_cancelled"]


async def test_an_answer_whose_intent_starts_a_flow_wanting_that_slot_is_an_answer():
    conv = Conversation(Engine(flows_file(ORDERS), FakeTools()))
    await conv.say(parse("order.cancel", text="cancel my order"))
    r = await conv.say(parse("inform_order_id", text="12345", order_id="12345"))
    assert (names(r), r.reason, conv.state.queue) == (["utter_cancelled"], "flow", [])


async def test_a_request_for_another_flow_with_a_matching_entity_is_a_digression():
    conv = Conversation(Engine(flows_file(ORDERS), FakeTools()))
    await conv.say(parse("weather", text="weather?"))
    r = await conv.say(parse("order_status", text="where is order 12345", order_id="12345"))
    # The weather flow asked for a city, the status flow wants the order id: a new request.
    assert (names(r), r.reason) == (["utter_status", "utter_resume"], "digression")
