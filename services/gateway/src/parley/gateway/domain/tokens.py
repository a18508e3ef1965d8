"""End-user tokens (JWT): who the user is, vouched for by the tenant's own login system.

The tenant's backend signs a short-lived token whose ``sub`` is the user id (HS256 with a shared secret, or
RS256 with its private key while the gateway holds only the public key). The token names the user, never
the tenant: the tenant always comes from the API key, so a token cannot move a request into another
tenant. A token that carries a tenant claim must name the key's tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jwt

from parley.core.errors import UnauthenticatedError

Algorithm = Literal["HS256", "RS256"]


@dataclass(frozen=True)
class UserClaims:
    """What a verified token says: the user and, when present, the tenant it was issued for."""

    user_id: str
    tenant_id: str | None


class UserTokenVerifier:
    """Checks signature, expiry (``exp`` is required), and audience/issuer when configured."""

    def __init__(
        self,
        algorithm: Algorithm,
        key: str,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_s: float = 10.0,
        tenant_claim: str = "tenant",
    ) -> None:
        self._algorithm = algorithm
        self._key = key
        self._audience = audience
        self._issuer = issuer
        self._leeway_s = leeway_s
        self._tenant_claim = tenant_claim

    def verify(self, token: str) -> UserClaims:
        """The claims of a valid token; :class:`UnauthenticatedError` for an invalid or expired one."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError("the user token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"the user token is not valid: {exc}") from exc
        subject = claims["sub"]
        tenant = claims.get(self._tenant_claim)
        if not isinstance(subject, str) or not subject:
            raise UnauthenticatedError("the user token's `sub` must be a non-empty string (the user id)")
        if tenant is not None and not isinstance(tenant, str):
            raise UnauthenticatedError(f"the user token's `{self._tenant_claim}` claim must be a string")
        return UserClaims(subject, tenant)
