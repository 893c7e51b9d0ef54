"""Database connections in a Celery worker live across tasks, as they live across requests in the web process:
CONN_MAX_AGE and the health checks decide when one closes, checked before and after each task. (Celery's Django
fix-up would close every connection around every task: a new PostgreSQL connection per shadow comparison.)"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from celery import signals
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from controlplane.celery import app

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as in a worker


class Task:
    def __init__(self, *, eager: bool) -> None:
        self.request = SimpleNamespace(is_eager=eager)


def run_task_signals(*, eager: bool = False) -> None:
    """What a worker sends around each task it runs."""
    task = Task(eager=eager)
    signals.task_prerun.send(sender=task, task=task, task_id="t", args=(), kwargs={})
    signals.task_postrun.send(sender=task, task=task, task_id="t", args=(), kwargs={}, retval=None, state="SUCCESS")


@pytest.fixture
def kept_connection(monkeypatch):
    """A fresh connection that CONN_MAX_AGE (60 s) allows to be reused."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    connection.ensure_connection()
    yield connection.connection
    connection.close()


def test_celerys_django_fixup__recycles_a_connection_only_every_thousand_tasks():
    assert DjangoWorkerFixup(app).db_reuse_max == 1000


def test_task__healthy_connection_within_conn_max_age__kept_for_the_next_task(kept_connection):
    run_task_signals()
    run_task_signals()

    assert connection.connection is kept_connection


def test_task__connection_older_than_conn_max_age__closed(kept_connection):
    connection.close_at = time.monotonic() - 1

    run_task_signals()

    assert connection.connection is None


def test_task__connection_that_failed__closed(kept_connection, monkeypatch):
    connection.errors_occurred = True
    monkeypatch.setattr(connection, "is_usable", lambda: False)

    run_task_signals()

    assert connection.connection is None


def test_eager_task__the_callers_connection_left_alone(kept_connection):
    connection.close_at = time.monotonic() - 1  # would be closed around a worker's task

    run_task_signals(eager=True)

    assert connection.connection is kept_connection
