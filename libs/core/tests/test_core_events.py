"""Event ids: fresh at the edge, deterministic in stages."""

from parley.core.events import SCHEMA_VERSION, derive_event, event_type, new_event
from parley.turn.v1 import turn_event_pb2 as pb


def test_derived_event_ids_are_deterministic_per_cause_and_stage():
    cause = new_event(conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="hi"))
    a = derive_event(cause, "nlu", understood=pb.UnderstoodTurn(text="hi"))
    b = derive_event(cause, "nlu", understood=pb.UnderstoodTurn(text="hi"))
    c = derive_event(cause, "dialog", decided=pb.DecidedTurn())
    assert a.event_id == b.event_id
    assert a.event_id != c.event_id
    assert a.event_id != cause.event_id
    assert (a.conversation_id, a.turn_id, a.tenant_id, a.user_id) == ("c", cause.turn_id, "t", "u")
    assert a.causation_id == cause.event_id
    assert a.schema_version == SCHEMA_VERSION
    assert event_type(a) == "understood"


def test_new_events_get_unique_ids_and_turns():
    one = new_event(conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="a"))
    two = new_event(conversation_id="c", tenant_id="t", user_id="u", user_message=pb.UserMessage(text="a"))
    assert one.event_id != two.event_id
    assert one.turn_id != two.turn_id
    assert one.occurred_at.seconds > 0
