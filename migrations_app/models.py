"""Plans, steps, rules, endpoints, environments, SDK keys and the audit trail.

Models hold data and its invariants; every state change goes through migrations_app.services.
"""

import secrets

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from cutover.providers.types import EndpointSpec

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
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="The provider's limit for this model: the rollout never ramps past it."
    )
    default_params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}:{self.model})"

    def spec(self) -> EndpointSpec:
        """The provider layer's view of this endpoint (the key's variable name, never a key)."""
        return EndpointSpec(
            provider=self.provider, model=self.model, api_key_env=self.api_key_env, base_url=self.base_url,
            input_price_per_mtok=float(self.input_price_per_mtok),
            output_price_per_mtok=float(self.output_price_per_mtok), context_window=self.context_window,
            default_params=self.default_params, name=self.name,
        )


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

    # --- evaluation and shadow (docs/evaluation-and-shadow.md) ---
    requires_evaluation_pass = models.BooleanField(
        default=False, help_text="The plan may leave evaluation only after a passing evaluation run."
    )
    min_accuracy = models.FloatField(default=0.95, validators=[MinValueValidator(0), MaxValueValidator(1)])
    max_p95_ms = models.FloatField("max p95 latency (ms)", default=2000.0, validators=[MinValueValidator(0)])
    max_cost_per_request = models.FloatField(default=0.01, validators=[MinValueValidator(0)],
                                             help_text="US dollars per request.")
    shadow_comparator = models.CharField(
        max_length=32, default="token_f1",
        help_text="How a candidate answer is scored against the baseline's (token_f1, normalised, exact, json_equal, "
                  "or judge: the judge endpoint's model compares the two answers).",
    )
    # The LLM judge (shadow_comparator "judge"): a pinned model, asked pairwise with the answers in random order.
    judge_endpoint = models.ForeignKey(
        ModelEndpoint, on_delete=models.PROTECT, related_name="+", null=True, blank=True,
        help_text="The endpoint whose model judges when the comparator is judge; its model must be a pinned version.",
    )
    judge_rubric = models.TextField(
        blank=True, default="", help_text="What the judge weighs; blank for the default rubric.",
    )
    shadow_agreement_threshold = models.FloatField(
        default=0.6, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="A comparison scoring below this counts as a disagreement.",
    )
    shadow_max_disagreement = models.FloatField(
        default=0.05, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Largest share of prompts on which the candidate may disagree beyond the noise floor.",
    )
    shadow_min_comparisons = models.PositiveIntegerField(default=100)
    noise_floor_fraction = models.FloatField(
        default=0.2, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="Share of shadow samples also re-asked to the baseline, to measure its own variability.",
    )

    state_changed_at = models.DateTimeField(auto_now_add=True)
    # When the plan last entered a state or a rollout step: the start of the health checker's window, so
    # both arms are compared over the same time at the same split.
    step_started_at = models.DateTimeField(auto_now_add=True)
    # Counts those entries: rollups are kept per step, so a step's analysis never mixes in the minutes it
    # shares with the step before (a retry right after a rollback must not see the failures that caused it).
    step_serial = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        # The lifecycle actions (start, pause, …, rollback): operators and admins (migrations_app.roles).
        permissions = [("operate_migrationplan", "Can operate migration plan (lifecycle actions)")]
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
    monitor = models.CharField(
        max_length=16, blank=True, default="", choices=[("closely", "closely"), ("normal", "normal")],
        help_text="Blank: closely up to 25 % (alert rules roll back), normally above.",
    )
    deadline_seconds = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Pause the plan if the analysis is still inconclusive this long into the step. "
                  "Blank: twice the hold, and at least an hour past it.",
    )

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




class Arm(models.TextChoices):
    BASELINE = "baseline"
    CANDIDATE = "candidate"


class RequestEvent(models.Model):
    """One LLM call as an SDK or sidecar reported it. Kept for CUTOVER_EVENT_RETENTION_DAYS, then pruned;
    the health checker reads MetricRollup, never these."""

    id = models.UUIDField(primary_key=True)
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="+")
    arm = models.CharField(max_length=16, choices=Arm.choices)
    ts = models.DateTimeField()
    latency_ms = models.FloatField()
    ttft_ms = models.FloatField(null=True)
    outcome = models.CharField(max_length=16)
    error_type = models.CharField(max_length=64, null=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.FloatField(default=0)
    retries = models.PositiveIntegerField(default=0)
    fell_back = models.BooleanField(default=False)
    format_ok = models.BooleanField(null=True)
    refusal = models.BooleanField(default=False)
    segment = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["plan", "ts"], name="event_plan_ts")]

    def __str__(self) -> str:
        return f"{self.id} {self.arm} {self.outcome}"


class RequestFeedback(models.Model):
    """A user's verdict on one request: a satisfaction score and/or whether the task was completed."""

    request_id = models.UUIDField(unique=True)
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="+")
    arm = models.CharField(max_length=16, choices=Arm.choices)
    score = models.FloatField(null=True)
    task_completed = models.BooleanField(null=True)
    ts = models.DateTimeField()
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"feedback on {self.request_id}"


class MetricRollup(models.Model):
    """Sufficient statistics of one arm of one plan over one minute (see domain.statistics.ArmWindow).
    Updated at ingest under a row lock; summing rows gives any window without touching raw events."""

    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="rollups")
    # The plan's step_serial when the data arrived.
    step_serial = models.PositiveIntegerField(default=0)
    arm = models.CharField(max_length=16, choices=Arm.choices)
    minute = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    timeouts = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0)
    fallbacks = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    latency_hist = models.JSONField(default=list)
    ttft_hist = models.JSONField(default=list)
    cost_sum = models.FloatField(default=0)
    cost_sq_sum = models.FloatField(default=0)
    success_cost_sum = models.FloatField(default=0)
    format_checked = models.PositiveIntegerField(default=0)
    format_ok = models.PositiveIntegerField(default=0)
    refusals = models.PositiveIntegerField(default=0)
    feedback_count = models.PositiveIntegerField(default=0)
    satisfaction_sum = models.FloatField(default=0)
    satisfaction_sq_sum = models.FloatField(default=0)
    task_reported = models.PositiveIntegerField(default=0)
    task_completed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "step_serial", "arm", "minute"],
                                               name="rollup_unique_step_minute")]
        indexes = [models.Index(fields=["plan", "minute"], name="rollup_plan_minute")]

    def __str__(self) -> str:
        return f"{self.arm} {self.minute:%Y-%m-%d %H:%M}"


class RuleStatus(models.Model):
    """The health checker's memory of one rule: its latest verdict and since when it has been breached
    (for sustained-for windows) or clear (for hysteresis)."""

    rule = models.OneToOneField(HealthRule, on_delete=models.CASCADE, related_name="status")
    verdict = models.CharField(max_length=20, default="not_enough_data")
    summary = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    breached_since = models.DateTimeField(null=True, blank=True)
    clear_since = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.rule}: {self.verdict}"


class AlertState(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(models.Model):
    """A rule that fired (or a rollback), from first seen until resolved. At most one firing alert per
    plan and dedup key; notifications go out once per transition."""

    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="alerts")
    # The rule may be edited or removed later; the alert keeps what it was about.
    rule = models.ForeignKey(HealthRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    name = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=_choices(Severity))
    action = models.CharField(max_length=16, choices=_choices(RuleAction))
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.FIRING)
    dedup_key = models.CharField(max_length=200)
    summary = models.TextField()
    metric = models.CharField(max_length=32, blank=True)
    observed = models.FloatField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_seen", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dedup_key"], condition=models.Q(state="firing"),
                                    name="alert_one_firing_per_dedup_key"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.state} ({self.plan.key})"


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
    WEBHOOK = "webhook", "Generic webhook (HMAC-signed)"
    EMAIL = "email", "Email"


class NotificationChannel(models.Model):
    """Where alerts go: attached to an environment (all its plans) or to one plan."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, null=True, blank=True,
                                    related_name="channels")
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, null=True, blank=True, related_name="channels")
    # kind-specific settings: url (slack, webhook), events_url (pagerduty, for a proxy or a test sink),
    # routing_key (pagerduty), signing_secret (webhook), to (email: a list of addresses).
    config = models.JSONField(default=dict)
    min_severity = models.CharField(max_length=16, choices=_choices(Severity), default=Severity.WARNING.value)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(environment__isnull=False) | models.Q(plan__isnull=False),
                                   name="channel_attached_to_environment_or_plan"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Notification(models.Model):
    """One message about one alert transition to one channel; unique, so it is sent once."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16)  # trigger | resolve
    status = models.CharField(max_length=16, default="pending")  # pending | sent | failed
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel", "event"], name="notification_once")]

    def __str__(self) -> str:
        return f"{self.event} {self.alert.name} → {self.channel.name}: {self.status}"


# --- evaluation datasets and runs, shadow comparisons (services/evaluation.py, services/shadow.py) -------------


class EvaluationDataset(models.Model):
    """Cases to run both models on before any traffic moves (phase 1)."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EvaluationCase(models.Model):
    dataset = models.ForeignKey(EvaluationDataset, on_delete=models.CASCADE, related_name="cases")
    order = models.PositiveIntegerField()
    external_id = models.CharField(max_length=200, blank=True)
    messages = models.JSONField()  # [{"role": ..., "content": ...}]
    params = models.JSONField(default=dict, blank=True)  # system, max_tokens, temperature, response_format, stop
    expected = models.TextField(null=True, blank=True)
    json_schema = models.JSONField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    segment = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["dataset", "order"]
        constraints = [models.UniqueConstraint(fields=["dataset", "order"], name="case_order_unique_per_dataset")]

    def __str__(self) -> str:
        return f"{self.dataset.name}#{self.external_id or self.order}"


class EvaluationSchedule(models.Model):
    """Continuous benchmarking: a pinned baseline version against the current model, every `interval`."""

    name = models.SlugField(max_length=100, unique=True)
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="evaluation_schedules")
    dataset = models.ForeignKey(EvaluationDataset, on_delete=models.PROTECT, related_name="schedules")
    baseline = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+",
                                 help_text="The pinned version to compare against.")
    candidate = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+",
                                  help_text="The model in service now.")
    repetitions = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(20)])
    interval_seconds = models.PositiveIntegerField(default=7 * 24 * 3600)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class EvaluationRunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class EvaluationRun(models.Model):
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="evaluation_runs")
    schedule = models.ForeignKey(EvaluationSchedule, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="runs")
    dataset = models.ForeignKey(EvaluationDataset, on_delete=models.PROTECT, related_name="runs")
    baseline = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    candidate = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    baseline_prompt_adapter = models.CharField(max_length=100, blank=True, default="")
    candidate_prompt_adapter = models.CharField(max_length=100, blank=True, default="")
    repetitions = models.PositiveIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(20)])
    comparator = models.CharField(max_length=32, default="normalised")
    # With the judge comparator: the judge and its rubric, as the plan had them when the run was queued.
    judge_endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+", null=True,
                                       blank=True)
    judge_rubric = models.TextField(blank=True, default="")
    accuracy_threshold = models.FloatField(default=0.8)
    criteria = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=EvaluationRunState.choices, default=EvaluationRunState.QUEUED)
    report = models.JSONField(default=dict, blank=True)
    passed = models.BooleanField(null=True)
    cost_total = models.FloatField(default=0)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"evaluation {self.pk} of {self.dataset.name}: {self.state}"


class EvaluationResult(models.Model):
    """One call of one arm on one case in one repetition; its cost is evaluation spend, not live traffic."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="results")
    case = models.ForeignKey(EvaluationCase, on_delete=models.CASCADE, related_name="+")
    arm = models.CharField(max_length=16, choices=Arm.choices)
    repetition = models.PositiveIntegerField()
    ok = models.BooleanField()
    error_type = models.CharField(max_length=64, blank=True)
    text = models.TextField(blank=True)
    latency_ms = models.FloatField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost = models.FloatField(default=0)
    accuracy = models.FloatField(null=True, blank=True)
    agreement = models.FloatField(null=True, blank=True)
    format_ok = models.BooleanField(null=True)
    refusal = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    judge_cost = models.FloatField(default=0)  # the judge's calls scoring this answer (evaluation spend)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "case", "arm", "repetition"],
                                               name="evaluation_result_once")]

    def __str__(self) -> str:
        return f"run {self.run_id} case {self.case_id} {self.arm} #{self.repetition}"


class ShadowSample(models.Model):
    """A live request and the baseline's answer, mirrored by an SDK; the worker asks the candidate."""

    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="shadow_samples")
    request_id = models.UUIDField(unique=True)
    request = models.JSONField()  # {"messages": [...], "params": {...}}
    segment = models.CharField(max_length=100, blank=True)
    ts = models.DateTimeField()
    baseline_text = models.TextField(blank=True)
    baseline_latency_ms = models.FloatField(null=True)
    baseline_input_tokens = models.PositiveIntegerField(default=0)
    baseline_output_tokens = models.PositiveIntegerField(default=0)
    baseline_model = models.CharField(max_length=200, blank=True)
    baseline_cost = models.FloatField(default=0)  # the live call's cost, for the paired cost difference
    rerun_baseline = models.BooleanField(default=False)  # also re-ask the baseline (noise floor)
    state = models.CharField(max_length=16, default="pending")  # pending | done | failed
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["plan", "state"], name="shadow_sample_plan_state")]

    def __str__(self) -> str:
        return f"shadow {self.request_id}"


class ShadowComparison(models.Model):
    """The candidate's (and, on noise-floor samples, a second baseline's) answer to one shadow sample, scored.
    One per sample (a one-to-one key), so a task run twice stores it once. Its costs are shadow spend."""

    sample = models.OneToOneField(ShadowSample, on_delete=models.CASCADE, related_name="comparison")
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="shadow_comparisons")
    segment = models.CharField(max_length=100, blank=True)
    candidate_ok = models.BooleanField(default=True)
    candidate_error = models.CharField(max_length=64, blank=True)
    candidate_text = models.TextField(blank=True)
    candidate_latency_ms = models.FloatField(null=True)
    candidate_input_tokens = models.PositiveIntegerField(default=0)
    candidate_output_tokens = models.PositiveIntegerField(default=0)
    candidate_cost = models.FloatField(default=0)
    rerun_text = models.TextField(null=True, blank=True)
    rerun_latency_ms = models.FloatField(null=True, blank=True)
    rerun_cost = models.FloatField(default=0)
    comparator = models.CharField(max_length=32)
    score = models.FloatField()  # the agreement score, candidate vs baseline
    disagree = models.BooleanField()
    noise_score = models.FloatField(null=True, blank=True)  # baseline re-ask vs baseline
    noise_disagree = models.BooleanField(null=True)
    scores = models.JSONField(default=dict)  # every comparator's {value, reason}
    judge_cost = models.FloatField(default=0)  # the judge's calls, when the plan compares with the judge
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["score", "-created_at"]
        indexes = [models.Index(fields=["plan", "created_at"], name="shadow_cmp_plan_created"),
                   models.Index(fields=["plan", "score"], name="shadow_cmp_plan_score")]

    def __str__(self) -> str:
        return f"comparison of {self.sample_id}: {self.score:.2f}"
