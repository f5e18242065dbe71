"""Roles (SPEC §6): `viewer` reads, `operator` also acts, `admin` is a superuser.

The groups and their permissions are created by the migration `spine_project/0001_roles`.
"""

from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)


def assign_role(user, role: str) -> None:
    """Give `user` exactly `role`: its group, staff access to the console, superuser for admin."""
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; roles are {', '.join(ROLES)}.")
    user.is_staff = True  # every role may open the operations console; permissions limit it
    user.is_superuser = role == ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
    user.groups.set(Group.objects.filter(name=role) if role != ADMIN else [])


# Migrations that add models call these with their historical `apps`.


def grant(apps, grants: dict[str, list[tuple[str, str]]]) -> None:
    """Add `(app_label, codename)` permissions to each named group, creating what is missing."""
    labels = {label for perms in grants.values() for label, _ in perms}
    for label in labels:
        # Permissions are normally created after all migrations ran; create them now so the
        # groups can hold them on a fresh database.
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # the historical app stub lacks it
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in grants.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def revoke(apps, grants: dict[str, list[tuple[str, str]]]) -> None:
    """Undo `grant()` for the named permissions (groups stay)."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in grants.items():
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue
        for app_label, codename in perms:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )
