"""Admin forms. Validation mirrors the API's serializers by calling the same domain checks, so a value the
API refuses is refused here too, with the error on the same field."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .domain.judging import COMPARATORS, RUBRIC_MAX_LENGTH, judge_settings_problems
from .domain.lifecycle import State
from .domain.rules import Comparison, Metric, step_percent_problems, threshold_problem
from .domain.secrets import api_key_env_problem, secret_param_names, url_has_credentials
from .models import HealthRule, MigrationPlan, ModelEndpoint, Provider, RolloutStep, SDKKey, SDKScope
from .services.plans import QUALITY_FIELDS


class ModelEndpointForm(forms.ModelForm):
    base_url = forms.URLField(max_length=500, required=False, assume_scheme="https")
    context_window = forms.IntegerField(min_value=1, initial=8192)

    class Meta:
        model = ModelEndpoint
        fields = ["name", "provider", "model", "base_url", "api_key_env", "input_price_per_mtok",
                  "output_price_per_mtok", "context_window", "requests_per_minute", "default_params"]

    def clean_api_key_env(self) -> str:
        value = self.cleaned_data["api_key_env"]
        problem = api_key_env_problem(value)
        if problem:
            # Don't echo what may be a live key back into the re-rendered page (as the API doesn't).
            self.data = self.data.copy()
            self.data[self.add_prefix("api_key_env")] = ""
            raise ValidationError(problem)
        return value

    def clean_base_url(self) -> str | None:
        value = self.cleaned_data.get("base_url")
        if value and url_has_credentials(value):
            raise ValidationError("must not carry credentials; use the API key environment variable")
        return value or None

    def clean_default_params(self) -> dict:
        value = self.cleaned_data.get("default_params")
        if value is None:  # a cleared field means "no params", not SQL NULL
            return {}
        if not isinstance(value, dict):
            raise ValidationError("must be a JSON object")
        secret_names = secret_param_names(value)
        if secret_names:
            raise ValidationError(
                f"must not hold credentials ({', '.join(secret_names)}); use the API key environment variable")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("provider") == Provider.OPENAI_COMPATIBLE and not cleaned.get("base_url") \
                and "base_url" not in self.errors:
            self.add_error("base_url", "an openai_compatible endpoint needs a base URL")
        return cleaned


class MigrationPlanForm(forms.ModelForm):
    shadow_comparator = forms.ChoiceField(choices=[(name, name) for name in COMPARATORS], initial="token_f1",
                                          help_text=MigrationPlan._meta.get_field("shadow_comparator").help_text)
    judge_rubric = forms.CharField(required=False, max_length=RUBRIC_MAX_LENGTH,
                                   widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                                   help_text=MigrationPlan._meta.get_field("judge_rubric").help_text)

    class Meta:
        model = MigrationPlan
        fields = ["key", "description", "environment", "baseline", "baseline_prompt_adapter", "candidate",
                  "candidate_prompt_adapter", "shadow_sample_rate", "evaluation_duration_seconds",
                  "shadow_duration_seconds", "final_hold_seconds", "cleanup_after_seconds", *QUALITY_FIELDS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Endpoints are read-only (absent from the form) once the plan runs; then they cannot collide.
        if "baseline" in self.fields and "candidate" in self.fields:
            baseline, candidate = cleaned.get("baseline"), cleaned.get("candidate")
            if baseline is not None and baseline == candidate:
                self.add_error("candidate", "must differ from the baseline")
        self._clean_judge(cleaned)
        return cleaned

    def _clean_judge(self, cleaned: dict[str, Any]) -> None:
        """As the API: a judge comparator needs a judge endpoint, a pinned model and a threshold ≤ 0.5."""
        names = ("shadow_comparator", "judge_endpoint", "shadow_agreement_threshold")
        if any(name in self.errors for name in names):
            return  # each already has its own error
        value = {name: cleaned.get(name) if name in self.fields else getattr(self.instance, name) for name in names}
        judge = value["judge_endpoint"]
        problems = judge_settings_problems(
            comparator=value["shadow_comparator"], judge_model=judge.model if judge else None,
            threshold=value["shadow_agreement_threshold"], threshold_field="shadow_agreement_threshold")
        for name, problem in problems.items():
            self.add_error(name if name in self.fields else None, problem)


class RolloutStepForm(forms.ModelForm):
    class Meta:
        model = RolloutStep
        fields = ["percent", "min_hold_seconds", "min_samples", "needs_approval", "monitor", "deadline_seconds"]


class HealthRuleForm(forms.ModelForm):
    min_samples = forms.IntegerField(min_value=1, initial=200)

    class Meta:
        model = HealthRule
        fields = ["metric", "comparison", "threshold", "sustained_seconds", "min_samples", "action",
                  "severity", "enabled"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        metric, comparison, threshold = (cleaned.get(name) for name in ("metric", "comparison", "threshold"))
        if metric and comparison and threshold is not None:
            problem = threshold_problem(Metric(metric), Comparison(comparison), threshold)
            if problem:
                self.add_error("threshold", problem)
        return cleaned


class RolloutStepFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if not self.instance._state.adding and self.instance.state != State.DRAFT:
            return  # the rows are read-only then (and the service refuses step changes)
        rows = [
            (form, form.cleaned_data.get("percent"))
            for form in self.forms
            if form.cleaned_data and not (self.can_delete and self._should_delete_form(form))
        ]
        if not rows:
            raise ValidationError("a plan needs at least one rollout step")
        # Rows whose percent already failed its own validation are left out of the sequence check.
        checked = [(form, percent) for form, percent in rows if percent is not None]
        for index, problem in step_percent_problems([percent for _, percent in checked]).items():
            checked[index][0].add_error("percent", problem)


class SDKKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=SDKScope.choices, widget=forms.CheckboxSelectMultiple, initial=SDKScope.values,
        help_text="What the key may do.",
    )

    class Meta:
        model = SDKKey
        fields = ["environment", "name"]


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), max_length=2000)

    def __init__(self, *args: Any, required: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
