from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken


class Command(BaseCommand):
    help = "Create an ops API token for a staff user; prints the token, alone, on its last line."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        create = commands.add_parser("create")
        create.add_argument("username")

    def handle(self, *args, command: str, username: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_staff:
            raise CommandError(f"{username!r} is not a staff user; the ops API is for staff only")
        # knox keeps only a digest of the token.
        _, token = AuthToken.objects.create(user)
        self.stderr.write(f"Created an API token for {username}; send it as `Authorization: Token <token>`:")
        self.stdout.write(token)
