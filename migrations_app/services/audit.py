from ..models import AuditEvent, MigrationPlan


def audit_record(*, actor: str, action: str, plan: MigrationPlan | None = None, before: dict | None = None,
                 after: dict | None = None, reason: str = "") -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor, plan=plan, plan_key=plan.key if plan else "", action=action,
        before=before or {}, after=after or {}, reason=reason,
    )
