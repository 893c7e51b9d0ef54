"""Reads: the SDK config document, SDK key look-ups, plan listings."""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from .domain.lifecycle import State
from .models import Environment, MigrationPlan, ModelEndpoint, SDKKey

# Plans an SDK must know about: every one that has left the drawing board.
_UNPUBLISHED_STATES = (State.DRAFT.value,)


def _endpoint_document(endpoint: ModelEndpoint, prompt_adapter: str) -> dict:
    # The *name* of the key's environment variable is not a secret; the key itself never gets here.
    return {
        "name": endpoint.name,
        "provider": endpoint.provider,
        "model": endpoint.model,
        "base_url": endpoint.base_url,
        "api_key_env": endpoint.api_key_env,
        "params": endpoint.default_params,
        "prompt_adapter": prompt_adapter or None,
        "context_window": endpoint.context_window,
        "input_price_per_mtok": float(endpoint.input_price_per_mtok),
        "output_price_per_mtok": float(endpoint.output_price_per_mtok),
    }


def sdk_config_document(*, environment_id: int) -> dict:
    environment = Environment.objects.get(pk=environment_id)
    plans = (
        MigrationPlan.objects.filter(environment_id=environment_id)
        .exclude(state__in=_UNPUBLISHED_STATES)
        .select_related("baseline", "candidate")
        .order_by("key")
    )
    return {
        "environment": environment.name,
        "version": environment.config_version,
        "plans": [
            {
                "key": plan.key,
                "state": plan.state,
                "candidate_percent": plan.candidate_percent,
                "rollback": plan.rollback,
                "shadow_sample_rate": plan.shadow_sample_rate,
                "salt": plan.salt,
                "version": plan.config_version,
                "baseline": _endpoint_document(plan.baseline, plan.baseline_prompt_adapter),
                "candidate": _endpoint_document(plan.candidate, plan.candidate_prompt_adapter),
            }
            for plan in plans
        ],
    }


@dataclass(frozen=True)
class SDKPrincipal:
    """Who an SDK request speaks for: one key of one environment, with its scopes."""

    key_id: int
    prefix: str
    environment_id: int
    environment: str
    scopes: tuple[str, ...]
    revoked: bool

    # DRF and Django look for these on request.user.
    is_authenticated = True
    is_staff = False
    is_active = True

    def has_scope(self, scope: str) -> bool:
        return not self.revoked and scope in self.scopes


def hash_sdk_secret(secret: str) -> str:
    # SDK secrets are 256-bit random tokens, so a fast hash is safe (no dictionary to attack) and keeps
    # authentication off the hot path's CPU budget.
    return hashlib.sha256(secret.encode()).hexdigest()


def sdk_key_cache_key(hashed_secret: str) -> str:
    return f"cutover:sdkkey:{hashed_secret}"


def sdk_principal_from_key(key: SDKKey) -> SDKPrincipal:
    return SDKPrincipal(
        key_id=key.pk, prefix=key.prefix, environment_id=key.environment_id, environment=key.environment.name,
        scopes=tuple(key.scopes), revoked=key.revoked,
    )


_UNKNOWN = "unknown"


def sdk_principal_for_secret(secret: str) -> SDKPrincipal | None:
    """The principal for a presented secret, or None for an unknown one. Cached, including misses (a new
    key has a new hash, so a cached miss can never hide it); revocation overwrites the entry."""
    hashed = hash_sdk_secret(secret)
    cached = cache.get(sdk_key_cache_key(hashed))
    if cached is not None:
        return None if cached == _UNKNOWN else SDKPrincipal(*cached)
    key = SDKKey.objects.select_related("environment").filter(hashed_secret=hashed).first()
    principal = sdk_principal_from_key(key) if key else None
    entry = _UNKNOWN if principal is None else sdk_principal_cache_entry(principal)
    # add, not set: never overwrite what a concurrent revocation stored.
    cache.add(sdk_key_cache_key(hashed), entry, settings.CUTOVER_CONFIG_CACHE_SECONDS)
    return principal


def sdk_principal_cache_entry(principal: SDKPrincipal) -> tuple:
    return (principal.key_id, principal.prefix, principal.environment_id, principal.environment,
            principal.scopes, principal.revoked)
