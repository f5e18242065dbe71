"""`spine_create_user USERNAME --role viewer|operator|admin`: a user, its role and its API token."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from spine_project.roles import ROLES, assign_role


class Command(BaseCommand):
    help = (
        "Create a user (or update an existing one) with a role and print its API token on the "
        "last line. Without --password the user signs in to the API with the token only."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help="password for the admin console (optional)")

    def handle(self, *args, username, role, email, password, **opts):
        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username, defaults={"email": email})
            if password:
                user.set_password(password)
                user.save(update_fields=["password"])
            elif created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            try:
                assign_role(user, role)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            token, _ = Token.objects.get_or_create(user=user)
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} user {username!r} with role {role}.")
        self.stdout.write(token.key)
