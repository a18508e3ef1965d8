"""The gateway's logic: accepting user messages and matching replies to the requests waiting for them."""

from parley.gateway.domain.chat import ChatService, Pending, Replied, SendResult, StreamEvent, Typing
from parley.gateway.domain.identity import Principal, check_conversation_id, principal_of
from parley.gateway.domain.router import Chunk, ReplyRouter, ReplyStream

__all__ = [
    "ChatService",
    "Chunk",
    "Pending",
    "Principal",
    "Replied",
    "ReplyRouter",
    "ReplyStream",
    "SendResult",
    "StreamEvent",
    "Typing",
    "check_conversation_id",
    "principal_of",
]
