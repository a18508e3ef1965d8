"""Authentication: from what a request presents (API key, user token, identity headers) to a Principal.

Two modes, chosen by settings:

* ``none``: today's local behaviour. The tenant and user come from ``X-Parley-Tenant``/``X-Parley-User``
  (gRPC: ``x-parley-tenant`` metadata and the request's ``user_id``) and nothing is checked. For ``make run``,
  the embedded mode and a gateway behind a trusted proxy that authenticates by itself.
* ``api_key``: a tenant's API key is required; it names the tenant. The user is the ``sub`` of a verified
  user token (JWT) when one is sent, else the user id the caller states. A tenant's key therefore acts for
  any of that tenant's users unless the tenant is configured to require user tokens.

The HTTP and gRPC faces both hand :class:`Credentials` to :meth:`Authenticator.authenticate`, so they
accept and refuse exactly the same requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from parley.core.errors import InvalidInputError, PermissionDeniedError, UnauthenticatedError
from parley.gateway.domain.identity import Principal, principal_of
from parley.gateway.domain.keys import KEY_PREFIX, KeyVerifier
from parley.gateway.domain.ratelimit import RateLimiter
from parley.gateway.domain.tokens import UserTokenVerifier

AuthMode = Literal["none", "api_key"]

_HOW = f"send `Authorization: Bearer {KEY_PREFIX}...` or `X-API-Key: {KEY_PREFIX}...`"


@dataclass(frozen=True)
class Credentials:
    """What one request presents; ``None`` means "not sent"."""

    api_key: str | None = None
    user_token: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None

    @classmethod
    def collect(
        cls,
        *,
        bearer: str | None = None,
        api_key: str | None = None,
        user_token: str | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> Credentials:
        """Sort the raw values: a bearer value is the API key when it starts with ``pk_``, else a user token.

        Raises :class:`UnauthenticatedError` when two different keys or two different tokens are sent,
        rather than guessing which one was meant.
        """
        bearer = (bearer or "").strip() or None
        keys = {v for v in (api_key and api_key.strip(), bearer if _is_key(bearer) else None) if v}
        tokens = {v for v in (user_token and user_token.strip(), None if _is_key(bearer) else bearer) if v}
        if len(keys) > 1:
            raise UnauthenticatedError("two different API keys were sent; send one")
        if len(tokens) > 1:
            raise UnauthenticatedError("two different user tokens were sent; send one")
        return cls(
            api_key=next(iter(keys), None),
            user_token=next(iter(tokens), None),
            tenant_id=tenant_id,
            user_id=user_id,
        )


def _is_key(value: str | None) -> bool:
    return value is not None and value.startswith(KEY_PREFIX)


class Authenticator:
    """Decides who a request acts for, and spends one request of the key's rate limit."""

    def __init__(
        self,
        mode: AuthMode = "none",
        *,
        keys: KeyVerifier | None = None,
        user_tokens: UserTokenVerifier | None = None,
        limiter: RateLimiter | None = None,
        require_user_token: bool = False,
        user_token_tenants: Iterable[str] = (),
    ) -> None:
        if mode == "api_key" and keys is None:
            raise ValueError("api_key mode needs a key verifier")
        if (require_user_token or user_token_tenants) and user_tokens is None:
            raise ValueError("requiring user tokens needs a user token verifier")
        self.mode = mode
        self._keys = keys
        self._user_tokens = user_tokens
        self._limiter = limiter
        self._require_all = require_user_token
        self._require_for = frozenset(user_token_tenants)

    def requires_user_token(self, tenant_id: str) -> bool:
        """Whether a key of ``tenant_id`` must come with a user token."""
        return self._require_all or tenant_id in self._require_for

    async def authenticate(self, credentials: Credentials) -> Principal:
        """The principal, or :class:`UnauthenticatedError` (401), :class:`PermissionDeniedError` (403),
        :class:`~parley.gateway.domain.ratelimit.RateLimitedError` (429)."""
        if self.mode == "none":
            return principal_of(credentials.tenant_id, credentials.user_id)
        if self._keys is None:  # unreachable: __init__ refuses api_key mode without keys
            raise UnauthenticatedError("API keys cannot be checked: no key store is configured")
        if credentials.api_key is None:
            raise UnauthenticatedError(f"an API key is required: {_HOW}")
        key = await self._keys.verify(credentials.api_key)
        if self._limiter is not None:
            # Before the user token: a flood of bad tokens still spends the key's budget.
            self._limiter.take(key.key_id)
        if credentials.tenant_id is not None and credentials.tenant_id != key.tenant_id:
            raise PermissionDeniedError(
                "X-Parley-Tenant names another tenant than the API key's; the key decides the tenant "
                "(leave the header out)"
            )
        user_id = credentials.user_id
        if credentials.user_token is not None:
            if self._user_tokens is None:
                raise UnauthenticatedError(
                    "user tokens are not accepted here (no JWT key is configured on the gateway)"
                )
            claims = self._user_tokens.verify(credentials.user_token)
            if claims.tenant_id is not None and claims.tenant_id != key.tenant_id:
                raise PermissionDeniedError("the user token was issued for another tenant than the API key's")
            if user_id is not None and user_id != claims.user_id:
                raise PermissionDeniedError(
                    "the stated user id differs from the user token's subject; leave it out or send the same"
                )
            try:
                verified = principal_of(key.tenant_id, claims.user_id)
            except InvalidInputError as exc:
                raise UnauthenticatedError(f"the user token's subject is not a valid user id: {exc}") from exc
            return Principal(verified.tenant_id, verified.user_id, user_verified=True)
        if self.requires_user_token(key.tenant_id):
            raise UnauthenticatedError(
                f"tenant {key.tenant_id!r} requires a user token: send the user's JWT as "
                "`X-Parley-User-Token` (or as the bearer token with the key in `X-API-Key`)"
            )
        return principal_of(key.tenant_id, user_id)
