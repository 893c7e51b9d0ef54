"""Input and output shapes of the API. Validation names the field; the domain decides what is valid."""

from rest_framework import serializers

from cutover.comparators import REGISTRY as COMPARATORS

from ..domain.lifecycle import allowed_actions
from ..domain.rules import Comparison, Metric, RuleAction, Severity, step_percent_problems, threshold_problem
from ..domain.secrets import api_key_env_problem, secret_param_names, url_has_credentials
from ..models import Alert, AuditEvent, Environment, MigrationPlan, ModelEndpoint, SDKKey, SDKScope
from ..services.plans import QUALITY_FIELDS, RuleSpec, StepSpec


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["name", "config_version", "created_at"]
        read_only_fields = ["config_version", "created_at"]


class ModelEndpointSerializer(serializers.ModelSerializer):
    input_price_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0,
                                                    coerce_to_string=False)
    output_price_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0,
                                                     coerce_to_string=False)
    context_window = serializers.IntegerField(min_value=1, required=False)

    class Meta:
        model = ModelEndpoint
        fields = ["name", "provider", "model", "base_url", "api_key_env", "input_price_per_mtok",
                  "output_price_per_mtok", "context_window", "requests_per_minute", "default_params", "created_at",
                  "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_api_key_env(self, value: str) -> str:
        problem = api_key_env_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

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
    percent = serializers.FloatField(min_value=0, max_value=100)
    min_hold_seconds = serializers.IntegerField(min_value=0, default=0)
    min_samples = serializers.IntegerField(min_value=0, default=0)
    needs_approval = serializers.BooleanField(default=False)
    monitor = serializers.ChoiceField(choices=["", "closely", "normal"], default="",
                                      help_text="blank: closely up to 25 %, normally above")
    deadline_seconds = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)


class RuleSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=[m.value for m in Metric])
    comparison = serializers.ChoiceField(choices=[c.value for c in Comparison])
    threshold = serializers.FloatField()
    sustained_seconds = serializers.IntegerField(min_value=0, default=300)
    min_samples = serializers.IntegerField(min_value=1, default=200)
    action = serializers.ChoiceField(choices=[a.value for a in RuleAction])
    severity = serializers.ChoiceField(choices=[s.value for s in Severity], default=Severity.WARNING.value)
    enabled = serializers.BooleanField(default=True)

    def validate(self, attrs: dict) -> dict:
        problem = threshold_problem(Metric(attrs["metric"]), Comparison(attrs["comparison"]), attrs["threshold"])
        if problem:
            raise serializers.ValidationError({"threshold": problem})
        return attrs


class PlanInputSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True)
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    baseline = serializers.SlugRelatedField(slug_field="name", queryset=ModelEndpoint.objects.all())
    candidate = serializers.SlugRelatedField(slug_field="name", queryset=ModelEndpoint.objects.all())
    baseline_prompt_adapter = serializers.CharField(max_length=100, required=False, allow_blank=True)
    candidate_prompt_adapter = serializers.CharField(max_length=100, required=False, allow_blank=True)
    shadow_sample_rate = serializers.FloatField(min_value=0, max_value=1, required=False)
    evaluation_duration_seconds = serializers.IntegerField(min_value=0, required=False)
    shadow_duration_seconds = serializers.IntegerField(min_value=0, required=False)
    final_hold_seconds = serializers.IntegerField(min_value=0, required=False)
    cleanup_after_seconds = serializers.IntegerField(min_value=0, required=False)
    steps = StepSerializer(many=True, required=False, allow_empty=False)
    rules = RuleSerializer(many=True, required=False)
    # Evaluation and shadow settings (docs/evaluation-and-shadow.md).
    requires_evaluation_pass = serializers.BooleanField(required=False)
    min_accuracy = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_p95_ms = serializers.FloatField(min_value=0, required=False)
    max_cost_per_request = serializers.FloatField(min_value=0, required=False)
    shadow_comparator = serializers.ChoiceField(choices=sorted(COMPARATORS), required=False)
    shadow_agreement_threshold = serializers.FloatField(min_value=0, max_value=1, required=False)
    shadow_max_disagreement = serializers.FloatField(min_value=0, max_value=1, required=False)
    shadow_min_comparisons = serializers.IntegerField(min_value=1, required=False)
    noise_floor_fraction = serializers.FloatField(min_value=0, max_value=1, required=False)

    def validate_key(self, value: str) -> str:
        taken = MigrationPlan.objects.filter(key=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("a plan with this key already exists")
        return value

    def validate_steps(self, steps: list[dict]) -> list[StepSpec]:
        problems = step_percent_problems([step["percent"] for step in steps])
        if problems:
            raise serializers.ValidationError(
                [{"percent": [problems[i]]} if i in problems else {} for i in range(len(steps))])
        return [StepSpec(**step) for step in steps]

    def validate_rules(self, rules: list[dict]) -> list[RuleSpec]:
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
        return attrs


class StepOutputSerializer(serializers.Serializer):
    order = serializers.IntegerField()
    percent = serializers.FloatField()
    min_hold_seconds = serializers.IntegerField()
    min_samples = serializers.IntegerField()
    needs_approval = serializers.BooleanField()
    monitor = serializers.CharField()
    deadline_seconds = serializers.IntegerField(allow_null=True)


class RuleOutputSerializer(RuleSerializer):
    id = serializers.IntegerField(read_only=True)


class PlanSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.name")
    baseline = serializers.CharField(source="baseline.name")
    candidate = serializers.CharField(source="candidate.name")
    steps = StepOutputSerializer(many=True)
    rules = RuleOutputSerializer(many=True)
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
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class AuditEventSerializer(serializers.ModelSerializer):
    plan = serializers.CharField(source="plan_key")

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "actor", "plan", "action", "before", "after", "reason"]
        read_only_fields = fields


class SDKKeySerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", queryset=Environment.objects.all())
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SDKScope.values), allow_empty=False, required=False,
    )
    revoked = serializers.BooleanField(read_only=True)

    class Meta:
        model = SDKKey
        fields = ["prefix", "name", "environment", "scopes", "revoked", "revoked_at", "created_by", "created_at"]
        read_only_fields = ["prefix", "revoked", "revoked_at", "created_by", "created_at"]


class SDKKeyCreatedSerializer(SDKKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown in this response only.")

    class Meta(SDKKeySerializer.Meta):
        fields = SDKKeySerializer.Meta.fields + ["secret"]


class AlertSerializer(serializers.ModelSerializer):
    plan = serializers.CharField(source="plan.key")

    class Meta:
        model = Alert
        fields = ["id", "plan", "name", "severity", "action", "state", "dedup_key", "summary", "metric", "observed",
                  "baseline", "evidence", "first_seen", "last_seen", "resolved_at"]
        read_only_fields = fields


# --- evaluation and shadow -------------------------------------------------------------------------------------


class ShadowComparisonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    request_id = serializers.UUIDField(source="sample.request_id")
    segment = serializers.CharField()
    created_at = serializers.DateTimeField()
    request = serializers.JSONField(source="sample.request")
    baseline_text = serializers.CharField(source="sample.baseline_text")
    baseline_latency_ms = serializers.FloatField(source="sample.baseline_latency_ms", allow_null=True)
    baseline_cost = serializers.FloatField(source="sample.baseline_cost")
    candidate_ok = serializers.BooleanField()
    candidate_error = serializers.CharField()
    candidate_text = serializers.CharField()
    candidate_latency_ms = serializers.FloatField(allow_null=True)
    candidate_cost = serializers.FloatField()
    rerun_text = serializers.CharField(allow_null=True)
    comparator = serializers.CharField()
    score = serializers.FloatField()
    disagree = serializers.BooleanField()
    noise_score = serializers.FloatField(allow_null=True)
    noise_disagree = serializers.BooleanField(allow_null=True)
    scores = serializers.JSONField()


class PlanQualitySettingsSerializer(serializers.Serializer):
    requires_evaluation_pass = serializers.BooleanField(required=False)
    min_accuracy = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_p95_ms = serializers.FloatField(required=False, min_value=0)
    max_cost_per_request = serializers.FloatField(required=False, min_value=0)
    shadow_comparator = serializers.ChoiceField(required=False, choices=["token_f1", "normalised", "exact",
                                                                         "json_equal", "length_ratio"])
    shadow_agreement_threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
    shadow_max_disagreement = serializers.FloatField(required=False, min_value=0, max_value=1)
    shadow_min_comparisons = serializers.IntegerField(required=False, min_value=0)
    noise_floor_fraction = serializers.FloatField(required=False, min_value=0, max_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class EvaluationDatasetSerializer(serializers.Serializer):
    name = serializers.SlugField()
    description = serializers.CharField(allow_blank=True)
    cases = serializers.IntegerField(source="case_count", read_only=True)
    created_by = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class DatasetImportSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    format = serializers.ChoiceField(choices=["jsonl", "csv"])
    content = serializers.CharField(required=False, trim_whitespace=False,
                                    help_text="The file's text (or upload it as `file`, multipart).")
    file = serializers.FileField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    replace = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if not attrs.get("content") and not attrs.get("file"):
            raise serializers.ValidationError({"content": "give the file's text as content, or upload file"})
        return attrs


class EvaluationRunInputSerializer(serializers.Serializer):
    dataset = serializers.SlugField()
    plan = serializers.SlugField(required=False)
    baseline = serializers.SlugField(required=False, help_text="an endpoint's name; default: the plan's")
    candidate = serializers.SlugField(required=False, help_text="an endpoint's name; default: the plan's")
    repetitions = serializers.IntegerField(min_value=1, max_value=20, default=3)
    comparator = serializers.ChoiceField(choices=["normalised", "exact", "token_f1", "json_equal"],
                                         default="normalised")
    accuracy_threshold = serializers.FloatField(min_value=0, max_value=1, default=0.8)


class EvaluationRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    plan = serializers.CharField(source="plan.key", allow_null=True, default=None)
    dataset = serializers.CharField(source="dataset.name")
    baseline = serializers.CharField(source="baseline.name")
    candidate = serializers.CharField(source="candidate.name")
    repetitions = serializers.IntegerField()
    comparator = serializers.CharField()
    state = serializers.CharField()
    passed = serializers.BooleanField(allow_null=True)
    cost_total = serializers.FloatField()
    criteria = serializers.JSONField()
    report = serializers.JSONField()
    error = serializers.CharField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
