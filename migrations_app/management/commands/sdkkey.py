from django.core.management.base import BaseCommand, CommandError

from migrations_app.models import SDKKey
from migrations_app.services.sdk_keys import (
    ALL_SCOPES,
    UnknownScope,
    environment_get_or_create,
    sdk_key_create,
    sdk_key_revoke,
)

ACTOR = "cli:sdkkey"


class Command(BaseCommand):
    help = "Create or revoke an environment's SDK key. `create` prints the secret, alone, on its last line."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        create = commands.add_parser("create", help="create a key (and the environment if it is new)")
        create.add_argument("environment")
        create.add_argument("--scopes", default=",".join(ALL_SCOPES),
                            help=f"comma-separated, from {', '.join(ALL_SCOPES)} (default: all)")
        create.add_argument("--name", default="")
        revoke = commands.add_parser("revoke", help="revoke a key by its prefix")
        revoke.add_argument("prefix")
        revoke.add_argument("--reason", default="")

    def handle(self, *args, command: str, **options):
        if command == "create":
            environment = environment_get_or_create(name=options["environment"], actor=ACTOR)
            scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
            try:
                key, secret = sdk_key_create(actor=ACTOR, environment=environment, scopes=scopes,
                                             name=options["name"])
            except UnknownScope as error:
                raise CommandError(str(error)) from error
            self.stderr.write(f"Created SDK key {key.prefix}… for {environment.name} with scopes "
                              f"{', '.join(key.scopes)}. The secret is shown once:")
            self.stdout.write(secret)
        else:
            key = SDKKey.objects.filter(prefix=options["prefix"]).first()
            if key is None:
                raise CommandError(f"no SDK key with prefix {options['prefix']!r}")
            sdk_key_revoke(actor=ACTOR, key=key, reason=options["reason"])
            self.stdout.write(f"Revoked {key.prefix}.")
