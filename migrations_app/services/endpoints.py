"""Model endpoint writes. An endpoint change reaches every SDK that routes to it: the config versions of
the environments whose live plans use it rise, and each such plan's audit trail records the change."""

from typing import Any

from django.db import transaction
from django.db.models import Q

from ..domain.lifecycle import TERMINAL_STATES
from ..models import MigrationPlan, ModelEndpoint
from .audit import audit_record
from .config_cache import plan_config_bump

# What the audit trail shows of an endpoint: everything but timestamps (it holds no secret, only the
# name of the key's environment variable).
_AUDITED_FIELDS = ("name", "provider", "model", "base_url", "api_key_env", "input_price_per_mtok",
                   "output_price_per_mtok", "context_window", "requests_per_minute", "default_params")


def _audited(endpoint: ModelEndpoint) -> dict[str, Any]:
    values = {name: getattr(endpoint, name) for name in _AUDITED_FIELDS}
    values["input_price_per_mtok"] = float(values["input_price_per_mtok"])
    values["output_price_per_mtok"] = float(values["output_price_per_mtok"])
    return values


@transaction.atomic
def endpoint_create(*, actor: str, **fields: Any) -> ModelEndpoint:
    endpoint = ModelEndpoint.objects.create(**fields)
    audit_record(actor=actor, action="endpoint.created", after=_audited(endpoint))
    return endpoint


def endpoint_update(*, actor: str, endpoint: ModelEndpoint, **fields: Any) -> ModelEndpoint:
    with transaction.atomic():
        endpoint = ModelEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _audited(endpoint)
        for name, value in fields.items():
            setattr(endpoint, name, value)
        after = _audited(endpoint)
        if after == before:
            return endpoint
        endpoint.save()
        changed_before = {k: v for k, v in before.items() if after[k] != v}
        changed_after = {k: v for k, v in after.items() if before[k] != v}
        audit_record(actor=actor, action="endpoint.updated", before=changed_before, after=changed_after)
        plans = (
            MigrationPlan.objects.select_for_update()
            .filter(Q(baseline=endpoint) | Q(candidate=endpoint))
            .exclude(state__in=[state.value for state in TERMINAL_STATES])
            .order_by("pk")
        )
        for plan in plans:
            plan_config_bump(plan)
            plan.save(update_fields=["config_version", "updated_at"])
            audit_record(actor=actor, action="plan.endpoint_changed", plan=plan, before=changed_before,
                         after=changed_after)
    return endpoint
