"""API permissions: every view action names the Django permission it needs (roles, SPEC §6)."""

from rest_framework.permissions import BasePermission


class ActionPermission(BasePermission):
    """Allow an authenticated user holding the permission that the view maps to this action.

    Views set `action_permissions = {"list": "executions.view_execution", ...}`; an action not in
    the map is refused, so a new endpoint is closed until someone says who may use it.
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        perm = view.action_permissions.get(getattr(view, "action", None) or "")
        return perm is not None and user.has_perm(perm)
