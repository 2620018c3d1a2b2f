"""Roles and what each may do. One table, so the rules can be read in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..errors import PermissionDenied

__all__ = ["ROLES", "Action", "Principal", "can", "capped"]

ROLES = ("admin", "maintainer", "expert", "annotator", "viewer", "ingest")


class Action(StrEnum):
    READ = "read"                          # list and get interactions, feedback, signals
    WRITE_INTERACTIONS = "write_interactions"
    WRITE_END_USER_FEEDBACK = "write_end_user_feedback"
    WRITE_FEEDBACK = "write_feedback"      # any source
    MANAGE_SIGNALS = "manage_signals"
    EVALUATE = "evaluate"                  # run two-channel evaluations, tag discrepancies
    ANNOTATE = "annotate"                  # work a campaign queue (as a named rater)
    MANAGE_CAMPAIGNS = "manage_campaigns"  # guidelines, campaigns, aggregation runs
    MANAGE_EXPERIMENTS = "manage_experiments"  # design, start, stop, decide experiments
    MANAGE_FINDINGS = "manage_findings"    # triage rules and queue, themes, findings
    SIGN_OFF = "sign_off"                  # sign off (or reject) a release gate
    RELEASE = "release"                    # evaluate gates, release and roll back
    MANAGE_PROJECT = "manage_project"      # tokens, members, settings
    CREATE_PROJECT = "create_project"      # instance administrators only


_PERMISSIONS: dict[str, frozenset[Action]] = {
    "admin": frozenset(Action) - {Action.CREATE_PROJECT},
    "maintainer": frozenset({Action.READ, Action.WRITE_INTERACTIONS,
                             Action.WRITE_END_USER_FEEDBACK, Action.WRITE_FEEDBACK,
                             Action.MANAGE_SIGNALS, Action.EVALUATE, Action.ANNOTATE,
                             Action.MANAGE_CAMPAIGNS, Action.MANAGE_EXPERIMENTS,
                             Action.MANAGE_FINDINGS, Action.SIGN_OFF, Action.RELEASE}),
    # A domain expert: reads, annotates, and signs off gates (the high tier requires one).
    "expert": frozenset({Action.READ, Action.WRITE_FEEDBACK, Action.WRITE_END_USER_FEEDBACK,
                         Action.ANNOTATE, Action.SIGN_OFF}),
    "annotator": frozenset({Action.READ, Action.WRITE_FEEDBACK,
                            Action.WRITE_END_USER_FEEDBACK, Action.ANNOTATE}),
    "viewer": frozenset({Action.READ}),
    "ingest": frozenset({Action.WRITE_INTERACTIONS, Action.WRITE_END_USER_FEEDBACK}),
}


def can(role: str | None, action: Action) -> bool:
    return role is not None and action in _PERMISSIONS.get(role, frozenset())


# Roles that are a qualification as well as a set of permissions: only a membership
# confers them (an expert signs gates in the expert capacity; see governance.policy).
_QUALIFICATIONS = frozenset({"expert"})


def capped(role: str, cap: str | None) -> str | None:
    """``role``, unless it may do something ``cap`` may not or claims a qualification
    ``cap`` lacks: then ``cap`` (None: no access). A token made for a user never gives
    more than the user's own role in the project."""
    if cap is None or role == cap:
        return cap
    narrower = _PERMISSIONS.get(role, frozenset()) <= _PERMISSIONS.get(cap, frozenset())
    return role if narrower and role not in _QUALIFICATIONS else cap


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API token (one project, one role), an instance administrator
    token, or a signed-in user with roles in several projects."""

    name: str
    roles: dict[int, str] = field(default_factory=dict)  # project id -> role
    superuser: bool = False
    user_id: int | None = None

    def role_in(self, project_id: int) -> str | None:
        if self.superuser:
            return "admin"
        return self.roles.get(project_id)

    def project_ids(self) -> list[int] | None:
        """The projects this principal may see; None means all."""
        return None if self.superuser else sorted(self.roles)

    def require(self, project_id: int, action: Action) -> str:
        """The caller's role in the project, or :class:`PermissionDenied`."""
        if action is Action.CREATE_PROJECT:
            if self.superuser:
                return "admin"
            raise PermissionDenied("only an instance administrator may create projects",
                                   action=str(action))
        role = self.role_in(project_id)
        if role is None:
            raise PermissionDenied("this credential has no access to this project",
                                   action=str(action))
        if not can(role, action):
            raise PermissionDenied(f"role {role!r} may not {action.value.replace('_', ' ')}",
                                   action=str(action), role=role)
        return role

    def allowed_feedback_sources(self, project_id: int) -> tuple[str, ...] | None:
        role = self.role_in(project_id)
        if can(role, Action.WRITE_FEEDBACK):
            return None
        if can(role, Action.WRITE_END_USER_FEEDBACK):
            return ("end_user",)
        return ()
