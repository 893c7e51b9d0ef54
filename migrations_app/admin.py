"""The ops UI. Every write goes through a service (audit trail, config versions, cache); the admin only
collects and validates input. Plans change state only through lifecycle buttons that call plan_act."""

import json
from dataclasses import asdict
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import construct_change_message, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import models
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_http_methods

from . import dashboard
from .domain.judging import judge_settings_problems
from .domain.lifecycle import TERMINAL_STATES, Action, IllegalTransition, State, allowed_actions
from .domain.notifications import channel_config_problems, destination, mask
from .forms import (
    HealthRuleForm,
    MigrationPlanForm,
    ModelEndpointForm,
    ReasonForm,
    RolloutStepForm,
    RolloutStepFormSet,
    SDKKeyCreateForm,
)
from .models import (
    Alert,
    AuditEvent,
    ChannelKind,
    Environment,
    HealthRule,
    MigrationPlan,
    ModelEndpoint,
    Notification,
    NotificationChannel,
    RolloutStep,
    SDKKey,
)
from .postmortem import postmortem_markdown
from .roles import OPERATE_PERMISSION
from .services.endpoints import endpoint_create, endpoint_update
from .services.notifications import ChannelConfigInvalid, channel_create, channel_update
from .services.plans import (
    EDITABLE_FIELDS,
    QUALITY_FIELDS,
    PlanNotEditable,
    RuleSpec,
    StepSpec,
    default_rules,
    default_steps,
    plan_act,
    plan_create,
    plan_update,
)
from .services.sdk_keys import environment_get_or_create, sdk_key_create, sdk_key_revoke

# Drastic moves leave a written why in the audit trail; routine ones may.
REASON_REQUIRED = frozenset({Action.ROLLBACK, Action.ABORT, Action.PROMOTE})
AUDIT_TRAIL_ROWS = 50


def actor_of(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def adopt(obj: models.Model, saved: models.Model) -> None:
    """Copy a service's saved row into the admin's form instance: the admin goes on to log, message and
    redirect with the object it handed to save_model."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "…"


def audit_changes(event: AuditEvent) -> str:
    """`field: before → after` for each field that changed; a creation shows only that it happened."""
    if not event.before:
        return "created" if event.action.endswith(".created") else ", ".join(
            f"{name}: {_short(value)}" for name, value in event.after.items())
    names = [name for name in dict.fromkeys([*event.before, *event.after])
             if event.before.get(name, "—") != event.after.get(name, "—")]
    return "; ".join(
        f"{name}: {_short(event.before.get(name, '—'))} → {_short(event.after.get(name, '—'))}" for name in names
    )


class NoDeleteMixin:
    """Rows referenced by plans and the audit trail are never deleted from the admin (abort, revoke)."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- environments and endpoints ------------------------------------------------------------------------

@admin.register(Environment)
class EnvironmentAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ("name", "config_version", "created_at")
    search_fields = ("name",)
    fields = ("name", "config_version", "created_at")
    readonly_fields = ("config_version", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: Environment | None = None) -> bool:
        # SDK keys and plans hang off an environment's name; it is fixed once created.
        return False

    def save_model(self, request: HttpRequest, obj: Environment, form: ModelForm, change: bool) -> None:
        adopt(obj, environment_get_or_create(name=form.cleaned_data["name"], actor=actor_of(request)))


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(NoDeleteMixin, admin.ModelAdmin):
    form = ModelEndpointForm
    list_display = ("name", "provider", "model", "api_key_env", "input_price_per_mtok", "output_price_per_mtok",
                    "updated_at")
    list_filter = ("provider",)
    search_fields = ("name", "model")

    def save_model(self, request: HttpRequest, obj: ModelEndpoint, form: ModelForm, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in ModelEndpointForm.Meta.fields
                  if name in form.cleaned_data}
        if change:
            adopt(obj, endpoint_update(actor=actor_of(request), endpoint=obj, **fields))
        else:
            adopt(obj, endpoint_create(actor=actor_of(request), **fields))


# --- plans ---------------------------------------------------------------------------------------------

class _PlanChildInline(admin.TabularInline):
    """Steps and rules are edited inline and saved by the plan's service, never row by row."""

    extra = 0

    def get_extra(self, request: HttpRequest, obj: MigrationPlan | None = None, **kwargs: Any) -> int:
        # A new plan shows one prefilled row per playbook default (see MigrationPlanAdmin.get_formset_kwargs).
        return len(self.defaults_for_new_plan()) if obj is None else 0

    def defaults_for_new_plan(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    @staticmethod
    def editable(plan: MigrationPlan | None) -> bool:
        raise NotImplementedError

    def has_add_permission(self, request: HttpRequest, obj: MigrationPlan | None = None) -> bool:
        return self.editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: MigrationPlan | None = None) -> bool:
        return self.editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: MigrationPlan | None = None) -> bool:
        return self.editable(obj) and super().has_delete_permission(request, obj)


class RolloutStepInline(_PlanChildInline):
    model = RolloutStep
    form = RolloutStepForm
    formset = RolloutStepFormSet
    verbose_name_plural = "rollout steps (in order; percents rising, editable while draft)"

    def defaults_for_new_plan(self) -> list[dict[str, Any]]:
        return [asdict(step) for step in default_steps()]

    @staticmethod
    def editable(plan: MigrationPlan | None) -> bool:
        return plan is None or plan.state == State.DRAFT


class HealthRuleInline(_PlanChildInline):
    model = HealthRule
    form = HealthRuleForm
    formset = BaseInlineFormSet
    verbose_name_plural = "health rules"

    def defaults_for_new_plan(self) -> list[dict[str, Any]]:
        return [asdict(rule) for rule in default_rules()]

    @staticmethod
    def editable(plan: MigrationPlan | None) -> bool:
        return plan is None or plan.state not in TERMINAL_STATES


def _specs(formset: BaseInlineFormSet, spec: type[StepSpec] | type[RuleSpec]) -> list[Any]:
    """The formset's rows as service specs, in order, without deleted rows and blank extra rows."""
    names = [name for name in spec.__dataclass_fields__]
    return [spec(**{name: row[name] for name in names})
            for row in formset.cleaned_data if row and not row.get("DELETE")]


class PlanDashboardMixin:
    """The plan dashboard (dashboard/) and the JSON it refreshes from (dashboard/data.json): reads only, for
    anyone who may view the plan. The page embeds the first data, so it draws before its first poll."""

    dashboard_template = "admin/migrations_app/migrationplan/dashboard.html"
    dashboard_windows = ((1, "1 h"), (6, "6 h"), (24, "24 h"), (24 * 7, "7 d"))

    def get_urls(self) -> list:
        return [
            path("<path:object_id>/dashboard/", self.admin_site.admin_view(self.dashboard_view),
                 name="migrations_app_migrationplan_dashboard"),
            path("<path:object_id>/dashboard/data.json", self.admin_site.admin_view(self.dashboard_data_view),
                 name="migrations_app_migrationplan_dashboard_data"),
            path("<path:object_id>/postmortem.md", self.admin_site.admin_view(self.postmortem_view),
                 name="migrations_app_migrationplan_postmortem"),
            *super().get_urls(),
        ]

    @admin.display(description="dashboard")
    def dashboard_link(self, plan: MigrationPlan) -> str:
        return format_html('<a href="{}" class="cutover-dashboard-link">Dashboard</a>',
                           reverse("admin:migrations_app_migrationplan_dashboard", args=[plan.pk]))

    def render_change_form(self, request: HttpRequest, context: dict, add: bool = False, change: bool = False,
                           form_url: str = "", obj: MigrationPlan | None = None) -> HttpResponse:
        if obj is not None:
            context["dashboard_url"] = reverse("admin:migrations_app_migrationplan_dashboard", args=[obj.pk])
            context["postmortem_url"] = reverse("admin:migrations_app_migrationplan_postmortem", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    def postmortem_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The plan's postmortem (Markdown), as the API serves it, downloadable from the plan page."""
        plan = self._dashboard_plan(request, object_id)
        response = HttpResponse(postmortem_markdown(plan=plan), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="postmortem-{plan.key}.md"'
        return response

    def _dashboard_plan(self, request: HttpRequest, object_id: str) -> MigrationPlan:
        plan = self.get_object(request, unquote(object_id))
        if plan is None:
            raise Http404(f"no plan {object_id!r}")
        if not self.has_view_permission(request, plan):
            raise PermissionDenied
        return plan

    @staticmethod
    def _dashboard_hours(request: HttpRequest) -> float:
        try:
            hours = float(request.GET.get("hours", dashboard.DEFAULT_WINDOW_HOURS))
        except ValueError:
            return dashboard.DEFAULT_WINDOW_HOURS
        return hours if hours > 0 else dashboard.DEFAULT_WINDOW_HOURS

    def _dashboard_payload(self, plan: MigrationPlan, hours: float) -> dict:
        payload = dashboard.dashboard_data(plan=plan, now=timezone.now(), hours=hours)
        payload["audit"] = [
            {"at": int(event.created_at.timestamp()), "actor": event.actor, "action": event.action,
             "changes": audit_changes(event), "reason": event.reason}
            for event in dashboard.recent_audit_events(plan=plan)
        ]
        return payload

    def dashboard_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plan = self._dashboard_plan(request, object_id)
        hours = self._dashboard_hours(request)
        data_url = reverse("admin:migrations_app_migrationplan_dashboard_data", args=[plan.pk])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Dashboard: {plan.key}",
            "opts": self.opts,
            "plan": plan,
            "data": self._dashboard_payload(plan, hours),
            "data_url": f"{data_url}?hours={hours:g}",
            "hours": hours,
            "windows": self.dashboard_windows,
            "change_url": reverse("admin:migrations_app_migrationplan_change", args=[plan.pk]),
            "alerts_url": reverse("admin:migrations_app_alert_changelist") + f"?plan__id__exact={plan.pk}",
            "audit_url": reverse("admin:migrations_app_auditevent_changelist") + f"?plan_key={plan.key}",
            "shadow_url": reverse("admin:migrations_app_shadow_page", args=[plan.key]),
        }
        response = TemplateResponse(request, self.dashboard_template, context)
        add_never_cache_headers(response)
        return response

    def dashboard_data_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plan = self._dashboard_plan(request, object_id)
        response = JsonResponse(self._dashboard_payload(plan, self._dashboard_hours(request)))
        add_never_cache_headers(response)
        return response


@admin.register(MigrationPlan)
class MigrationPlanAdmin(NoDeleteMixin, PlanDashboardMixin, admin.ModelAdmin):
    form = MigrationPlanForm
    inlines = (RolloutStepInline, HealthRuleInline)
    list_display = ("key", "environment", "baseline", "candidate", "state", "candidate_percent", "rollback",
                    "updated_at", "dashboard_link")
    list_filter = ("state", "environment")
    list_select_related = ("environment", "baseline", "candidate")
    search_fields = ("key",)
    status_fields = ("state", "paused_from", "candidate_percent", "rollback", "current_step", "config_version",
                     "salt", "state_changed_at", "created_by", "created_at", "updated_at")
    change_form_template = "admin/migrations_app/migrationplan/change_form.html"

    # --- the form ---------------------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: MigrationPlan | None = None) -> list[tuple[Any, dict]]:
        fieldsets: list[tuple[Any, dict]] = [
            (None, {"fields": ("key", "description", "environment")}),
            ("Endpoints", {"fields": ("baseline", "baseline_prompt_adapter", "candidate",
                                      "candidate_prompt_adapter")}),
            ("Schedule", {"fields": ("shadow_sample_rate", "evaluation_duration_seconds",
                                     "shadow_duration_seconds", "final_hold_seconds", "cleanup_after_seconds")}),
            ("Evaluation and shadow", {"fields": QUALITY_FIELDS,
                                       "description": "Success criteria, the shadow gate and its comparator "
                                                      "(docs/evaluation-and-shadow.md)."}),
        ]
        if obj is not None:
            fieldsets.insert(0, ("Status (changed only by the lifecycle buttons)", {"fields": self.status_fields}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: MigrationPlan | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # Clients route by key within the environment; endpoints are the plan's identity once it runs.
        fixed = ("key", "environment") if obj.state == State.DRAFT else ("key", "environment", "baseline",
                                                                          "candidate")
        return self.status_fields + fixed

    @admin.display(description="current step")
    def current_step(self, plan: MigrationPlan) -> str:
        if plan.current_step_index is None:
            return "—"
        steps = list(plan.steps.all())
        percent = steps[plan.current_step_index].percent if plan.current_step_index < len(steps) else None
        return f"{plan.current_step_index + 1} of {len(steps)}" + (f" ({percent:g} %)" if percent else "")

    def has_change_permission(self, request: HttpRequest, obj: MigrationPlan | None = None) -> bool:
        # A completed or aborted plan is history: view only.
        if obj is not None and obj.state in TERMINAL_STATES:
            return False
        return super().has_change_permission(request, obj)

    def get_formset_kwargs(self, request: HttpRequest, obj: MigrationPlan, inline: Any, prefix: str) -> dict:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        # Prefill a new plan's rows with the playbook's defaults. Only when displaying: on submission the
        # rows are compared with blank forms, so defaults sent back unchanged still count as rows to save.
        if request.method == "GET" and obj._state.adding:
            kwargs["initial"] = inline.defaults_for_new_plan()
        return kwargs

    # --- saving through the services -------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: MigrationPlan, form: ModelForm, change: bool) -> None:
        """Nothing here: the plan, its steps and its rules are written by one service call in
        save_related, where the inline formsets are at hand."""

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: list, change: bool) -> None:
        plan: MigrationPlan = form.instance
        steps = rules = None
        for formset in formsets:
            # Replace steps or rules only when they were edited: rules replaced needlessly get new ids.
            if not formset.has_changed() and change:
                continue
            if formset.model is RolloutStep and RolloutStepInline.editable(plan if change else None):
                steps = _specs(formset, StepSpec)
            elif formset.model is HealthRule:
                rules = _specs(formset, RuleSpec)
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.cleaned_data}
        if change:
            fields |= {name: form.cleaned_data[name] for name in ("baseline", "candidate")
                       if name in form.cleaned_data}
            adopt(plan, plan_update(actor=actor_of(request), plan=plan, steps=steps, rules=rules, **fields))
        else:
            adopt(plan, plan_create(
                actor=actor_of(request), key=form.cleaned_data["key"], environment=form.cleaned_data["environment"],
                baseline=form.cleaned_data["baseline"], candidate=form.cleaned_data["candidate"],
                steps=steps, rules=rules, **fields,
            ))

    def construct_change_message(self, request: HttpRequest, form: ModelForm, formsets: list,
                                 add: bool = False) -> list[dict]:
        # The formsets were read, not saved, so they carry no saved-object lists; the audit trail holds
        # the detail anyway.
        return construct_change_message(form, [], add)

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict | None = None) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PlanNotEditable as error:  # the plan left draft between the page load and the save
            self.message_user(request, f"Not saved: {error}.", messages.ERROR)
            return HttpResponseRedirect(request.path)

    def render_change_form(self, request: HttpRequest, context: dict, add: bool = False, change: bool = False,
                           form_url: str = "", obj: MigrationPlan | None = None) -> HttpResponse:
        if obj is not None:
            context["lifecycle_actions"] = [
                {"name": action.value, "reason_required": action in REASON_REQUIRED,
                 "url": reverse("admin:migrations_app_migrationplan_action", args=[obj.pk, action.value])}
                for action in self._allowed(obj)
            ] if self.has_lifecycle_permission(request) else []
            context["audit_trail"] = [
                {"event": event, "changes": audit_changes(event)}
                for event in obj.audit_events.order_by("-created_at", "-id")[:AUDIT_TRAIL_ROWS]
            ]
            context["audit_trail_url"] = (
                reverse("admin:migrations_app_auditevent_changelist") + f"?plan_key={obj.key}")
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- lifecycle buttons ------------------------------------------------------------------------------

    @staticmethod
    def _allowed(plan: MigrationPlan) -> list[Action]:
        return allowed_actions(plan.position, [step.percent for step in plan.steps.all()])

    def has_lifecycle_permission(self, request: HttpRequest) -> bool:
        # Operators and admins (migrations_app.roles); editing a plan is not enough to steer its traffic.
        return request.user.has_perm(OPERATE_PERMISSION)

    def get_urls(self) -> list:
        return [
            path("<path:object_id>/action/<str:action>/",
                 self.admin_site.admin_view(self.lifecycle_action_view),  # login, staff and CSRF checks
                 name="migrations_app_migrationplan_action"),
            *super().get_urls(),
        ]

    @staticmethod
    def _state_line(plan: MigrationPlan) -> str:
        return f"{plan.state.replace('_', ' ')}, candidate at {plan.candidate_percent:g} %"

    def lifecycle_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        return require_http_methods(["GET", "POST"])(self._lifecycle_action)(request, object_id, action)

    def _lifecycle_action(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        if not self.has_lifecycle_permission(request):
            raise PermissionDenied
        plan = self.get_object(request, unquote(object_id))
        if plan is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        try:
            chosen = Action(action)
        except ValueError as error:
            raise Http404(f"no lifecycle action {action!r}") from error
        change_url = reverse("admin:migrations_app_migrationplan_change", args=[plan.pk])
        form = ReasonForm(request.POST if request.method == "POST" else None, required=chosen in REASON_REQUIRED)
        if request.method == "POST" and form.is_valid():
            try:
                plan = plan_act(actor=actor_of(request), plan_key=plan.key, action=chosen,
                                reason=form.cleaned_data["reason"])
            except IllegalTransition as error:  # another actor (or the scheduler) moved the plan first
                plan.refresh_from_db()
                self.message_user(request, f"Could not {chosen.value} {plan.key}: {error.why}. "
                                           f"It is now {self._state_line(plan)}.", messages.ERROR)
            else:
                self.message_user(request, f"{plan.key}: {chosen.value} done; now {self._state_line(plan)}.",
                                  messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        if request.method == "GET" and chosen not in self._allowed(plan):
            self.message_user(request, f"Cannot {chosen.value} {plan.key}: it is {self._state_line(plan)}.",
                              messages.ERROR)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{chosen.value.capitalize()} {plan.key}",
            "opts": self.opts,
            "plan": plan,
            "state_line": self._state_line(plan),
            "action": chosen.value,
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/migrations_app/migrationplan/action_confirmation.html", context)


# --- audit trail ---------------------------------------------------------------------------------------

@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Written by services only: nothing here adds, changes or deletes an event."""

    list_display = ("created_at", "actor", "plan_key", "action", "changes", "reason")
    list_filter = ("action",)
    search_fields = ("plan_key", "actor")
    date_hierarchy = "created_at"
    fields = ("created_at", "actor", "plan_key", "action", "before", "after", "reason")

    @admin.display(description="before → after")
    def changes(self, event: AuditEvent) -> str:
        return audit_changes(event)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


# --- SDK keys ------------------------------------------------------------------------------------------

@admin.register(SDKKey)
class SDKKeyAdmin(NoDeleteMixin, admin.ModelAdmin):
    """Created by sdk_key_create, which returns the secret once; only its SHA-256 is stored and it is
    never displayed. Existing keys cannot change: revoke and create a new one."""

    form = SDKKeyCreateForm
    list_display = ("prefix", "name", "environment", "scope_list", "revoked", "created_by", "created_at")
    list_filter = ("environment", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("environment",)
    search_fields = ("prefix", "name")
    actions = ("revoke_keys",)
    change_form_template = "admin/migrations_app/sdkkey/change_form.html"
    shown_fields = ("prefix", "environment", "name", "scope_list", "revoked_at", "created_by", "created_at")

    def get_fields(self, request: HttpRequest, obj: SDKKey | None = None) -> tuple[str, ...]:
        return ("environment", "name", "scopes") if obj is None else self.shown_fields

    def get_readonly_fields(self, request: HttpRequest, obj: SDKKey | None = None) -> tuple[str, ...]:
        return () if obj is None else self.shown_fields

    def get_form(self, request: HttpRequest, obj: SDKKey | None = None, change: bool = False, **kwargs: Any):
        if obj is not None:  # the view-only page shows read-only values; it needs no fields of its own
            kwargs["form"] = ModelForm
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="scopes")
    def scope_list(self, key: SDKKey) -> str:
        return ", ".join(key.scopes)

    @admin.display(description="revoked", boolean=True)
    def revoked(self, key: SDKKey) -> bool:
        return key.revoked

    def has_change_permission(self, request: HttpRequest, obj: SDKKey | None = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def save_model(self, request: HttpRequest, obj: SDKKey, form: ModelForm, change: bool) -> None:
        key, secret = sdk_key_create(actor=actor_of(request), environment=form.cleaned_data["environment"],
                                     scopes=form.cleaned_data["scopes"], name=form.cleaned_data["name"])
        adopt(obj, key)
        obj._secret_shown_once = secret  # type: ignore[attr-defined]  # read by response_add, never stored

    def response_add(self, request: HttpRequest, obj: SDKKey, post_url_continue: str | None = None) -> HttpResponse:
        # The secret goes straight into this response: not into a message or the session, where it would
        # be stored server- or client-side; the page is marked uncacheable.
        context = {
            **self.admin_site.each_context(request),
            "title": f"SDK key {obj.prefix}… created",
            "opts": self.opts,
            "key": obj,
            "secret": obj._secret_shown_once,  # type: ignore[attr-defined]
        }
        response = TemplateResponse(request, "admin/migrations_app/sdkkey/secret_once.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected SDK keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[SDKKey]) -> None:
        live = [key for key in queryset if not key.revoked]
        for key in live:
            sdk_key_revoke(actor=actor_of(request), key=key, reason="revoked from the admin key list")
        self.message_user(request, f"Revoked {len(live)} SDK key(s).", messages.SUCCESS)

    def get_urls(self) -> list:
        return [
            path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view),
                 name="migrations_app_sdkkey_revoke"),
            *super().get_urls(),
        ]

    def render_change_form(self, request: HttpRequest, context: dict, add: bool = False, change: bool = False,
                           form_url: str = "", obj: SDKKey | None = None) -> HttpResponse:
        if obj is not None and not obj.revoked and self.has_revoke_permission(request):
            context["revoke_url"] = reverse("admin:migrations_app_sdkkey_revoke", args=[obj.pk])
        return super().render_change_form(request, context, add, change, form_url, obj)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return require_http_methods(["GET", "POST"])(self._revoke)(request, object_id)

    def _revoke(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        key = self.get_object(request, unquote(object_id))
        if key is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = reverse("admin:migrations_app_sdkkey_change", args=[key.pk])
        form = ReasonForm(request.POST if request.method == "POST" else None, required=False)
        if request.method == "POST" and form.is_valid():
            sdk_key_revoke(actor=actor_of(request), key=key, reason=form.cleaned_data["reason"])
            self.message_user(request, f"SDK key {key.prefix}… revoked.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Revoke SDK key {key.prefix}…",
            "opts": self.opts,
            "key": key,
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/migrations_app/sdkkey/revoke_confirmation.html", context)


# --- alert notifications -------------------------------------------------------------------------------

class NotificationChannelForm(forms.ModelForm):
    """A channel's settings as separate fields, checked per kind. Credentials (the Slack URL, PagerDuty's
    routing key, the webhook's signing secret) are write-only: never rendered back, and left blank they
    keep their current value."""

    slack_url = forms.CharField(
        label="Slack webhook URL", required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="Slack: the incoming webhook URL (https://hooks.slack.com/services/…). It is the credential: "
                  "it is never shown again; leave blank to keep the current one.")
    routing_key = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="PagerDuty: the integration (routing) key of an Events API v2 service; leave blank to keep.")
    events_url = forms.CharField(
        label="PagerDuty events URL", required=False, strip=True,
        help_text="PagerDuty: optional; defaults to https://events.pagerduty.com/v2/enqueue.")
    webhook_url = forms.CharField(label="Webhook URL", required=False, strip=True,
                                  help_text="Generic webhook: where signed JSON is POSTed.")
    signing_secret = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="Generic webhook: the HMAC key receivers verify X-Cutover-Signature with (16+ characters, e.g. "
                  "python -c \"import secrets; print(secrets.token_hex(32))\"); leave blank to keep.")
    to = forms.CharField(label="Email to", required=False,
                         help_text="Email: recipients, separated by commas.")

    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "environment", "plan", "min_severity", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = (self.instance.config or {}) if self.instance.pk else {}
        kind = self.instance.kind if self.instance.pk else None
        if kind == ChannelKind.SLACK and config.get("url"):
            self.fields["slack_url"].help_text += f" Current: {mask(config['url'])}"
        if kind == ChannelKind.PAGERDUTY:
            self.initial.setdefault("events_url", config.get("events_url", ""))
            if config.get("routing_key"):
                self.fields["routing_key"].help_text += f" Current: {mask(config['routing_key'])}"
        if kind == ChannelKind.WEBHOOK:
            self.initial.setdefault("webhook_url", config.get("url", ""))
            if config.get("signing_secret"):
                self.fields["signing_secret"].help_text += f" Current: {mask(config['signing_secret'])}"
        if kind == ChannelKind.EMAIL:
            self.initial.setdefault("to", ", ".join(config.get("to", [])))

    def _kept(self, name: str, setting: str, kind: str) -> str:
        """A write-only field's value, or the current one when left blank on the same kind of channel."""
        value = self.cleaned_data.get(name) or ""
        if not value and self.instance.pk and self.instance.kind == kind:
            value = (self.instance.config or {}).get(setting, "")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if (cleaned.get("environment") is None) == (cleaned.get("plan") is None):
            self.add_error(None, "Attach the channel to an environment (all its plans) or to one plan, not both.")
        config: dict[str, Any] = {}
        field_of = {"url": "slack_url" if kind == ChannelKind.SLACK else "webhook_url"}
        if kind == ChannelKind.SLACK:
            config["url"] = self._kept("slack_url", "url", kind)
        elif kind == ChannelKind.PAGERDUTY:
            config["routing_key"] = self._kept("routing_key", "routing_key", kind)
            if cleaned.get("events_url"):
                config["events_url"] = cleaned["events_url"]
        elif kind == ChannelKind.WEBHOOK:
            config["url"] = cleaned.get("webhook_url") or ""
            config["signing_secret"] = self._kept("signing_secret", "signing_secret", kind)
        elif kind == ChannelKind.EMAIL:
            addresses = [a.strip() for a in (cleaned.get("to") or "").split(",") if a.strip()]
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    self.add_error("to", f"{address} is not an email address")
            config["to"] = addresses
        if kind:
            for setting, problem in channel_config_problems(kind, config).items():
                self.add_error(field_of.get(setting, setting) if setting else None, problem)
        cleaned["config"] = config
        # Never re-render what may be a credential (as the endpoint form does with API keys).
        self.data = self.data.copy()
        for name in ("slack_url", "routing_key", "signing_secret"):
            self.data.pop(self.add_prefix(name), None)
        return cleaned


@admin.register(NotificationChannel)
class NotificationChannelAdmin(NoDeleteMixin, admin.ModelAdmin):
    """Where alerts go. Disable a channel rather than delete it: its notifications are the delivery record."""

    form = NotificationChannelForm
    list_display = ("name", "kind", "attached_to", "min_severity", "enabled", "shown_destination", "created_at")
    list_filter = ("kind", "enabled", "min_severity", "environment")
    list_select_related = ("environment", "plan")
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "kind", "environment", "plan", "min_severity", "enabled")}),
        ("Slack", {"fields": ("slack_url",)}),
        ("PagerDuty", {"fields": ("routing_key", "events_url")}),
        ("Generic webhook", {"fields": ("webhook_url", "signing_secret")}),
        ("Email", {"fields": ("to",)}),
    )

    @admin.display(description="attached to")
    def attached_to(self, channel: NotificationChannel) -> str:
        return f"plan {channel.plan.key}" if channel.plan else f"environment {channel.environment}"

    @admin.display(description="destination")
    def shown_destination(self, channel: NotificationChannel) -> str:
        return destination(channel.kind, channel.config or {})

    def save_model(self, request: HttpRequest, obj: NotificationChannel, form: ModelForm, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in NotificationChannelForm.Meta.fields}
        fields["config"] = form.cleaned_data["config"]
        try:
            if change:
                adopt(obj, channel_update(actor=actor_of(request), channel=obj, **fields))
            else:
                adopt(obj, channel_create(actor=actor_of(request), **fields))
        except ChannelConfigInvalid as error:  # the form checks the same rules; a race could still land here
            raise ValidationError(str(error)) from error


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Written by services only (the health checker, the notification task)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NotificationInline(admin.TabularInline):
    model = Notification
    extra = 0
    fields = ("channel", "event", "status", "attempts", "sent_at", "last_error", "created_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(_ReadOnlyAdmin):
    list_display = ("first_seen", "name", "plan", "severity", "action", "state", "summary", "last_seen",
                    "resolved_at")
    list_filter = ("state", "severity", "action", "name", "plan__environment")
    list_select_related = ("plan",)
    search_fields = ("name", "summary", "dedup_key", "plan__key")
    date_hierarchy = "first_seen"
    fields = ("plan", "rule", "name", "severity", "action", "state", "dedup_key", "summary", "metric",
              "observed", "baseline", "evidence_table", "first_seen", "last_seen", "resolved_at")
    readonly_fields = fields
    inlines = (NotificationInline,)

    @admin.display(description="evidence")
    def evidence_table(self, alert: Alert) -> str:
        rows = sorted((alert.evidence or {}).items())
        return format_html_join("\n", "<div><b>{}</b>: {}</div>", ((k, json.dumps(v, default=str)) for k, v in rows))


@admin.register(Notification)
class NotificationAdmin(_ReadOnlyAdmin):
    """The delivery record. Channels show by name and kind; their settings (and credentials) stay on the
    channel's page, masked."""

    list_display = ("created_at", "alert", "channel", "event", "status", "attempts", "sent_at", "last_error")
    list_filter = ("status", "event", "channel__kind")
    list_select_related = ("alert__plan", "channel")
    search_fields = ("alert__name", "alert__dedup_key", "channel__name")
    fields = ("alert", "channel", "channel_destination", "event", "status", "attempts", "last_error",
              "created_at", "sent_at")
    readonly_fields = fields

    @admin.display(description="destination")
    def channel_destination(self, notification: Notification) -> str:
        channel = notification.channel
        return destination(channel.kind, channel.config or {})


# --- evaluation datasets and runs, shadow comparisons ---------------------------------------------------------

import difflib  # noqa: E402

from django.utils.html import escape  # noqa: E402
from django.utils.safestring import mark_safe  # noqa: E402

from . import selectors as _selectors  # noqa: E402
from .models import (  # noqa: E402
    EvaluationCase,
    EvaluationDataset,
    EvaluationRun,
    EvaluationSchedule,
    ShadowComparison,
)
from .services import evaluation as _evaluation  # noqa: E402


def word_diff(reference: str, candidate: str) -> tuple[str, str]:
    """Both texts as HTML with the words only one of them has marked (<del> in the baseline's, <ins> in the
    candidate's); everything escaped."""
    a, b = reference.split(" "), candidate.split(" ")
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        old, new = escape(" ".join(a[i1:i2])), escape(" ".join(b[j1:j2]))
        if op == "equal":
            left.append(old)
            right.append(new)
        else:
            if old:
                left.append(f'<del class="cutover-diff">{old}</del>')
            if new:
                right.append(f'<ins class="cutover-diff">{new}</ins>')
    return mark_safe(" ".join(left)), mark_safe(" ".join(right))  # noqa: S308 - built from escaped parts


class DatasetImportForm(forms.Form):
    name = forms.SlugField(max_length=100)
    format = forms.ChoiceField(choices=[("jsonl", "JSONL"), ("csv", "CSV")])
    file = forms.FileField(help_text="JSONL: one case a line ({id, input | messages, expected, json_schema, tags, "
                                     "segment, params}). CSV: a header row with the same names.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    replace = forms.BooleanField(required=False, help_text="Replace the dataset's cases instead of adding to them.")


class EvaluationCaseInline(admin.TabularInline):
    model = EvaluationCase
    fields = ("order", "external_id", "segment", "tags", "messages", "expected", "json_schema")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    show_change_link = False


@admin.register(EvaluationDataset)
class EvaluationDatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "case_count", "created_by", "created_at")
    readonly_fields = ("name", "created_by", "created_at")
    fields = ("name", "description", "created_by", "created_at")
    inlines = [EvaluationCaseInline]
    change_list_template = "admin/migrations_app/evaluationdataset/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_cases=models.Count("cases"))

    @admin.display(description="cases", ordering="_cases")
    def case_count(self, dataset) -> int:
        return dataset._cases

    def has_add_permission(self, request) -> bool:
        return False  # datasets come in through the import page

    def get_urls(self) -> list:
        return [path("import/", self.admin_site.admin_view(self.import_view),
                     name="migrations_app_evaluationdataset_import"), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = DatasetImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                dataset, count = _evaluation.dataset_import(
                    actor=actor_of(request), name=data["name"], content=data["file"].read(), fmt=data["format"],
                    description=data["description"], replace=data["replace"])
            except _evaluation.DatasetInvalid as invalid:
                for where, problems in list(invalid.errors.items())[:20]:
                    form.add_error(None, f"{where}: {json.dumps(problems)}")
            else:
                self.message_user(request, f"Imported {count} cases into {dataset.name}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:migrations_app_evaluationdataset_change",
                                                    args=[dataset.pk]))
        context = {**self.admin_site.each_context(request), "title": "Import evaluation cases", "opts": self.opts,
                   "form": form}
        return TemplateResponse(request, "admin/migrations_app/evaluationdataset/import.html", context)


class EvaluationRunForm(forms.ModelForm):
    class Meta:
        model = EvaluationRun
        fields = ("plan", "dataset", "baseline", "candidate", "repetitions", "comparator", "judge_endpoint",
                  "accuracy_threshold")
        widgets = {"comparator": forms.Select(choices=[(n, n) for n in ("normalised", "exact", "token_f1",
                                                                        "json_equal", "judge")])}
        help_texts = {"baseline": "Leave empty for the plan's.", "candidate": "Leave empty for the plan's.",
                      "judge_endpoint": "With the judge comparator; leave empty for the plan's judge.",
                      "accuracy_threshold": "0.8 by default; at most 0.5 with the judge (at least as good)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("baseline", "candidate", "plan", "accuracy_threshold"):
            if name in self.fields:
                self.fields[name].required = False

    def clean(self):
        data = super().clean()
        if not data.get("plan") and not (data.get("baseline") and data.get("candidate")):
            raise ValidationError("Choose a plan, or a baseline and a candidate.")
        if data.get("comparator") and not self.errors:
            plan, comparator = data.get("plan"), data["comparator"]
            judge = data.get("judge_endpoint") or (plan.judge_endpoint if plan and comparator == "judge" else None)
            threshold = data.get("accuracy_threshold")
            for name, problem in judge_settings_problems(
                    comparator=comparator, judge_model=judge.model if judge else None, threshold=threshold,
                    threshold_field="accuracy_threshold").items():
                self.add_error(name, problem)
        return data


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "plan", "dataset", "baseline", "candidate", "repetitions", "state", "passed",
                    "cost_total", "created_at")
    list_filter = ("state", "passed", "plan")
    form = EvaluationRunForm
    change_form_template = "admin/migrations_app/evaluationrun/report.html"

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("plan", "dataset", "baseline", "candidate", "repetitions", "comparator",
                                       "judge_endpoint", "accuracy_threshold", "state", "passed", "cost_total", "error",
                                       "created_by", "created_at", "started_at", "finished_at")

    def get_fields(self, request, obj=None):
        return EvaluationRunForm.Meta.fields if obj is None else self.get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        run = _evaluation.evaluation_run_create(
            actor=actor_of(request), dataset=data["dataset"], plan=data.get("plan"), baseline=data.get("baseline"),
            candidate=data.get("candidate"), repetitions=data["repetitions"], comparator=data["comparator"],
            accuracy_threshold=data.get("accuracy_threshold"), judge_endpoint=data.get("judge_endpoint"))
        obj.pk = run.pk

    def save_related(self, request, form, formsets, change):
        pass

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, unquote(object_id))
        report = (run.report or {}) if run else {}
        arms = report.get("arms", {})
        rows = []
        for label, key, fmt in (("accuracy (expected answers)", "accuracy", "pct"), ("agreement", "agreement", "pct"),
                                ("latency p50 (ms)", "latency_p50_ms", "num"),
                                ("latency p95 (ms)", "latency_p95_ms", "num"),
                                ("cost per request ($)", "cost_per_request", "usd"),
                                ("failure rate", "failure_rate", "pct"),
                                ("format compliance", "format_compliance", "pct")):
            variance = {arm: (arms.get(arm, {}).get("variance", {}).get(key) or {}).get("std") for arm in arms}
            rows.append({"label": label, "format": fmt,
                         "values": [(arms.get(arm, {}).get(key), variance.get(arm))
                                    for arm in ("baseline", "candidate")]})
        context = {"report": report, "figures": rows, "segments": report.get("per_segment", {}),
                   **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=context)


@admin.register(EvaluationSchedule)
class EvaluationScheduleAdmin(admin.ModelAdmin):
    list_display = ("name", "plan", "dataset", "baseline", "candidate", "interval_seconds", "enabled", "next_run_at")


@admin.register(ShadowComparison)
class ShadowComparisonAdmin(admin.ModelAdmin):
    """A read-only list; the per-plan shadow page (answers side by side) is at shadow/<plan key>/."""

    list_display = ("id", "plan", "segment", "score", "disagree", "noise_disagree", "candidate_latency_ms",
                    "candidate_cost", "created_at")
    list_filter = ("plan", "disagree", "segment")
    change_list_template = "admin/migrations_app/shadowcomparison/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self) -> list:
        return [path("shadow/<slug:plan_key>/", self.admin_site.admin_view(self.shadow_page),
                     name="migrations_app_shadow_page"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        plans = MigrationPlan.objects.filter(shadow_comparisons__isnull=False).distinct().order_by("key")
        return super().changelist_view(request, {"shadow_plans": plans, **(extra_context or {})})

    def shadow_page(self, request: HttpRequest, plan_key: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        plan = MigrationPlan.objects.filter(key=plan_key).first()
        if plan is None:
            raise Http404(f"no plan {plan_key!r}")
        segment = request.GET.get("segment") or None
        try:
            max_score = float(request.GET["max_score"]) if request.GET.get("max_score") else None
        except ValueError:
            max_score = None
        rows = _selectors.shadow_comparisons(plan=plan, segment=segment, max_score=max_score)[:100]
        comparisons = []
        for comparison in rows:
            baseline_html, candidate_html = word_diff(comparison.sample.baseline_text, comparison.candidate_text)
            comparisons.append({"c": comparison, "baseline_html": baseline_html, "candidate_html": candidate_html,
                                "prompt": comparison.sample.request["messages"][-1]["content"]})
        summary = _selectors.shadow_summary(plan=plan)
        segments = sorted(set(plan.shadow_comparisons.values_list("segment", flat=True)))
        context = {**self.admin_site.each_context(request), "title": f"Shadow comparisons: {plan.key}",
                   "opts": self.opts, "plan": plan, "summary": summary, "comparisons": comparisons,
                   "segments": segments, "segment": segment or "", "max_score": request.GET.get("max_score", ""),
                   "gate": _selectors.evaluation_gate(plan=plan),
                   "export_url": reverse("plan-comparisons-export", args=[plan.key])}
        return TemplateResponse(request, "admin/migrations_app/shadowcomparison/shadow_page.html", context)
