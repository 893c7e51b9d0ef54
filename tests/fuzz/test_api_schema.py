"""API fuzzing (issue 9): schemathesis over the whole OpenAPI schema, in-process through the WSGI app, ops and
SDK sides authenticated, with every check (no 5xx; each response's status, content type, headers and body as
the schema declares them). Path parameters mostly name seeded objects (an environment `prod`, two endpoints, a
plan rolling out, an SDK key, a dataset), so the fuzz reaches past the 404s; now and then they stay as
generated, so the 404s are fuzzed too."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from knox.models import AuthToken

from migrations_app.domain.lifecycle import Action
from migrations_app.models import SDKKey, SDKScope
from migrations_app.services.evaluation import dataset_import
from migrations_app.services.plans import plan_act
from tests import factories

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 25
SDK_PREFIX = "/api/v1/sdk/"

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

# The seeded objects each path parameter names, by the path's first segment under /api/v1/.
SEEDED = {
    "environments": {"name": "prod"},
    "endpoints": {"name": "gpt-4-prod"},
    "plans": {"key": "support-bot"},
    "evaluation-datasets": {"name": "faq"},
}


def _seeded_path_parameters(path: str) -> dict:
    resource = path.removeprefix("/api/v1/").split("/", 1)[0]
    if resource == "sdk-keys":
        return {"prefix": SDKKey.objects.order_by("id").values_list("prefix", flat=True).first()}
    return SEEDED.get(resource, {})


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    path_parameters = path_parameters or {}
    seeded = {name: value for name, value in _seeded_path_parameters(context.operation.path).items()
              if name in path_parameters}
    if not seeded:
        return st.just(path_parameters)
    # Mostly a real object; one time in five the generated value (an unknown one: the 404 path).
    return st.sampled_from([path_parameters | seeded] * 4 + [path_parameters])


# The seeded fixture's credentials by side: a superuser's knox token (ops) and an SDK key with both scopes.
CREDENTIALS: dict[str, str] = {}


@schema.auth(refresh_interval=None)
class SideAuth:
    """Each request carries its side's credentials (schemathesis then knows the API is authenticated)."""

    def get(self, case, ctx):
        return CREDENTIALS.get("sdk" if case.path.startswith(SDK_PREFIX) else "ops")

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": data}


@schema.hook
def map_query(context, query):
    """No long poll: a `wait` that is a number of seconds becomes 0 (odd values stay, they must be a 400)."""
    if query and "wait" in query:
        try:
            if float(query["wait"]) > 0:
                query = query | {"wait": 0}
        except (TypeError, ValueError):
            pass
    return query


@pytest.fixture
def _keep_the_test_connection():
    """As Django's test client does: a request through the WSGI handler must not close the test's database
    connection (its transaction holds the seeded data)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(db, settings, _keep_the_test_connection):
    settings.CUTOVER_SDK_RATE_LIMITS = {}  # unlimited: the fuzz is no abuse
    plan = factories.make_plan("support-bot")
    for action in (Action.START, Action.ADVANCE, Action.ADVANCE):  # evaluating → shadowing → rolling_out
        plan = plan_act(actor="test", plan_key=plan.key, action=action)
    assert plan.state == "rolling_out"
    dataset_import(actor="test", name="faq", fmt="jsonl", description="", replace=False,
                   content='{"input": "What is 2+2?", "expected": "4"}\n')
    root = factories.make_staff_user("root", superuser=True)
    _, token = AuthToken.objects.create(root)
    sdk_key = factories.make_sdk_key("prod", scopes=[SDKScope.CONFIG_READ, SDKScope.EVENTS_WRITE])
    CREDENTIALS.update(ops=f"Token {token}", sdk=f"Bearer {sdk_key}")
    yield
    CREDENTIALS.clear()


# Every check the installed schemathesis has (not_a_server_error, status_code_conformance,
# content_type_conformance, response_headers_conformance, response_schema_conformance, negative_data_rejection,
# ignored_auth, use_after_free, …) but positive_data_acceptance: it wants a 2xx for any body the schema allows,
# and no OpenAPI schema can say "an environment that exists" or "a name not yet taken" — those are the 400s
# (naming the field) docs/api.md promises.
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance]


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api__every_operation__conforms_to_the_schema(case, seeded):
    case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)
