"""Roles: the migration's groups and `spine_create_user`, whose last line is the API token."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

VIEWER = {
    "executions.view_execution",
    "executions.view_executionevent",
    "executions.view_lane",
    "executions.view_schedule",
    "dlq.view_deadletter",
    "otc.view_rawcapture",
    "otc.view_rawblock",
    "otc.view_trade",
    "otc.view_metricsdaily",
    "otc.view_rejectedrow",
}
OPERATOR = VIEWER | {
    "executions.submit_execution",
    "executions.retry_execution",
    "executions.cancel_execution",
    "executions.pause_lane",
    "dlq.replay_deadletter",
    "dlq.resolve_deadletter",
    "executions.add_schedule",
    "executions.change_schedule",
    "executions.delete_schedule",
}


def perms_of(group_name):
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


@pytest.mark.django_db
def test_migration_creates_the_two_groups_with_exact_permissions():
    assert perms_of("viewer") == VIEWER
    assert perms_of("operator") == OPERATOR


def create(*args):
    out = StringIO()
    call_command("spine_create_user", *args, stdout=out)
    return out.getvalue().strip().splitlines()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "perms", "superuser"),
    [("viewer", VIEWER, False), ("operator", OPERATOR, False), ("admin", None, True)],
)
def test_create_user_prints_the_token_last(role, perms, superuser):
    lines = create("carol", "--role", role)

    user = get_user_model().objects.get(username="carol")
    assert lines[-1] == Token.objects.get(user=user).key
    assert (user.is_staff, user.is_superuser, user.has_usable_password()) == (
        True,
        superuser,
        False,
    )
    if perms is not None:
        assert user.get_all_permissions() == perms


@pytest.mark.django_db
def test_running_it_again_changes_the_role_and_keeps_the_token():
    first = create("dave", "--role", "operator", "--password", "s3cret-pass")
    second = create("dave", "--role", "viewer")

    user = get_user_model().objects.get(username="dave")
    assert first[-1] == second[-1]
    assert [g.name for g in user.groups.all()] == ["viewer"]
    assert user.check_password("s3cret-pass")


@pytest.mark.django_db
def test_an_unknown_role_is_refused():
    with pytest.raises(CommandError):
        call_command("spine_create_user", "eve", "--role", "root")
    assert not get_user_model().objects.filter(username="eve").exists()
