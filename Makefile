SHELL=/bin/bash
LINT_PATHS=sb3_vpg/ tests/ benchmarks/ examples/ docs/conf.py docs/_ext/
TYPE_PATHS=sb3_vpg/ benchmarks/
# Everyday work: the tests that take seconds. The whole suite (`make pytest`) adds the statistical, exhaustive and
# integration tests.
FAST_TIER=not slow and not statistical and not integration and not exhaustive

pytest:
	python -m pytest

pytest-fast:
	python -m pytest -m "${FAST_TIER}"

type:
	mypy ${TYPE_PATHS} --exclude benchmarks/tests

lint:
	ruff check ${LINT_PATHS}

format:
	ruff check --select I --fix ${LINT_PATHS}
	ruff format ${LINT_PATHS}

check-codestyle:
	ruff check --select I ${LINT_PATHS}
	ruff format --check ${LINT_PATHS}

doc:
	sphinx-build -W --keep-going -b html docs docs/_build/html

linkcheck:
	sphinx-build -W --keep-going -b linkcheck -D linkcheck_ignore='^https?://' docs docs/_build/linkcheck

commit-checks: format type lint

.PHONY: pytest pytest-fast type lint format check-codestyle doc linkcheck commit-checks
