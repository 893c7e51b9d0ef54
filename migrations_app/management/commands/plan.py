"""Plans as files, and on-call at a shell: `plan apply -f plan.yaml`, `plan status [KEY]`,
`plan rollback KEY --reason ...`."""

import getpass
import json
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from migrations_app.api.serializers import ModelEndpointSerializer, PlanInputSerializer
from migrations_app.domain.lifecycle import IllegalTransition
from migrations_app.models import MigrationPlan, ModelEndpoint, NotificationChannel
from migrations_app.services.endpoints import endpoint_create, endpoint_update
from migrations_app.services.notifications import ChannelConfigInvalid, channel_create, channel_update
from migrations_app.services.plans import PlanNotEditable, plan_act, plan_create, plan_summary, plan_update
from migrations_app.services.sdk_keys import environment_get_or_create

FILE_KEYS = {"environment", "endpoints", "plan", "channels"}


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _channel_snapshot(channel: NotificationChannel) -> tuple:
    return (channel.kind, channel.min_severity, channel.enabled, channel.config, channel.plan_id,
            channel.environment_id)


def _errors(where: str, errors) -> CommandError:
    return CommandError(f"{where}: {json.dumps(errors, default=str)}")


class Command(BaseCommand):
    help = "Apply a plan file, show plans, or roll a plan back."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        apply = commands.add_parser("apply", help="create or update endpoints, a plan and its channels")
        apply.add_argument("-f", "--file", required=True, help="a YAML or JSON plan file ('-' for stdin)")
        status = commands.add_parser("status", help="every plan, or one in detail")
        status.add_argument("key", nargs="?")
        rollback = commands.add_parser("rollback", help="roll a plan back now (pages on-call)")
        rollback.add_argument("key")
        rollback.add_argument("--reason", required=True)

    def handle(self, *args, command: str, **options):
        getattr(self, f"_{command}")(**options)

    # --- apply -------------------------------------------------------------------------------------------
    def _apply(self, *, file: str, **_):
        text = Path("/dev/stdin").read_text() if file == "-" else Path(file).read_text()
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise CommandError(f"{file} is not valid YAML or JSON: {error}") from error
        if not isinstance(document, dict) or "plan" not in document:
            raise CommandError(f"{file} must be a mapping with a `plan` (and optionally environment, endpoints, "
                               "channels)")
        unknown = set(document) - FILE_KEYS
        if unknown:
            raise CommandError(f"{file}: unknown top-level keys {sorted(unknown)}; expected {sorted(FILE_KEYS)}")
        with transaction.atomic():  # all or nothing
            changes = self._apply_document(document)
        for change in changes:
            self.stdout.write(change)
        self.stdout.write(f"applied {file}: {len(changes)} change(s)" if changes else f"{file}: no changes")

    def _apply_document(self, document: dict) -> list[str]:
        actor, changes = _actor(), []
        plan_fields = dict(document["plan"])
        environment_name = document.get("environment") or plan_fields.get("environment")
        if not environment_name:
            raise CommandError("name the environment (top-level `environment` or `plan.environment`)")
        environment = environment_get_or_create(name=environment_name, actor=actor)
        plan_fields["environment"] = environment.name

        for index, endpoint in enumerate(document.get("endpoints") or []):
            existing = ModelEndpoint.objects.filter(name=endpoint.get("name")).first()
            payload = ModelEndpointSerializer(existing, data=endpoint, partial=existing is not None)
            if not payload.is_valid():
                raise _errors(f"endpoints[{index}]", payload.errors)
            if existing is None:
                endpoint_create(actor=actor, **payload.validated_data)
                changes.append(f"endpoint {endpoint['name']}: created")
            else:
                updated = endpoint_update(actor=actor, endpoint=existing, **payload.validated_data)
                if updated.updated_at != existing.updated_at:
                    changes.append(f"endpoint {endpoint['name']}: updated")

        plan = MigrationPlan.objects.filter(key=plan_fields.get("key")).first()
        payload = PlanInputSerializer(plan, data=plan_fields, partial=plan is not None)
        if not payload.is_valid():
            raise _errors("plan", payload.errors)
        fields = dict(payload.validated_data)
        if plan is None:
            plan = plan_create(actor=actor, **fields)
            changes.append(f"plan {plan.key}: created ({plan.state})")
        else:
            for name in ("key", "environment"):
                fields.pop(name, None)
            before = plan_summary(plan)
            try:
                plan = plan_update(actor=actor, plan=plan, reason="plan apply", **fields)
            except PlanNotEditable as error:
                raise CommandError(f"plan {plan.key}: {error}") from error
            if plan_summary(plan) != before:
                changes.append(f"plan {plan.key}: updated")

        for index, channel in enumerate(document.get("channels") or []):
            fields = dict(channel)
            # A channel in a plan file belongs to that plan unless it names an environment.
            if "environment" in fields:
                fields["environment"] = environment_get_or_create(name=fields["environment"], actor=actor)
            else:
                fields["plan"] = plan
            existing = NotificationChannel.objects.filter(name=fields.get("name")).first()
            try:
                if existing is None:
                    channel_create(actor=actor, **fields)
                    changes.append(f"channel {fields['name']}: created")
                    continue
                before = _channel_snapshot(existing)
                fields.pop("name")
                if _channel_snapshot(channel_update(actor=actor, channel=existing, **fields)) != before:
                    changes.append(f"channel {existing.name}: updated")
            except (ChannelConfigInvalid, TypeError) as error:
                raise CommandError(f"channels[{index}]: {error}") from error
        return changes

    # --- status ------------------------------------------------------------------------------------------
    def _status(self, *, key: str | None, **_):
        from migrations_app.services.rollout import plan_decision

        if key is None:
            plans = MigrationPlan.objects.select_related("environment").order_by("environment__name", "key")
            self.stdout.write(f"{'PLAN':24} {'ENVIRONMENT':12} {'STATE':12} {'CANDIDATE %':>11} ROLLBACK")
            for plan in plans:
                self.stdout.write(f"{plan.key:24} {plan.environment.name:12} {plan.state:12} "
                                  f"{plan.candidate_percent:>11g} {'yes' if plan.rollback else 'no'}")
            return
        plan = MigrationPlan.objects.filter(key=key).first()
        if plan is None:
            raise CommandError(f"no plan {key!r}")
        now = timezone.now()
        self.stdout.write(f"{plan.key} ({plan.environment.name}): {plan.baseline.name} → {plan.candidate.name}")
        self.stdout.write(f"  state {plan.state}, candidate {plan.candidate_percent:g} %, "
                          f"rollback {'set' if plan.rollback else 'clear'}, config version {plan.config_version}")
        if plan.state in ("evaluating", "shadowing", "rolling_out", "optimizing"):
            self.stdout.write(f"  scheduler: {plan_decision(plan=plan, now=now).reason}")
        for rule in plan.rules.select_related("status").order_by("id"):
            status = getattr(rule, "status", None)
            self.stdout.write(f"  rule {rule}: {status.summary if status else 'not checked yet'}")
        for alert in plan.alerts.filter(state="firing"):
            self.stdout.write(f"  FIRING {alert.name} ({alert.severity}): {alert.summary}")

    # --- rollback ----------------------------------------------------------------------------------------
    def _rollback(self, *, key: str, reason: str, **_):
        if not MigrationPlan.objects.filter(key=key).exists():
            raise CommandError(f"no plan {key!r}")
        try:
            plan = plan_act(actor=_actor(), plan_key=key, action="rollback", reason=reason)
        except IllegalTransition as error:
            raise CommandError(f"{key}: {error.why}") from error
        self.stdout.write(f"{plan.key}: rolled back (candidate {plan.candidate_percent:g} %, rollback flag set)")
