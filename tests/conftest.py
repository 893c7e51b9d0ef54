"""Fixtures shared by every test. Tests never reach beyond this machine."""

import pytest
from django.core.cache import cache

from tests import factories


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache (SDK config documents, SDK keys)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff_user(db):
    """An operator: creates and edits plans and endpoints and runs the lifecycle actions."""
    return factories.make_staff_user(role="cutover-operator")


@pytest.fixture
def ops_client(staff_user):
    """An API client logged in as an operator (the ops API's usual audience)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(staff_user)
    return client


@pytest.fixture
def plan(db):
    return factories.make_plan()
