"""Role groups come back for tests that run after a transactional flush removed them."""

import pytest


@pytest.mark.django_db(transaction=True)
def test_a_flush_first():
    from django.contrib.auth.models import Group

    Group.objects.all().delete()  # what a flush leaves behind


@pytest.mark.django_db(transaction=True)
def test_then_an_operator_still_has_its_permissions(role_user):
    user = role_user("operator")
    assert user.has_perm("executions.retry_execution")
    assert user.has_perm("otc.view_trade")
