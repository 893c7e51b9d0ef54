"""Input and output shapes of the API. Validation names the field; the domain decides what is valid."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..domain.judging import COMPARATORS, RUBRIC_MAX_LENGTH, judge_settings_problems
from ..domain.lifecycle import allowed_actions
from ..domain.rules import Comparison, Metric, RuleAction, Severity, step_percent_problems, threshold_problem
from ..domain.secrets import ENV_VAR_NAME, api_key_env_problem, secret_param_names, url_has_credentials
from ..domain.text import NUL_MESSAGE, contains_nul
from ..models import Alert, AuditEvent, Environment, MigrationPlan, ModelEndpoint, SDKKey, SDKScope
from ..services.plans import QUALITY_FIELDS, RuleSpec, StepSpec


class StrictCharField(serializers.CharField):
    """Text only. DRF's CharField takes a number and stores its digits, so a client sending the wrong type
    (a reason of 42, a plan key of 7) never heard of it; now it is a 400 naming the field. max_length holds
    for the text as sent, as the schema says (DRF measured it after trimming the whitespace)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictSlugField(StrictCharField, serializers.SlugField):
    pass


class StrictFloatField(serializers.FloatField):
    """A number, not a boolean (DRF's FloatField read true as 1.0)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


DATABASE_INT_MAX = 2**31 - 1


class BoundedIntegerField(serializers.IntegerField):
    """A whole number that fits the database's integer column (PostgreSQL's: past it was a 500)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_value", DATABASE_INT_MAX)
        super().__init__(**kwargs)


class StrictSlugRelatedField(serializers.SlugRelatedField):
    """The object by its name; a name that is not text, or holds a NUL character (PostgreSQL cannot even
    compare it: that was a 500), is a 400 naming the field."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            raise serializers.ValidationError("Null characters are not allowed.")
        return super().to_internal_value(data)


class StrictModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = serializers.ModelSerializer.serializer_field_mapping | {
        models.CharField: StrictCharField, models.TextField: StrictCharField, models.SlugField: StrictSlugField,
        models.FloatField: StrictFloatField}


class EnvironmentSerializer(StrictModelSerializer):
    class Meta:
        model = Environment
        fields = ["name", "config_version", "created_at"]
        read_only_fields = ["config_version", "created_at"]


class EnvVarNameValidator(RegexValidator):
    """An environment variable's name: its shape goes in the schema (a RegexValidator becomes a `pattern`), the
    domain's messages to the client (a key pasted in place of the name is called what it is)."""

    def __init__(self) -> None:
        super().__init__(ENV_VAR_NAME)

    def __call__(self, value) -> None:
        problem = api_key_env_problem(str(value))
        if problem:
            raise DjangoValidationError(problem)


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """A JSON object (the schema said any JSON value, so clients could not tell a list is refused), with no NUL
    character in it (jsonb cannot hold one)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if contains_nul(value):
            raise serializers.ValidationError(NUL_MESSAGE)
        return value


class ModelEndpointSerializer(StrictModelSerializer):
    default_params = JSONObjectField(required=False)
    input_price_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0,
                                                    coerce_to_string=False)
    output_price_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0,
                                                     coerce_to_string=False)
    context_window = BoundedIntegerField(min_value=1, required=False)

    class Meta:
        model = ModelEndpoint
        fields = ["name", "provider", "model", "base_url", "api_key_env", "input_price_per_mtok",
                  "output_price_per_mtok", "context_window", "requests_per_minute", "default_params", "created_at",
                  "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"api_key_env": {"validators": [EnvVarNameValidator()]}}

    def validate_base_url(self, value: str | None) -> str | None:
        if value and url_has_credentials(value):
            raise serializers.ValidationError("must not carry credentials; use api_key_env for the key")
        return value

    def validate_default_params(self, value) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        secret_names = secret_param_names(value)
        if secret_names:
            raise serializers.ValidationError(
                f"must not hold credentials ({', '.join(secret_names)}); use api_key_env for the key")
        return value

    def validate(self, attrs: dict) -> dict:
        provider = attrs.get("provider", getattr(self.instance, "provider", None))
        base_url = attrs.get("base_url", getattr(self.instance, "base_url", None))
        if provider == "openai_compatible" and not base_url:
            raise serializers.ValidationError({"base_url": "an openai_compatible endpoint needs a base URL"})
        return attrs


class StepSerializer(serializers.Serializer):
    percent = StrictFloatField(min_value=0, max_value=100)
    min_hold_seconds = BoundedIntegerField(min_value=0, default=0)
    min_samples = BoundedIntegerField(min_value=0, default=0)
    needs_approval = serializers.BooleanField(default=False)
    monitor = serializers.ChoiceField(choices=["", "closely", "normal"], default="",
                                      help_text="blank: closely up to 25 %, normally above")
    deadline_seconds = BoundedIntegerField(min_value=1, required=False, allow_null=True, default=None)


class RuleSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=[m.value for m in Metric])
    comparison = serializers.ChoiceField(choices=[c.value for c in Comparison])
    threshold = StrictFloatField()
    sustained_seconds = BoundedIntegerField(min_value=0, default=300)
    min_samples = BoundedIntegerField(min_value=1, default=200)
    action = serializers.ChoiceField(choices=[a.value for a in RuleAction])
    severity = serializers.ChoiceField(choices=[s.value for s in Severity], default=Severity.WARNING.value)
    enabled = serializers.BooleanField(default=True)

    def validate(self, attrs: dict) -> dict:
        if not {"metric", "comparison", "threshold"} <= attrs.keys():  # in a PATCH: _whole() reports the gaps
            return attrs
        problem = threshold_problem(Metric(attrs["metric"]), Comparison(attrs["comparison"]), attrs["threshold"])
        if problem:
            raise serializers.ValidationError({"threshold": problem})
        return attrs


class PlanInputSerializer(serializers.Serializer):
    key = StrictSlugField(max_length=100)
    description = StrictCharField(required=False, allow_blank=True)
    environment = StrictSlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    baseline = StrictSlugRelatedField(slug_field="name", queryset=ModelEndpoint.objects.all())
    candidate = StrictSlugRelatedField(slug_field="name", queryset=ModelEndpoint.objects.all())
    baseline_prompt_adapter = StrictCharField(max_length=100, required=False, allow_blank=True)
    candidate_prompt_adapter = StrictCharField(max_length=100, required=False, allow_blank=True)
    shadow_sample_rate = StrictFloatField(min_value=0, max_value=1, required=False)
    evaluation_duration_seconds = BoundedIntegerField(min_value=0, required=False)
    shadow_duration_seconds = BoundedIntegerField(min_value=0, required=False)
    final_hold_seconds = BoundedIntegerField(min_value=0, required=False)
    cleanup_after_seconds = BoundedIntegerField(min_value=0, required=False)
    steps = StepSerializer(many=True, required=False, allow_empty=False)
    rules = RuleSerializer(many=True, required=False)
    # Evaluation and shadow settings (docs/evaluation-and-shadow.md).
    requires_evaluation_pass = serializers.BooleanField(required=False)
    min_accuracy = StrictFloatField(min_value=0, max_value=1, required=False)
    max_p95_ms = StrictFloatField(min_value=0, required=False)
    max_cost_per_request = StrictFloatField(min_value=0, required=False)
    shadow_comparator = serializers.ChoiceField(choices=COMPARATORS, required=False)
    shadow_agreement_threshold = StrictFloatField(min_value=0, max_value=1, required=False)
    shadow_max_disagreement = StrictFloatField(min_value=0, max_value=1, required=False)
    shadow_min_comparisons = BoundedIntegerField(min_value=1, required=False)
    noise_floor_fraction = StrictFloatField(min_value=0, max_value=1, required=False)
    judge_endpoint = StrictSlugRelatedField(
        slug_field="name", queryset=ModelEndpoint.objects.all(), required=False, allow_null=True,
        help_text="The endpoint whose (pinned) model judges when shadow_comparator is judge")
    judge_rubric = StrictCharField(required=False, allow_blank=True, max_length=RUBRIC_MAX_LENGTH,
                                   help_text="What the judge weighs; blank for the default rubric")

    def validate_key(self, value: str) -> str:
        taken = MigrationPlan.objects.filter(key=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("a plan with this key already exists")
        return value

    def _whole(self, name: str, items: list[dict]) -> list[dict]:
        """In a PATCH (partial), steps and rules still replace the plan's whole lists, so each item must be
        complete with its defaults: DRF's partial mode would skip required fields and defaults down the tree
        (a rule without its comparison was a 500)."""
        if not self.partial:
            return items
        whole = type(self.fields[name].child)(data=self.initial_data.get(name), many=True)
        if not whole.is_valid():
            raise serializers.ValidationError(whole.errors)
        return whole.validated_data

    def validate_steps(self, steps: list[dict]) -> list[StepSpec]:
        steps = self._whole("steps", steps)
        problems = step_percent_problems([step["percent"] for step in steps])
        if problems:
            raise serializers.ValidationError(
                [{"percent": [problems[i]]} if i in problems else {} for i in range(len(steps))])
        return [StepSpec(**step) for step in steps]

    def validate_rules(self, rules: list[dict]) -> list[RuleSpec]:
        rules = self._whole("rules", rules)
        return [RuleSpec(**rule) for rule in rules]

    def validate(self, attrs: dict) -> dict:
        if self.instance is not None and "key" in attrs and attrs["key"] != self.instance.key:
            raise serializers.ValidationError({"key": "a plan's key cannot change; clients route by it"})
        baseline = attrs.get("baseline", getattr(self.instance, "baseline", None))
        candidate = attrs.get("candidate", getattr(self.instance, "candidate", None))
        if baseline is not None and baseline == candidate:
            raise serializers.ValidationError({"candidate": "must differ from the baseline"})
        environment = attrs.get("environment")
        if self.instance is not None and environment and environment != self.instance.environment:
            raise serializers.ValidationError({"environment": "a plan cannot move to another environment"})
        judge_problems(attrs, self.instance)
        return attrs


def judge_problems(attrs: dict, plan: MigrationPlan | None) -> None:
    """The judge settings as they will be (the values sent, else the plan's, else the defaults) go together:
    a judge comparator needs a judge endpoint, a pinned model and a threshold of at most 0.5."""
    def value(name: str):
        if name in attrs:
            return attrs[name]
        return getattr(plan, name) if plan is not None else MigrationPlan._meta.get_field(name).get_default()

    judge = value("judge_endpoint")
    problems = judge_settings_problems(
        comparator=value("shadow_comparator"), judge_model=judge.model if judge else None,
        threshold=value("shadow_agreement_threshold"), threshold_field="shadow_agreement_threshold")
    if problems:
        raise serializers.ValidationError(problems)


class StepOutputSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    percent = StrictFloatField()
    min_hold_seconds = serializers.IntegerField()
    min_samples = serializers.IntegerField()
    needs_approval = serializers.BooleanField()
    monitor = StrictCharField()
    deadline_seconds = serializers.IntegerField(allow_null=True)


class RuleOutputSerializer(RuleSerializer):
    id = serializers.IntegerField(read_only=True)


class PlanSerializer(StrictModelSerializer):
    environment = StrictCharField(source="environment.name")
    baseline = StrictCharField(source="baseline.name")
    candidate = StrictCharField(source="candidate.name")
    steps = StepOutputSerializer(many=True)
    rules = RuleOutputSerializer(many=True)
    judge_endpoint = StrictCharField(source="judge_endpoint.name", allow_null=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = MigrationPlan
        fields = [
            "key", "description", "environment", "baseline", "candidate", "baseline_prompt_adapter",
            "candidate_prompt_adapter", "state", "paused_from", "candidate_percent", "rollback",
            "current_step_index", "shadow_sample_rate", "salt", "config_version", "evaluation_duration_seconds",
            "shadow_duration_seconds", "final_hold_seconds", "cleanup_after_seconds", *QUALITY_FIELDS, "steps",
            "rules", "allowed_actions", "state_changed_at", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_allowed_actions(self, plan: MigrationPlan) -> list[str]:
        percents = [step.percent for step in plan.steps.all()]
        return [action.value for action in allowed_actions(plan.position, percents)]


class ActionInputSerializer(serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=2000, default="")


class AuditEventSerializer(StrictModelSerializer):
    plan = StrictCharField(source="plan_key")

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "plan", "action", "before", "after", "reason"]
        read_only_fields = fields


class SDKKeySerializer(StrictModelSerializer):
    environment = StrictSlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SDKScope.values), allow_empty=False, required=False,
    )
    revoked = serializers.BooleanField(read_only=True)

    class Meta:
        model = SDKKey
        fields = ["prefix", "name", "environment", "scopes", "revoked", "revoked_at", "created_by", "created_at"]
        read_only_fields = ["prefix", "revoked", "revoked_at", "created_by", "created_at"]


class SDKKeyCreatedSerializer(SDKKeySerializer):
    secret = StrictCharField(read_only=True, help_text="Shown in this response only.")

    class Meta(SDKKeySerializer.Meta):
        fields = SDKKeySerializer.Meta.fields + ["secret"]


class AlertSerializer(StrictModelSerializer):
    plan = StrictCharField(source="plan.key")

    class Meta:
        model = Alert
        fields = ["id", "plan", "name", "severity", "action", "state", "dedup_key", "summary", "metric", "observed",
                  "baseline", "evidence", "first_seen", "last_seen", "resolved_at"]
        read_only_fields = fields


# --- evaluation and shadow -------------------------------------------------------------------------------------


class ShadowComparisonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    request_id = serializers.UUIDField(source="sample.request_id")
    segment = StrictCharField()
    created_at = serializers.DateTimeField()
    request = serializers.JSONField(source="sample.request")
    baseline_text = StrictCharField(source="sample.baseline_text")
    baseline_latency_ms = StrictFloatField(source="sample.baseline_latency_ms", allow_null=True)
    baseline_cost = StrictFloatField(source="sample.baseline_cost")
    candidate_ok = serializers.BooleanField()
    candidate_error = StrictCharField()
    candidate_text = StrictCharField()
    candidate_latency_ms = StrictFloatField(allow_null=True)
    candidate_cost = StrictFloatField()
    rerun_text = StrictCharField(allow_null=True)
    comparator = StrictCharField()
    score = StrictFloatField()
    disagree = serializers.BooleanField()
    noise_score = StrictFloatField(allow_null=True)
    noise_disagree = serializers.BooleanField(allow_null=True)
    scores = serializers.JSONField()
    judge_cost = StrictFloatField(help_text="what the judge's calls cost (shadow spend), when it compared")


class PlanQualitySettingsSerializer(serializers.Serializer):
    requires_evaluation_pass = serializers.BooleanField(required=False)
    min_accuracy = StrictFloatField(required=False, min_value=0, max_value=1)
    max_p95_ms = StrictFloatField(required=False, min_value=0)
    max_cost_per_request = StrictFloatField(required=False, min_value=0)
    shadow_comparator = serializers.ChoiceField(required=False, choices=COMPARATORS)
    shadow_agreement_threshold = StrictFloatField(required=False, min_value=0, max_value=1)
    shadow_max_disagreement = StrictFloatField(required=False, min_value=0, max_value=1)
    shadow_min_comparisons = BoundedIntegerField(required=False, min_value=0)
    noise_floor_fraction = StrictFloatField(required=False, min_value=0, max_value=1)
    judge_endpoint = StrictSlugRelatedField(slug_field="name", queryset=ModelEndpoint.objects.all(), required=False,
                                            allow_null=True)
    judge_rubric = StrictCharField(required=False, allow_blank=True, max_length=RUBRIC_MAX_LENGTH)
    reason = StrictCharField(required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        judge_problems(attrs, self.context.get("plan"))
        return attrs


class EvaluationDatasetSerializer(serializers.Serializer):
    name = StrictSlugField()
    description = StrictCharField(allow_blank=True)
    cases = serializers.IntegerField(source="case_count", read_only=True)
    created_by = StrictCharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class DatasetImportSerializer(serializers.Serializer):
    name = StrictSlugField(max_length=100)
    format = serializers.ChoiceField(choices=["jsonl", "csv"])
    content = StrictCharField(required=False, trim_whitespace=False,
                                    help_text="The file's text (or upload it as `file`, multipart).")
    file = serializers.FileField(required=False)
    description = StrictCharField(required=False, allow_blank=True, default="")
    replace = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if not attrs.get("content") and not attrs.get("file"):
            raise serializers.ValidationError({"content": "give the file's text as content, or upload file"})
        return attrs


class EvaluationRunInputSerializer(serializers.Serializer):
    dataset = StrictSlugField()
    plan = StrictSlugField(required=False)
    baseline = StrictSlugField(required=False, help_text="an endpoint's name; default: the plan's")
    candidate = StrictSlugField(required=False, help_text="an endpoint's name; default: the plan's")
    repetitions = BoundedIntegerField(min_value=1, max_value=20, default=3)
    comparator = serializers.ChoiceField(choices=["normalised", "exact", "token_f1", "json_equal", "judge"],
                                         default="normalised")
    accuracy_threshold = StrictFloatField(min_value=0, max_value=1, required=False,
                                          help_text="default 0.8; 0.5 with the judge (at least as good)")
    judge_endpoint = StrictSlugField(required=False, help_text="with the judge comparator, an endpoint's name; "
                                                               "default: the plan's judge endpoint")


class EvaluationRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    plan = StrictCharField(source="plan.key", allow_null=True, default=None)
    dataset = StrictCharField(source="dataset.name")
    baseline = StrictCharField(source="baseline.name")
    candidate = StrictCharField(source="candidate.name")
    repetitions = serializers.IntegerField()
    comparator = StrictCharField()
    judge_endpoint = StrictCharField(source="judge_endpoint.name", allow_null=True, default=None)
    accuracy_threshold = StrictFloatField()
    state = StrictCharField()
    passed = serializers.BooleanField(allow_null=True)
    cost_total = StrictFloatField()
    criteria = serializers.JSONField()
    report = serializers.JSONField()
    error = StrictCharField()
    created_by = StrictCharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
