"""The gateway's logic: accepting user messages and matching replies to the requests waiting for them."""

from parley.gateway.domain.chat import ChatService, SendResult
from parley.gateway.domain.identity import Principal, check_conversation_id, principal_of
from parley.gateway.domain.router import ReplyRouter

__all__ = [
    "ChatService",
    "Principal",
    "ReplyRouter",
    "SendResult",
    "check_conversation_id",
    "principal_of",
]
