"""Pure Python: plan states and transitions, rollout schedule rules, health-rule vocabulary, statistics and
comparators. Nothing here imports Django, so it is unit-tested without a database."""
