"""The gRPC servicer: through the shared ContextClient (in-process and over a real server) and raw stubs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from parley.common.v1 import common_pb2
from parley.context.app import ContextService
from parley.context.domain.models import EntityUpdate
from parley.context.v1 import context_pb2 as ctx
from parley.context.v1 import context_pb2_grpc
from parley.core.context_client import ContextClient, from_struct
from parley.core.errors import ConflictError, InvalidInputError, NotFoundError
from parley.core.grpc import GrpcServer

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def server_port(context_service: ContextService) -> AsyncIterator[int]:
    server = GrpcServer([context_service.registration], port=0)
    port = await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


@pytest_asyncio.fixture
async def stub(server_port: int) -> AsyncIterator[context_pb2_grpc.ContextServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        yield context_pb2_grpc.ContextServiceStub(channel)


@pytest_asyncio.fixture(params=["in_process", "over_grpc"])
async def client(
    request: pytest.FixtureRequest, context_service: ContextService, server_port: int
) -> ContextClient:
    """The shared client the way dialog and gateway build it (its channel needs the running loop)."""
    if request.param == "in_process":
        return ContextClient.in_process(context_service.servicer)
    return ContextClient.connect(f"127.0.0.1:{server_port}")


def _principal(user: str = "alice") -> common_pb2.Principal:
    return common_pb2.Principal(tenant_id="acme", user_id=user)


async def test_context_client_conversation_and_state_round_trip(client: ContextClient) -> None:
    created = await client.create_conversation("acme", "alice")
    cid = created.conversation_id
    assert uuid.UUID(cid)
    assert created.principal.user_id == "alice"
    assert created.created_at.seconds > 0
    again = await client.create_conversation("acme", "alice", cid)
    assert again.conversation_id == cid
    with pytest.raises(ConflictError):
        await client.create_conversation("acme", "mallory", cid)

    fetched = await client.get_conversation(cid, "acme", "alice")
    assert fetched.conversation.conversation_id == cid
    assert list(fetched.messages) == []
    with pytest.raises(NotFoundError):
        await client.get_conversation(cid, "acme", "bob")

    state = await client.get_state(cid)
    assert state.version == 0
    assert from_struct(state.data) == {}
    written = await client.update_state(cid, 0, {"slots": {"order_id": "A-7"}, "turns": 2})
    assert written.version == 1
    read = await client.get_state(cid)
    assert read.version == 1
    assert from_struct(read.data) == {"slots": {"order_id": "A-7"}, "turns": 2}
    with pytest.raises(ConflictError, match="expected 0, stored 1"):
        await client.update_state(cid, 0, {"late": True})
    with pytest.raises(InvalidInputError, match="UUID"):
        await client.get_state("not-a-uuid")


async def test_append_get_page_search_export_delete(stub: context_pb2_grpc.ContextServiceStub) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    principal = _principal(user)
    created = await stub.CreateConversation(ctx.CreateConversationRequest(principal=principal))
    cid = created.conversation.conversation_id
    messages = [
        common_pb2.ChatMessage(
            conversation_id=cid,
            turn_id=f"t{i // 2}",
            role=common_pb2.ROLE_USER if i % 2 == 0 else common_pb2.ROLE_BOT,
            text=f"line {i} about refunds" if i == 3 else f"line {i}",
            event_id=f"{cid}-e{i}",
        )
        for i in range(7)
    ]
    appended = await stub.AppendMessages(ctx.AppendMessagesRequest(messages=messages))
    assert appended.appended == 7
    again = await stub.AppendMessages(ctx.AppendMessagesRequest(messages=messages[:2]))
    assert again.appended == 0

    texts: list[str] = []
    token = ""
    while True:
        page = await stub.GetConversation(
            ctx.GetConversationRequest(
                conversation_id=cid, principal=principal, page_size=3, page_token=token
            )
        )
        texts.extend(m.text for m in page.messages)
        token = page.next_page_token
        if not token:
            break
    assert texts == [m.text for m in messages]
    first = await stub.GetConversation(ctx.GetConversationRequest(conversation_id=cid, principal=principal))
    assert first.messages[1].role == common_pb2.ROLE_BOT
    assert first.messages[0].message_id and first.messages[0].event_id == f"{cid}-e0"

    hits = await stub.SearchMemory(ctx.SearchMemoryRequest(principal=principal, query="refunds"))
    assert [h.text for h in hits.hits] == ["line 3 about refunds"]

    await stub.UpdateState(ctx.UpdateStateRequest(conversation_id=cid, expected_version=0))
    export = await stub.ExportUserData(ctx.ExportUserDataRequest(principal=principal))
    assert [c.conversation_id for c in export.conversations] == [cid]
    assert len(export.messages) == 7
    assert [s.version for s in export.states] == [1]

    deleted = await stub.DeleteUserData(ctx.DeleteUserDataRequest(principal=principal))
    assert (deleted.conversations_deleted, deleted.messages_deleted) == (1, 7)
    assert (deleted.states_deleted, deleted.events_deleted) == (1, len(export.events))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetConversation(ctx.GetConversationRequest(conversation_id=cid, principal=principal))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "request_", "message"),
    [
        ("CreateConversation", ctx.CreateConversationRequest(), "principal is required"),
        (
            "CreateConversation",
            ctx.CreateConversationRequest(principal=_principal(), conversation_id="abc"),
            "conversation_id must be a UUID",
        ),
        (
            "GetConversation",
            ctx.GetConversationRequest(conversation_id="nope", principal=_principal()),
            "conversation_id must be a UUID",
        ),
        (
            "GetConversation",
            ctx.GetConversationRequest(conversation_id=str(uuid.uuid4())),
            "principal is required",
        ),
        (
            "GetConversation",
            ctx.GetConversationRequest(
                conversation_id=str(uuid.uuid4()), principal=_principal(), page_size=501
            ),
            "page_size must be between 1 and 500",
        ),
        (
            "GetConversation",
            ctx.GetConversationRequest(
                conversation_id=str(uuid.uuid4()), principal=_principal(), page_size=-1
            ),
            "page_size",
        ),
        ("AppendMessages", ctx.AppendMessagesRequest(), "messages is required"),
        (
            "AppendMessages",
            ctx.AppendMessagesRequest(
                messages=[common_pb2.ChatMessage(conversation_id=str(uuid.uuid4()), event_id="e", text="x")]
            ),
            "messages[0].role must be ROLE_USER or ROLE_BOT",
        ),
        (
            "AppendMessages",
            ctx.AppendMessagesRequest(
                messages=[
                    common_pb2.ChatMessage(conversation_id=str(uuid.uuid4()), role=common_pb2.ROLE_USER)
                ]
            ),
            "messages[0].event_id is required",
        ),
        ("GetState", ctx.GetStateRequest(), "conversation_id is required"),
        (
            "UpdateState",
            ctx.UpdateStateRequest(conversation_id=str(uuid.uuid4()), expected_version=-1),
            "expected_version must not be negative",
        ),
        ("SearchMemory", ctx.SearchMemoryRequest(principal=_principal()), "query is required"),
        (
            "SearchMemory",
            ctx.SearchMemoryRequest(principal=_principal(), query="x", limit=1000),
            "limit must be between 1 and 100",
        ),
        (
            "ExportUserData",
            ctx.ExportUserDataRequest(principal=_principal("")),
            "principal.user_id is required",
        ),
        ("DeleteUserData", ctx.DeleteUserDataRequest(), "principal is required"),
        ("Remember", ctx.RememberRequest(principal=_principal()), "text is required"),
        (
            "Remember",
            ctx.RememberRequest(principal=_principal(), text="x" * 2_001),
            "text is longer than 2000 characters",
        ),
        ("GetContext", ctx.GetContextRequest(principal=_principal()), "conversation_id is required"),
        (
            "QueryEntities",
            ctx.QueryEntitiesRequest(conversation_id="nope", principal=_principal()),
            "conversation_id must be a UUID",
        ),
        (
            "UpdateProfile",
            ctx.UpdateProfileRequest(
                profile=ctx.UserProfile(principal=_principal(), timezone="Mars/Olympus_Mons")
            ),
            "timezone",
        ),
        (
            "RecordFeedback",
            ctx.RecordFeedbackRequest(
                principal=_principal(), feedback=ctx.Feedback(conversation_id=str(uuid.uuid4()), rating=9)
            ),
            "rating must be 1 to 5",
        ),
        (
            "RecordFeedback",
            ctx.RecordFeedbackRequest(
                principal=_principal(), feedback=ctx.Feedback(conversation_id=str(uuid.uuid4()))
            ),
            "feedback needs a rating, resolved or a comment",
        ),
    ],
)
async def test_bad_requests_are_invalid_argument_with_a_clear_message(
    stub: context_pb2_grpc.ContextServiceStub, method: str, request_: object, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_unknown_conversation_is_not_found(stub: context_pb2_grpc.ContextServiceStub) -> None:
    unknown = str(uuid.uuid4())
    for call in (
        stub.GetConversation(ctx.GetConversationRequest(conversation_id=unknown, principal=_principal())),
        stub.UpdateState(ctx.UpdateStateRequest(conversation_id=unknown, expected_version=0)),
        stub.AppendMessages(
            ctx.AppendMessagesRequest(
                messages=[
                    common_pb2.ChatMessage(
                        conversation_id=unknown, role=common_pb2.ROLE_USER, event_id=f"{unknown}-1", text="hi"
                    )
                ]
            )
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert unknown in (caught.value.details() or "")


async def test_conflicting_state_write_is_aborted(stub: context_pb2_grpc.ContextServiceStub) -> None:
    created = await stub.CreateConversation(ctx.CreateConversationRequest(principal=_principal()))
    cid = created.conversation.conversation_id
    await stub.UpdateState(ctx.UpdateStateRequest(conversation_id=cid, expected_version=0))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateState(ctx.UpdateStateRequest(conversation_id=cid, expected_version=0))
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert "state version moved on: expected 0, stored 1" in (caught.value.details() or "")


async def test_append_events_logs_each_event_once_and_rejects_mismatched_payloads(stub) -> None:
    from parley.core.events import new_event  # noqa: PLC0415
    from parley.turn.v1 import turn_event_pb2  # noqa: PLC0415

    principal = _principal("eve")
    created = await stub.CreateConversation(ctx.CreateConversationRequest(principal=principal))
    cid = created.conversation.conversation_id
    event = new_event(
        conversation_id=cid,
        tenant_id="acme",
        user_id="eve",
        user_message=turn_event_pb2.UserMessage(text="hi"),
    )
    stored = ctx.StoredEvent(event_id=event.event_id, conversation_id=cid, payload=event.SerializeToString())
    first = await stub.AppendEvents(ctx.AppendEventsRequest(events=[stored]))
    again = await stub.AppendEvents(ctx.AppendEventsRequest(events=[stored]))
    assert (first.appended, again.appended) == (1, 0)
    export = await stub.ExportUserData(ctx.ExportUserDataRequest(principal=principal))
    assert [(e.event_id, e.type, e.turn_id) for e in export.events] == [
        (event.event_id, "user_message", event.turn_id)
    ]
    assert turn_event_pb2.TurnEvent.FromString(export.events[0].payload) == event

    bad = [
        ctx.StoredEvent(event_id="other", conversation_id=cid, payload=event.SerializeToString()),
        ctx.StoredEvent(event_id=event.event_id, conversation_id=cid, payload=b"\xff\xfe"),
        ctx.StoredEvent(
            event_id=event.event_id, conversation_id=str(uuid.uuid4()), payload=event.SerializeToString()
        ),
    ]
    for item in bad:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.AppendEvents(ctx.AppendEventsRequest(events=[item]))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "events[0]" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AppendEvents(ctx.AppendEventsRequest())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_memories_are_remembered_once_and_found_by_similarity_for_their_owner_only(
    stub: context_pb2_grpc.ContextServiceStub,
) -> None:
    me, other = _principal("mem-alice"), _principal("mem-bob")
    seat = await stub.Remember(
        ctx.RememberRequest(principal=me, text="prefers window seats", kind="preference")
    )
    again = await stub.Remember(
        ctx.RememberRequest(principal=me, text="prefers window seats", kind="preference")
    )
    assert again.memory.memory_id == seat.memory.memory_id
    await stub.Remember(ctx.RememberRequest(principal=me, text="is allergic to peanuts"))
    await stub.Remember(ctx.RememberRequest(principal=other, text="prefers window seats on long flights"))

    found = await stub.SearchMemory(
        ctx.SearchMemoryRequest(principal=me, query="window seat please", limit=5)
    )
    assert found.memories[0].text == "prefers window seats"
    assert found.memories[0].kind == "preference"
    assert found.memories[0].score > found.memories[-1].score
    assert all("long flights" not in m.text for m in found.memories)


async def test_get_context_query_entities_profile_and_feedback(
    stub: context_pb2_grpc.ContextServiceStub, context_service: ContextService
) -> None:
    me = _principal("ctx-carol")
    created = await stub.CreateConversation(ctx.CreateConversationRequest(principal=me))
    cid = created.conversation.conversation_id
    profile = ctx.UserProfile(principal=me, display_name="Carol", timezone="Europe/Berlin", locale="de-DE")
    profile.preferences.update({"prefers_brief": True})
    stored = (await stub.UpdateProfile(ctx.UpdateProfileRequest(profile=profile))).profile
    assert (stored.timezone, from_struct(stored.preferences)) == ("Europe/Berlin", {"prefers_brief": True})
    assert (await stub.GetProfile(ctx.GetProfileRequest(principal=me))).profile.display_name == "Carol"

    store = context_service.store
    await store.update_entities(cid, "t1", "ev-1", [EntityUpdate("city", "Berlin", {"role": "destination"})])
    await store.update_entities(cid, "t2", "ev-2", [EntityUpdate("city", "Paris", {"role": "destination"})])
    await store.update_entities(cid, "t2", "ev-2b", [EntityUpdate("order_id", "12345")])

    everything = await stub.QueryEntities(ctx.QueryEntitiesRequest(conversation_id=cid, principal=me))
    assert {(e.entity_type, e.value) for e in everything.entities} == {
        ("city", "Paris"),
        ("order_id", "12345"),
    }
    query = ctx.QueryEntitiesRequest(
        conversation_id=cid, principal=me, entity_type="city", include_history=True
    )
    query.attributes.update({"role": "destination"})
    cities = await stub.QueryEntities(query)
    assert [(e.value, e.mentions) for e in cities.entities] == [("Paris", 2)]
    assert [(c.previous_value, c.value) for c in cities.history] == [("", "Berlin"), ("Berlin", "Paris")]

    snapshot = (await stub.GetContext(ctx.GetContextRequest(conversation_id=cid, principal=me))).context
    assert snapshot.profile.timezone == "Europe/Berlin"
    assert {e.value for e in snapshot.entities} == {"Paris", "12345"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetContext(ctx.GetContextRequest(conversation_id=cid, principal=_principal("ctx-eve")))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    feedback = ctx.Feedback(conversation_id=cid, rating=4, resolved=True, comment="quick and right")
    saved = (await stub.RecordFeedback(ctx.RecordFeedbackRequest(principal=me, feedback=feedback))).feedback
    assert (saved.rating, saved.resolved, saved.comment) == (4, True, "quick and right")
    assert uuid.UUID(saved.feedback_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RecordFeedback(
            ctx.RecordFeedbackRequest(principal=_principal("ctx-eve"), feedback=feedback)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    export = await stub.ExportUserData(ctx.ExportUserDataRequest(principal=me))
    assert export.profile.display_name == "Carol"
    assert {e.value for e in export.entities} == {"Paris", "12345"}
    assert [f.comment for f in export.feedback] == ["quick and right"]
    deleted = await stub.DeleteUserData(ctx.DeleteUserDataRequest(principal=me))
    assert (deleted.conversations_deleted, deleted.feedback_deleted, deleted.profiles_deleted) == (1, 1, 1)
    assert deleted.entities_deleted >= 2
