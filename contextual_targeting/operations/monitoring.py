"""PipelineMonitoring: alarms to the notification topic and one CloudWatch dashboard for the pipeline.

Every alarm treats missing data as not breaching: an idle pipeline (no execution, no invocation, no segment)
publishes no data points and must stay quiet. Business figures come from the Lambdas as embedded-metric-format
lines (`lambda/shared/python/run_log.py`) in namespace METRICS_NAMESPACE, dimension `Pipeline` = stack name.

Plain `aws_cloudwatch` rather than cdk-monitoring-constructs (which fits the pinned versions): these are a
dozen threshold alarms with one meaning each and one dashboard, and the facade's defaults (its summary, detail
and alarm dashboards, its alarm naming) would have to be overridden at every call to get exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contextual_targeting.common.workflow_kit import METRICS_NAMESPACE
from contextual_targeting.operations.failures import WatchedWorkflow

PERIOD = cdk.Duration.minutes(5)
BUSINESS_PERIOD = cdk.Duration.hours(1)
WIDTH = 24


@dataclass(frozen=True, kw_only=True)
class WatchedFunction:
    """A Lambda function of the pipeline, with a readable name."""

    name: str
    function: lambda_.IFunction


@dataclass(frozen=True, kw_only=True)
class PipelineMonitoringProps:
    """What the alarms and the dashboard watch."""

    workflows: Sequence[WatchedWorkflow]
    functions: Sequence[WatchedFunction]
    dead_letter_queue: sqs.IQueue
    topic: sns.ITopic
    """Alarms notify this topic when they fire and when they recover."""
    customer_profiles: bool
    """Whether the Customer Profiles destination is deployed (its failed-records alarm and figures)."""


def business_metric(name: str, *, statistic: str = "Sum", period: cdk.Duration = PERIOD) -> cloudwatch.Metric:
    """A pipeline-wide business figure (dimension `Pipeline` only), as the Lambdas emit it."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"Pipeline": cdk.Aws.STACK_NAME},
        statistic=statistic,
        period=period,
    )


def per_segment(name: str, dimensions: Sequence[str], label: str) -> cloudwatch.MathExpression:
    """Every segment's value of a business figure (one line per segment, found by SEARCH)."""
    schema = ",".join([METRICS_NAMESPACE, "Pipeline", *dimensions])
    return cloudwatch.MathExpression(
        expression=(
            f'SEARCH(\'{{{schema}}} MetricName="{name}" Pipeline="{cdk.Aws.STACK_NAME}"\', '
            f"'Maximum', {int(BUSINESS_PERIOD.to_seconds())})"
        ),
        label=label,
        period=BUSINESS_PERIOD,
        using_metrics={},
    )


class PipelineMonitoring(Construct):
    """Alarms (failed/timed-out/aborted runs, Lambda errors and throttles, dead letters, failed records)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: PipelineMonitoringProps) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cloudwatch.Alarm] = []
        self._action = cw_actions.SnsAction(props.topic)

        for workflow in props.workflows:
            machine = workflow.machine
            ended_badly = cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
                using_metrics={
                    "failed": machine.metric_failed(period=PERIOD, statistic="Sum"),
                    "timedOut": machine.metric_timed_out(period=PERIOD, statistic="Sum"),
                    "aborted": machine.metric_aborted(period=PERIOD, statistic="Sum"),
                },
                label=f"{workflow.name}: executions failed, timed out or aborted",
                period=PERIOD,
            )
            self._alarm(
                f"{workflow.name} ended badly",
                ended_badly,
                f"contextual-targeting: at least one {workflow.name} execution FAILED, TIMED_OUT or ABORTED "
                "in 5 minutes. Its email (or the workflow's own report) names the execution and the error.",
            )
        for watched in props.functions:
            function = watched.function
            self._alarm(
                f"{watched.name} errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                f"contextual-targeting: the {watched.name} Lambda raised an error in 5 minutes; its JSON log "
                "lines carry the execution name and the stack trace.",
            )
            self._alarm(
                f"{watched.name} throttles",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                f"contextual-targeting: the {watched.name} Lambda was throttled in 5 minutes (the workflows "
                "retry; sustained throttling means the account's concurrency is exhausted).",
            )
        dead_letters = props.dead_letter_queue.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )
        self._alarm(
            "Dead letters",
            dead_letters,
            "contextual-targeting: EventBridge could not deliver an event (now in the dead-letter queue). "
            "Fix the cause, then run `contextual-targeting dead-letters --redrive`.",
        )
        if props.customer_profiles:
            self._alarm(
                "Customer Profiles failed records",
                business_metric("ProfilesFailed"),
                "contextual-targeting: a Customer Profiles upload job reported failed records; the upload's "
                "email names the job (GetUploadJob shows the reason per record).",
            )
        self.dashboard = self._dashboard(props, dead_letters)

    def _alarm(self, name: str, metric: cloudwatch.IMetric, description: str) -> None:
        """At least one occurrence in a period; no data (an idle pipeline) is fine."""
        alarm = cloudwatch.Alarm(
            self,
            f"{name} alarm".title().replace(" ", "").replace("/", ""),
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)

    def _dashboard(
        self, props: PipelineMonitoringProps, dead_letters: cloudwatch.IMetric
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=cdk.Duration.days(7))
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    "# contextual-targeting\nRuns per workflow, the Lambdas, undelivered events and the "
                    "business figures. Alarms notify the run-summary topic (docs/operations.md)."
                ),
                width=WIDTH,
                height=2,
            ),
            cloudwatch.AlarmStatusWidget(alarms=self.alarms, title="Alarms", width=WIDTH, height=3),
        )
        for workflow in props.workflows:
            machine = workflow.machine
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{workflow.name}: executions",
                    left=[
                        machine.metric_started(period=PERIOD, statistic="Sum", label="started"),
                        machine.metric_succeeded(period=PERIOD, statistic="Sum", label="succeeded"),
                        machine.metric_failed(period=PERIOD, statistic="Sum", label="failed"),
                        machine.metric_timed_out(period=PERIOD, statistic="Sum", label="timed out"),
                        machine.metric_aborted(period=PERIOD, statistic="Sum", label="aborted"),
                    ],
                    width=WIDTH // 2,
                ),
                cloudwatch.GraphWidget(
                    title=f"{workflow.name}: duration",
                    left=[
                        machine.metric_time(period=PERIOD, statistic="Average", label="average"),
                        machine.metric_time(period=PERIOD, statistic="Maximum", label="longest"),
                    ],
                    width=WIDTH // 2,
                ),
            )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles",
                left=[
                    f.function.metric_errors(period=PERIOD, statistic="Sum", label=f"{f.name} errors")
                    for f in props.functions
                ],
                right=[
                    f.function.metric_throttles(period=PERIOD, statistic="Sum", label=f"{f.name} throttles")
                    for f in props.functions
                ],
                width=WIDTH // 2,
            ),
            cloudwatch.GraphWidget(
                title="Lambda duration (p95)",
                left=[
                    f.function.metric_duration(period=PERIOD, statistic="p95", label=f.name)
                    for f in props.functions
                ],
                width=WIDTH // 2,
            ),
        )
        business: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title="Dead letters (events EventBridge could not deliver)",
                left=[dead_letters],
                width=WIDTH // 3,
            ),
            cloudwatch.GraphWidget(
                title="Users per segment",
                left=[per_segment("SegmentUsers", ["DatasetGroup", "Segment"], "users")],
                width=WIDTH // 3,
            ),
        ]
        if props.customer_profiles:
            business += [
                cloudwatch.GraphWidget(
                    title="Users without contact data, per segment",
                    left=[per_segment("UsersWithoutContact", ["DatasetGroup", "Segment"], "without contact")],
                    width=WIDTH // 3,
                ),
                cloudwatch.GraphWidget(
                    title="Customer Profiles: profiles uploaded and failed",
                    left=[
                        business_metric("ProfilesUploaded", period=BUSINESS_PERIOD).with_(label="uploaded"),
                        business_metric("ProfilesFailed", period=BUSINESS_PERIOD).with_(label="failed"),
                    ],
                    width=WIDTH // 3,
                ),
            ]
        dashboard.add_widgets(*business)
        return dashboard
