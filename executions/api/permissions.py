"""API permissions: every view action names the Django permission it needs (roles, SPEC §6)."""

from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions


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


class ReadModelPermission(DjangoModelPermissions):
    """Allow an authenticated user holding the view permission of the view's model to read.

    For read-only list views over a model (the OTC API): DRF's own `DjangoModelPermissions`
    asks no permission for a GET, so any signed-in user, even one without a role, could read.
    Other methods are left to the view, which answers 405 to a signed-in caller.
    """

    _view = ["%(app_label)s.view_%(model_name)s"]
    perms_map = {**DjangoModelPermissions.perms_map, "GET": _view, "HEAD": _view, "OPTIONS": _view}

    def has_permission(self, request, view) -> bool:
        if request.method not in SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)
