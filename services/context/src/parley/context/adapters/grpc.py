"""The gRPC face of the context service: validates requests, then asks the store.

Errors are raised from our error tree (InvalidInputError, NotFoundError, ConflictError ...); the shared
ErrorInterceptor turns them into status codes, and in-process callers get the same exceptions.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
from google.protobuf.message import DecodeError

from parley.common.v1 import common_pb2
from parley.context.adapters.protobuf import (
    conversation_pb,
    entity_change_pb,
    entity_pb,
    event_pb,
    feedback_pb,
    from_timestamp,
    memory_pb,
    message_pb,
    profile_pb,
    role_from_pb,
    snapshot_pb,
    state_pb,
)
from parley.context.assembler import ContextAssembler
from parley.context.domain.models import Feedback, NewMessage, Principal, UserProfile
from parley.context.domain.validation import (
    MAX_PAGE_SIZE,
    check_identifier,
    check_page_size,
    check_principal,
    check_search_limit,
    check_text,
    parse_uuid,
)
from parley.context.ports import ConversationStore, Embedder
from parley.context.v1 import context_pb2 as ctx
from parley.context.v1 import context_pb2_grpc
from parley.core.context_client import from_struct
from parley.core.errors import InvalidInputError
from parley.turn.v1 import turn_event_pb2

SERVICE_NAME = "parley.context.v1.ContextService"
MAX_APPEND_BATCH = MAX_PAGE_SIZE
MAX_MEMORY_TEXT = 2_000
MAX_COMMENT = 2_000
MAX_KIND = 64


def _principal(principal: common_pb2.Principal) -> Principal:
    """An unset principal reads as empty ids, which check_principal rejects as "principal is required"."""
    return check_principal(principal.tenant_id, principal.user_id)


def _new_message(m: common_pb2.ChatMessage, index: int) -> NewMessage:
    where = f"messages[{index}]"
    parse_uuid(m.conversation_id, f"{where}.conversation_id")
    check_identifier(m.event_id, f"{where}.event_id")
    if m.turn_id:
        check_identifier(m.turn_id, f"{where}.turn_id")
    return NewMessage(
        conversation_id=m.conversation_id,
        turn_id=m.turn_id,
        role=role_from_pb(m.role, f"{where}.role"),
        text=check_text(m.text, f"{where}.text"),
        event_id=m.event_id,
    )


class ContextServicer(context_pb2_grpc.ContextServiceServicer):
    """Every RPC of ``parley.context.v1.ContextService`` over a :class:`ConversationStore`."""

    def __init__(self, store: ConversationStore, embedder: Embedder, assembler: ContextAssembler) -> None:
        self._store = store
        self._embedder = embedder
        self._assembler = assembler

    async def CreateConversation(
        self, request: ctx.CreateConversationRequest, context: grpc.aio.ServicerContext
    ) -> ctx.CreateConversationResponse:
        owner = _principal(request.principal)
        cid = str(parse_uuid(request.conversation_id)) if request.conversation_id else str(uuid.uuid4())
        conversation = await self._store.create_conversation(cid, owner.tenant_id, owner.user_id)
        return ctx.CreateConversationResponse(conversation=conversation_pb(conversation))

    async def GetConversation(
        self, request: ctx.GetConversationRequest, context: grpc.aio.ServicerContext
    ) -> ctx.GetConversationResponse:
        cid = str(parse_uuid(request.conversation_id))
        owner = _principal(request.principal)
        page_size = check_page_size(request.page_size)
        # Ownership first: another principal's conversation reads as NOT_FOUND before any message is read.
        conversation = await self._store.get_conversation(cid, owner.tenant_id, owner.user_id)
        page = await self._store.list_messages(cid, page_size, request.page_token)
        return ctx.GetConversationResponse(
            conversation=conversation_pb(conversation),
            messages=[message_pb(m) for m in page.messages],
            next_page_token=page.next_page_token,
        )

    async def AppendMessages(
        self, request: ctx.AppendMessagesRequest, context: grpc.aio.ServicerContext
    ) -> ctx.AppendMessagesResponse:
        if not request.messages:
            raise InvalidInputError("messages is required (at least one message)")
        if len(request.messages) > MAX_APPEND_BATCH:
            raise InvalidInputError(
                f"at most {MAX_APPEND_BATCH} messages per call, got {len(request.messages)}"
            )
        messages = [_new_message(m, i) for i, m in enumerate(request.messages)]
        appended = await self._store.append_messages(messages)
        return ctx.AppendMessagesResponse(appended=appended)

    async def AppendEvents(
        self, request: ctx.AppendEventsRequest, context: grpc.aio.ServicerContext
    ) -> ctx.AppendEventsResponse:
        if not request.events:
            raise InvalidInputError("events is required (at least one event)")
        if len(request.events) > MAX_APPEND_BATCH:
            raise InvalidInputError(f"at most {MAX_APPEND_BATCH} events per call, got {len(request.events)}")
        checked = [_stored_event(e, i) for i, e in enumerate(request.events)]
        appended = 0
        for event in checked:
            appended += await self._store.record_event(*event)
        return ctx.AppendEventsResponse(appended=appended)

    async def GetState(
        self, request: ctx.GetStateRequest, context: grpc.aio.ServicerContext
    ) -> ctx.GetStateResponse:
        cid = str(parse_uuid(request.conversation_id))
        return ctx.GetStateResponse(state=state_pb(await self._store.get_state(cid)))

    async def UpdateState(
        self, request: ctx.UpdateStateRequest, context: grpc.aio.ServicerContext
    ) -> ctx.UpdateStateResponse:
        cid = str(parse_uuid(request.conversation_id))
        if request.expected_version < 0:
            raise InvalidInputError(f"expected_version must not be negative, got {request.expected_version}")
        state = await self._store.update_state(cid, request.expected_version, from_struct(request.data))
        return ctx.UpdateStateResponse(state=state_pb(state))

    async def SearchMemory(
        self, request: ctx.SearchMemoryRequest, context: grpc.aio.ServicerContext
    ) -> ctx.SearchMemoryResponse:
        owner = _principal(request.principal)
        if not request.query.strip():
            raise InvalidInputError("query is required")
        limit = check_search_limit(request.limit)
        query = check_text(request.query, "query")[:MAX_MEMORY_TEXT]
        hits = await self._store.search_messages(owner.tenant_id, owner.user_id, query, limit)
        memories = await self._store.search_memories(
            owner.tenant_id, owner.user_id, self._embedder.embed(query), limit
        )
        return ctx.SearchMemoryResponse(
            hits=[message_pb(m) for m in hits], memories=[memory_pb(m) for m in memories]
        )

    async def Remember(
        self, request: ctx.RememberRequest, context: grpc.aio.ServicerContext
    ) -> ctx.RememberResponse:
        owner = _principal(request.principal)
        text = check_text(request.text, "text").strip()
        if not text:
            raise InvalidInputError("text is required")
        if len(text) > MAX_MEMORY_TEXT:
            raise InvalidInputError(f"text is longer than {MAX_MEMORY_TEXT} characters")
        kind = request.kind or "fact"
        check_identifier(kind, "kind")
        if len(kind) > MAX_KIND:
            raise InvalidInputError(f"kind is longer than {MAX_KIND} characters")
        conversation_id = ""
        if request.conversation_id:
            conversation_id = str(parse_uuid(request.conversation_id))
            await self._store.get_conversation(conversation_id, owner.tenant_id, owner.user_id)
        memory = await self._store.remember(
            owner.tenant_id,
            owner.user_id,
            text,
            kind,
            self._embedder.embed(text),
            metadata=from_struct(request.metadata),
            conversation_id=conversation_id,
        )
        return ctx.RememberResponse(memory=memory_pb(memory))

    async def GetContext(
        self, request: ctx.GetContextRequest, context: grpc.aio.ServicerContext
    ) -> ctx.GetContextResponse:
        cid = str(parse_uuid(request.conversation_id))
        owner = _principal(request.principal)
        await self._store.get_conversation(cid, owner.tenant_id, owner.user_id)
        query = check_text(request.query, "query")[:MAX_MEMORY_TEXT]
        assembled = await self._assembler.assemble(cid, owner, query)
        return ctx.GetContextResponse(context=snapshot_pb(assembled))

    async def QueryEntities(
        self, request: ctx.QueryEntitiesRequest, context: grpc.aio.ServicerContext
    ) -> ctx.QueryEntitiesResponse:
        cid = str(parse_uuid(request.conversation_id))
        owner = _principal(request.principal)
        entity_type = check_identifier(request.entity_type, "entity_type") if request.entity_type else None
        await self._store.get_conversation(cid, owner.tenant_id, owner.user_id)
        attributes = from_struct(request.attributes) if request.HasField("attributes") else None
        entities = await self._store.current_entities(cid, entity_type, attributes or None, limit=500)
        history = []
        if request.include_history:
            wanted = {e.entity_type for e in entities}
            history = [
                c for c in await self._store.entity_history(cid, entity_type) if c.entity_type in wanted
            ]
        return ctx.QueryEntitiesResponse(
            entities=[entity_pb(e) for e in entities], history=[entity_change_pb(c) for c in history]
        )

    async def GetProfile(
        self, request: ctx.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> ctx.GetProfileResponse:
        owner = _principal(request.principal)
        return ctx.GetProfileResponse(
            profile=profile_pb(await self._store.get_profile(owner.tenant_id, owner.user_id))
        )

    async def UpdateProfile(
        self, request: ctx.UpdateProfileRequest, context: grpc.aio.ServicerContext
    ) -> ctx.UpdateProfileResponse:
        p = request.profile
        owner = _principal(p.principal)
        profile = UserProfile(
            tenant_id=owner.tenant_id,
            user_id=owner.user_id,
            display_name=check_text(p.display_name, "profile.display_name")[: MAX_KIND * 4],
            timezone=p.timezone,
            locale=p.locale,
            preferences=from_struct(p.preferences),
        )
        return ctx.UpdateProfileResponse(profile=profile_pb(await self._store.upsert_profile(profile)))

    async def RecordFeedback(
        self, request: ctx.RecordFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> ctx.RecordFeedbackResponse:
        owner = _principal(request.principal)
        f = request.feedback
        cid = str(parse_uuid(f.conversation_id, "feedback.conversation_id"))
        if f.turn_id:
            check_identifier(f.turn_id, "feedback.turn_id")
        if not 0 <= f.rating <= 5:
            raise InvalidInputError(f"feedback.rating must be 1 to 5 (0 for none), got {f.rating}")
        comment = check_text(f.comment, "feedback.comment")
        if len(comment) > MAX_COMMENT:
            raise InvalidInputError(f"feedback.comment is longer than {MAX_COMMENT} characters")
        resolved = f.resolved if f.HasField("resolved") else None
        if not f.rating and resolved is None and not comment.strip():
            raise InvalidInputError("feedback needs a rating, resolved or a comment")
        stored = await self._store.record_feedback(
            owner.tenant_id,
            owner.user_id,
            Feedback(
                # a client-chosen id makes a retry idempotent (the store answers with the first one)
                feedback_id=str(parse_uuid(f.feedback_id, "feedback.feedback_id")) if f.feedback_id else "",
                conversation_id=cid,
                turn_id=f.turn_id,
                rating=f.rating or None,
                resolved=resolved,
                comment=comment,
                created_at=datetime.now(UTC),
            ),
        )
        return ctx.RecordFeedbackResponse(feedback=feedback_pb(stored))

    async def ExportUserData(
        self, request: ctx.ExportUserDataRequest, context: grpc.aio.ServicerContext
    ) -> ctx.ExportUserDataResponse:
        owner = _principal(request.principal)
        export = await self._store.export_user(owner.tenant_id, owner.user_id)
        return ctx.ExportUserDataResponse(
            conversations=[conversation_pb(c) for c in export.conversations],
            messages=[message_pb(m) for m in export.messages],
            states=[state_pb(s) for s in export.states],
            events=[event_pb(e) for e in export.events],
            profile=profile_pb(export.profile) if export.profile else None,
            memories=[memory_pb(m) for m in export.memories],
            entities=[entity_pb(e) for e in export.entities],
            entity_history=[entity_change_pb(c) for c in export.entity_history],
            feedback=[feedback_pb(f) for f in export.feedback],
            summaries={s.conversation_id: s.text for s in export.summaries},
        )

    async def DeleteUserData(
        self, request: ctx.DeleteUserDataRequest, context: grpc.aio.ServicerContext
    ) -> ctx.DeleteUserDataResponse:
        owner = _principal(request.principal)
        deleted = await self._store.delete_user(owner.tenant_id, owner.user_id)
        return ctx.DeleteUserDataResponse(
            conversations_deleted=deleted.conversations,
            messages_deleted=deleted.messages,
            states_deleted=deleted.states,
            events_deleted=deleted.events,
            memories_deleted=deleted.memories,
            entities_deleted=deleted.entities,
            feedback_deleted=deleted.feedback,
            profiles_deleted=deleted.profiles,
        )


def _stored_event(event: ctx.StoredEvent, index: int) -> tuple[str, str, str, str, bytes, datetime]:
    """Validate one event to log: its payload must be the TurnEvent it claims to be."""
    where = f"events[{index}]"
    try:
        decoded = turn_event_pb2.TurnEvent.FromString(event.payload)
    except DecodeError as exc:
        raise InvalidInputError(f"{where}.payload is not a serialized TurnEvent") from exc
    if not event.event_id or decoded.event_id != event.event_id:
        raise InvalidInputError(f"{where}.event_id must be set and equal the payload's event id")
    if decoded.conversation_id != event.conversation_id:
        raise InvalidInputError(f"{where}.conversation_id must equal the payload's conversation id")
    kind = event.type or (decoded.WhichOneof("payload") or "")
    if not kind:
        raise InvalidInputError(f"{where}.type is required when the payload has none")
    occurred = from_timestamp(event.occurred_at) if event.HasField("occurred_at") else None
    return (
        event.event_id,
        event.conversation_id,
        event.turn_id or decoded.turn_id,
        kind,
        event.payload,
        occurred or datetime.now(UTC),
    )
