"""Plans, steps, rules, endpoints, environments, SDK keys and the audit trail.

Models hold data and its invariants; every state change goes through migrations_app.services.
"""

import secrets

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from .domain.lifecycle import Position, State
from .domain.rules import Comparison, Metric, RuleAction, Severity


def _choices(enum_cls) -> list[tuple[str, str]]:
    return [(member.value, member.value.replace("_", " ")) for member in enum_cls]


STATE_CHOICES = _choices(State)


def new_salt() -> str:
    return secrets.token_hex(8)


class Environment(models.Model):
    """A deployment environment (prod, staging, …); SDK keys and plans belong to one."""

    name = models.SlugField(max_length=64, unique=True)
    # Rises on every change to any plan of this environment: the SDK config document's version and ETag.
    config_version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Google Gemini"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"


class ModelEndpoint(models.Model):
    """A model at a provider, with its prices. Holds the *name* of the API key's environment variable."""

    name = models.SlugField(max_length=100, unique=True)
    provider = models.CharField(max_length=32, choices=Provider.choices)
    model = models.CharField(max_length=200)
    base_url = models.URLField(max_length=500, null=True, blank=True)
    api_key_env = models.CharField(
        "API key environment variable", max_length=128,
        help_text="The name of the environment variable that holds the key, e.g. OPENAI_API_KEY.",
    )
    input_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, validators=[MinValueValidator(0)],
        help_text="US dollars per million input tokens.",
    )
    output_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, validators=[MinValueValidator(0)],
        help_text="US dollars per million output tokens.",
    )
    context_window = models.PositiveIntegerField(default=8192)
    default_params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}:{self.model})"


class MigrationPlan(models.Model):
    key = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="plans")
    baseline = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    candidate = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    baseline_prompt_adapter = models.CharField(max_length=100, blank=True, default="")
    candidate_prompt_adapter = models.CharField(max_length=100, blank=True, default="")

    state = models.CharField(max_length=20, choices=STATE_CHOICES, default=State.DRAFT.value, db_index=True)
    paused_from = models.CharField(max_length=20, choices=STATE_CHOICES, null=True, blank=True)
    candidate_percent = models.FloatField(
        default=0.0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    rollback = models.BooleanField(default=False)
    current_step_index = models.PositiveIntegerField(null=True, blank=True)
    shadow_sample_rate = models.FloatField(
        default=0.1, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    salt = models.CharField("stickiness salt", max_length=64, default=new_salt)
    # Rises with every change to this plan that clients may see.
    config_version = models.PositiveBigIntegerField(default=1)

    evaluation_duration_seconds = models.PositiveIntegerField(default=24 * 3600)
    shadow_duration_seconds = models.PositiveIntegerField(default=7 * 24 * 3600)
    final_hold_seconds = models.PositiveIntegerField(
        default=7 * 24 * 3600, help_text="How long 100 % is held before the plan moves to optimizing."
    )
    cleanup_after_seconds = models.PositiveIntegerField(
        default=21 * 24 * 3600, help_text="How long the baseline stays as fallback once optimizing."
    )

    state_changed_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(baseline=models.F("candidate")), name="plan_baseline_differs_from_candidate"
            ),
            models.CheckConstraint(
                condition=models.Q(candidate_percent__gte=0) & models.Q(candidate_percent__lte=100),
                name="plan_candidate_percent_in_range",
            ),
            models.CheckConstraint(
                condition=~models.Q(state=State.ROLLED_BACK.value) | models.Q(candidate_percent=0),
                name="plan_rolled_back_serves_no_candidate",
            ),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def position(self) -> Position:
        return Position(
            state=State(self.state),
            candidate_percent=self.candidate_percent,
            rollback=self.rollback,
            step_index=self.current_step_index,
            paused_from=State(self.paused_from) if self.paused_from else None,
        )


class RolloutStep(models.Model):
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    percent = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(100)])
    min_hold_seconds = models.PositiveIntegerField(default=0)
    min_samples = models.PositiveIntegerField("minimum samples per arm", default=0)
    needs_approval = models.BooleanField(default=False)

    class Meta:
        ordering = ["plan", "order"]
        constraints = [models.UniqueConstraint(fields=["plan", "order"], name="step_order_unique_per_plan")]

    def __str__(self) -> str:
        return f"{self.plan.key} step {self.order}: {self.percent:g} %"


class HealthRule(models.Model):
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="rules")
    metric = models.CharField(max_length=32, choices=_choices(Metric))
    comparison = models.CharField(max_length=16, choices=_choices(Comparison))
    threshold = models.FloatField()
    sustained_seconds = models.PositiveIntegerField(default=300)
    min_samples = models.PositiveIntegerField(default=200)
    action = models.CharField(max_length=16, choices=_choices(RuleAction))
    severity = models.CharField(max_length=16, choices=_choices(Severity), default=Severity.WARNING.value)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["plan", "id"]

    def __str__(self) -> str:
        return f"{self.action}: {self.metric} {self.comparison} {self.threshold:g}"


class AuditEvent(models.Model):
    """Who did what to which plan, with the values before and after. Written by services only."""

    actor = models.CharField(max_length=150)
    plan = models.ForeignKey(
        MigrationPlan, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_events"
    )
    plan_key = models.CharField(max_length=100, blank=True, db_index=True)
    action = models.CharField(max_length=64)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.plan_key}"


class SDKScope(models.TextChoices):
    CONFIG_READ = "config:read", "read the SDK config"
    EVENTS_WRITE = "events:write", "write events, feedback and shadow samples"


class SDKKey(models.Model):
    """An environment's SDK key. Only a SHA-256 of the secret is stored; the secret is shown once."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="sdk_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_secret = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "SDK key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.environment.name})"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


