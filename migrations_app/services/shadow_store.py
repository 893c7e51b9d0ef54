"""A shadow comparison's database work in as few statements as the database allows (used by services/shadow.py).

On PostgreSQL each step is one statement, built once per process from the models' fields:

* **claim and read.** The lease is taken by an `UPDATE … RETURNING` in a CTE that the statement joins to the
  sample's plan and the plan's two endpoints — what a claiming UPDATE followed by a `select_related` read did
  in two statements and two ORM query compilations.
* **store.** The comparison is inserted by a statement whose CTE marks the sample done. A statement is atomic:
  the comparison and the sample's state commit together or not at all, as the transaction around the two
  statements did; a second run's insert fails on the one-to-one key and changes nothing.

Values read back go through each field's converters, as the ORM applies them, and instances are built with
`Model.from_db`. On other databases (SQLite, the embedded mode) both use the ORM: a claiming UPDATE then a
`select_related` read; a transaction around the insert and the sample's update.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connections, transaction
from django.db.models import F, Model, Q
from django.db.models.sql import InsertQuery

from ..models import MigrationPlan, ModelEndpoint, ShadowComparison, ShadowSample

DB = "default"


class _Reader:
    """Turns the columns of one model, as selected under `alias`, back into an instance."""

    def __init__(self, model: type[Model], alias: str, using: str) -> None:
        connection = connections[using]
        self.model, self.alias, self.using = model, alias, using
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self.converters = []
        for field in self.fields:
            col = field.get_col(alias)
            functions = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            self.converters.append((functions, col) if functions else None)

    def columns(self) -> str:
        quote = connections[self.using].ops.quote_name
        return ", ".join(f"{self.alias}.{quote(field.column)}" for field in self.fields)

    def build(self, values: list[Any]) -> Model:
        connection = connections[self.using]
        for index, converter in enumerate(self.converters):
            if converter is not None:
                functions, col = converter
                value = values[index]
                for function in functions:
                    value = function(value, col, connection)
                values[index] = value
        return self.model.from_db(self.using, self.attnames, values)


class _ClaimStatement:
    def __init__(self, using: str) -> None:
        quote = connections[using].ops.quote_name
        sample, plan, endpoint = (model._meta for model in (ShadowSample, MigrationPlan, ModelEndpoint))
        self.readers = [_Reader(ShadowSample, "s", using), _Reader(MigrationPlan, "p", using),
                        _Reader(ModelEndpoint, "b", using), _Reader(ModelEndpoint, "c", using)]
        lease, attempts, state, pk = (quote(sample.get_field(name).column)
                                      for name in ("lease_until", "attempts", "state", "id"))
        returned = ", ".join(quote(field.column) for field in self.readers[0].fields)
        self.sql = (
            f"WITH s AS (UPDATE {quote(sample.db_table)} SET {lease} = %s, {attempts} = {attempts} + 1 "
            f"WHERE {pk} = %s AND {state} = %s AND ({lease} IS NULL OR {lease} < %s) RETURNING {returned}) "
            f"SELECT {', '.join(reader.columns() for reader in self.readers)} FROM s "
            f"JOIN {quote(plan.db_table)} p ON p.{quote(plan.pk.column)} = "
            f"s.{quote(sample.get_field('plan').column)} "
            f"JOIN {quote(endpoint.db_table)} b ON b.{quote(endpoint.pk.column)} = "
            f"p.{quote(plan.get_field('baseline').column)} "
            f"JOIN {quote(endpoint.db_table)} c ON c.{quote(endpoint.pk.column)} = "
            f"p.{quote(plan.get_field('candidate').column)}"
        )


@cache
def _claim_statement(using: str) -> _ClaimStatement:
    return _ClaimStatement(using)


def one_statement(using: str = DB) -> bool:
    """Whether this database takes the one-statement paths (PostgreSQL)."""
    return connections[using].vendor == "postgresql"


def claim_and_read(sample_id: int, *, now: datetime, lease_until: datetime,
                   using: str = DB) -> ShadowSample | None:
    """Take the lease of a pending sample whose lease is free or expired (until `lease_until`, attempts + 1)
    and return the sample with `plan`, `plan.baseline` and `plan.candidate` loaded; None when it is done,
    failed or held by another run."""
    if not one_statement(using):
        claimed = ShadowSample.objects.using(using).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now), pk=sample_id, state="pending",
        ).update(lease_until=lease_until, attempts=F("attempts") + 1)
        if claimed != 1:
            return None
        return ShadowSample.objects.using(using).select_related("plan__baseline", "plan__candidate").get(
            pk=sample_id)
    statement = _claim_statement(using)
    with connections[using].cursor() as cursor:
        cursor.execute(statement.sql, [lease_until, sample_id, "pending", now])
        row = cursor.fetchone()
    if row is None:
        return None
    objects, start = [], 0
    for reader in statement.readers:
        width = len(reader.fields)
        objects.append(reader.build(list(row[start:start + width])))
        start += width
    sample, plan, baseline, candidate = objects
    plan.baseline, plan.candidate = baseline, candidate
    sample.plan = plan
    return sample


def store(comparison: ShadowComparison, *, using: str = DB) -> None:
    """Insert `comparison` (unsaved) and mark its sample done, atomically; IntegrityError when the sample has
    a comparison already (nothing changes then)."""
    done = {"state": "done", "lease_until": None, "last_error": ""}
    if not one_statement(using):
        with transaction.atomic(using=using):
            comparison.save(force_insert=True, using=using)
            ShadowSample.objects.using(using).filter(pk=comparison.sample_id).update(**done)
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    meta, sample = ShadowComparison._meta, ShadowSample._meta
    query = InsertQuery(ShadowComparison)
    query.insert_values([field for field in meta.local_concrete_fields if field is not meta.auto_field],
                        [comparison])
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [meta.pk]
    [(insert, params)] = compiler.as_sql()
    assignments = ", ".join(f"{quote(sample.get_field(name).column)} = %s" for name in done)
    sql = (f"WITH done AS (UPDATE {quote(sample.db_table)} SET {assignments} "
           f"WHERE {quote(sample.pk.column)} = %s) {insert}")
    # Inside a caller's transaction a failed statement would abort it: a savepoint keeps the failure local.
    nested = transaction.atomic(using=using) if connection.in_atomic_block else contextlib.nullcontext()
    with nested, connection.cursor() as cursor:
        cursor.execute(sql, [*done.values(), comparison.sample_id, *params])
        (comparison.pk,) = cursor.fetchone()
    comparison._state.adding, comparison._state.db = False, using
