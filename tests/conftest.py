"""Shared fixtures: the stack synthesized once, with the feature flags of cdk.json."""

from __future__ import annotations

import os

import pytest
from aws_cdk.assertions import Template
from hypothesis import settings

from contextual_targeting.stack import ContextualTargetingSettings, ContextualTargetingStack
from tests.helpers import REPO, build_stack

# Property tests: `make test` runs the same bounded set of examples every time (derandomized, no example
# database), so a red run is reproducible; `HYPOTHESIS_PROFILE=thorough` searches far wider and at random.
settings.register_profile("bounded", derandomize=True, database=None, max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "bounded"))


@pytest.fixture(scope="session")
def stack() -> ContextualTargetingStack:
    """The default stack (no email; Customer Profiles, no Pinpoint destination)."""
    return build_stack()


@pytest.fixture(scope="session")
def template(stack: ContextualTargetingStack) -> Template:
    """Template of the default stack."""
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def full_stack() -> ContextualTargetingStack:
    """The stack with every option on: email subscription and both destinations."""
    return build_stack(
        ContextualTargetingSettings(
            email="marketing@example.com", destinations=("customer-profiles", "pinpoint")
        )
    )


@pytest.fixture(scope="session")
def full_template(full_stack: ContextualTargetingStack) -> Template:
    """Template of the stack with every option on."""
    return Template.from_stack(full_stack)


def _whole_suite(config: pytest.Config) -> bool:
    """Whether this run is the whole suite (`pytest` / `make test`), not a selection of tests."""
    selected = [str(arg) for arg in config.args]
    return (
        not config.option.keyword
        and not config.option.markexpr
        and all((config.invocation_params.dir / arg).resolve() == REPO / "tests" for arg in selected)
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The whole suite fails when a state of a synthesized workflow was never executed."""
    from contextual_targeting.local.harness import uncovered_states

    if exitstatus == 0 and _whole_suite(session.config) and uncovered_states():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List workflow states that no local execution entered: failure branches still to be proven."""
    from contextual_targeting.local.harness import uncovered_states

    report = uncovered_states()
    if report:
        terminalreporter.section("workflow states never executed")
        for workflow, missing in report:
            terminalreporter.line(f"{workflow} ...: {', '.join(missing)}")
        if _whole_suite(terminalreporter.config):
            terminalreporter.line(
                "Every state of a synthesized workflow must be executed by a test: the whole suite fails."
            )
