"""Small builders for test data, through the services (so audit and versions behave as in production)."""

from django.contrib.auth import get_user_model

from migrations_app.models import Environment, MigrationPlan, ModelEndpoint
from migrations_app.services.endpoints import endpoint_create
from migrations_app.services.plans import plan_create
from migrations_app.services.sdk_keys import environment_get_or_create, sdk_key_create


def make_staff_user(username: str = "ops", *, superuser: bool = False, role: str | None = None):
    """A staff user; `role` is a staff role's group (migrations_app.roles: "cutover-viewer",
    "cutover-operator", "cutover-admin"). Without one (and not a superuser) the user may do nothing."""
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    user = user_model.objects.create_user(username=username, password="correct horse battery staple",
                                          is_staff=True, is_superuser=superuser)
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return user


def make_environment(name: str = "prod") -> Environment:
    return environment_get_or_create(name=name, actor="test")


def make_endpoint(name: str, **overrides) -> ModelEndpoint:
    existing = ModelEndpoint.objects.filter(name=name).first()
    if existing:
        return existing
    fields = {
        "provider": "openai", "model": name, "base_url": None, "api_key_env": "OPENAI_API_KEY",
        "input_price_per_mtok": 30, "output_price_per_mtok": 60, "context_window": 128000,
        "default_params": {"temperature": 0.2},
    } | overrides
    return endpoint_create(actor="test", name=name, **fields)


def make_plan(key: str = "support-bot", *, environment: str = "prod", **fields) -> MigrationPlan:
    baseline = make_endpoint("gpt-4-prod", model="gpt-4")
    candidate = make_endpoint("claude-sonnet", provider="anthropic", model="claude-3-5-sonnet",
                              api_key_env="ANTHROPIC_API_KEY", input_price_per_mtok=3, output_price_per_mtok=15)
    return plan_create(actor="test", key=key, environment=make_environment(environment), baseline=baseline,
                       candidate=candidate, **fields)


def make_sdk_key(environment: str = "prod", scopes: list[str] | None = None) -> str:
    _, secret = sdk_key_create(actor="test", environment=make_environment(environment), scopes=scopes)
    return secret
