"""Roles (SPEC §6): `viewer` reads, `operator` also acts, `admin` is a superuser.

The groups and their permissions are created by the migration `spine_project/0001_roles`.
"""

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
