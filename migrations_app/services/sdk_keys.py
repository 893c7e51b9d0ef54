"""SDK keys: a secret shown once at creation, stored as a SHA-256, bound to one environment, scoped,
revocable with immediate effect (revocation overwrites the cached principal on commit; see
selectors.sdk_principal_for_secret for why a concurrent reader cannot undo that)."""

import secrets
from functools import partial

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from ..models import Environment, SDKKey, SDKScope
from ..selectors import hash_sdk_secret, sdk_key_cache_key, sdk_principal_cache_entry, sdk_principal_from_key
from .audit import audit_record

SECRET_PREFIX = "cut_"
ALL_SCOPES = tuple(SDKScope.values)


class UnknownScope(ValueError):
    pass


def environment_get_or_create(*, name: str, actor: str) -> Environment:
    environment, created = Environment.objects.get_or_create(name=name)
    if created:
        audit_record(actor=actor, action="environment.created", after={"name": name})
    return environment


@transaction.atomic
def sdk_key_create(*, actor: str, environment: Environment, scopes: list[str] | None = None,
                   name: str = "") -> tuple[SDKKey, str]:
    """The new key and its secret; the secret is not stored and cannot be shown again."""
    scopes = list(ALL_SCOPES) if scopes is None else list(dict.fromkeys(scopes))
    unknown = [scope for scope in scopes if scope not in ALL_SCOPES]
    if unknown or not scopes:
        raise UnknownScope(f"unknown scopes {unknown}; choose from {list(ALL_SCOPES)}" if unknown
                           else "a key needs at least one scope")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = SDKKey.objects.create(
        environment=environment, name=name, prefix=secret[: len(SECRET_PREFIX) + 8],
        hashed_secret=hash_sdk_secret(secret), scopes=scopes, created_by=actor,
    )
    audit_record(actor=actor, action="sdk_key.created",
                 after={"prefix": key.prefix, "environment": environment.name, "scopes": scopes, "name": name})
    return key, secret


def sdk_key_revoke(*, actor: str, key: SDKKey, reason: str = "") -> SDKKey:
    with transaction.atomic():
        key = SDKKey.objects.select_for_update().select_related("environment").get(pk=key.pk)
        if key.revoked:
            return key
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="sdk_key.revoked", before={"prefix": key.prefix, "revoked": False},
                     after={"prefix": key.prefix, "revoked": True}, reason=reason)
        transaction.on_commit(partial(
            cache.set, sdk_key_cache_key(key.hashed_secret),
            sdk_principal_cache_entry(sdk_principal_from_key(key)), settings.CUTOVER_CONFIG_CACHE_SECONDS,
        ))
    return key
