"""Users, API tokens and roles: who may do what in which project."""

from .roles import ROLES, Action, Principal, can
from .service import (
    authenticate_token,
    create_token,
    create_user,
    grant,
    member_id,
    revoke_token,
    sign_in,
)

__all__ = [
    "ROLES",
    "Action",
    "Principal",
    "authenticate_token",
    "can",
    "create_token",
    "create_user",
    "grant",
    "member_id",
    "revoke_token",
    "sign_in",
]
