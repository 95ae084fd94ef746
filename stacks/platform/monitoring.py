"""Alarms and the dashboard: every alarm notifies one SNS topic; every capability adds its own widgets."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = Duration.minutes(1)
BACKLOG_AGE_SECONDS = 300


def _path_id(construct: Construct) -> str:
    """A construct id unique in the app, from the path of `construct` (ids are unique only among siblings)."""
    return "".join(part for part in construct.node.path.split("/")[1:] if part not in ("Queue", "Resource"))


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, alarm_email: str | None, namespace: str) -> None:
        super().__init__(scope, construct_id)
        self.namespace = namespace
        self.alarm_topic = sns.Topic(self, "AlarmTopic", display_name="IoT backend alarms", enforce_ssl=True)
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self._alarm_action = cloudwatch_actions.SnsAction(self.alarm_topic)
        self.alarms: list[cloudwatch.Alarm] = []

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, description: str, threshold: float = 1) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._alarm_action)
        alarm.add_ok_action(self._alarm_action)
        self.alarms.append(alarm)

    def alarm_on_dead_letters(self, queue: sqs.IQueue, purpose: str) -> None:
        depth = queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")
        self._alarm(f"{_path_id(queue)}Depth", depth, f"Messages are waiting in a dead-letter queue: {purpose}")
        self.dashboard.add_widgets(cloudwatch.GraphWidget(title=f"Dead letters: {purpose}", left=[depth], width=12))

    def alarm_on_backlog(self, queue: sqs.IQueue) -> None:
        age = queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum")
        self._alarm(
            f"{_path_id(queue)}Backlog",
            age,
            f"The oldest message has waited over {BACKLOG_AGE_SECONDS} s: consumers fall behind",
            threshold=BACKLOG_AGE_SECONDS,
        )

    def watch_function(self, function: lambda_.IFunction, name: str) -> None:
        errors = function.metric_errors(period=PERIOD, statistic="Sum")
        throttles = function.metric_throttles(period=PERIOD, statistic="Sum")
        self._alarm(f"{name}Errors", errors, f"{name} failed whole invocations")
        self._alarm(f"{name}Throttles", throttles, f"{name} was throttled")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{name}: invocations, errors, throttles",
                left=[function.metric_invocations(period=PERIOD), errors, throttles],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: duration",
                left=[function.metric_duration(period=PERIOD, statistic="p99")],
                width=12,
            ),
        )

    def watch_rule(self, rule_name: str) -> None:
        """ErrorActionFailure: a rule's action failed and so did its errorAction; the message is lost."""
        lost = cloudwatch.Metric(
            namespace="AWS/IoT",
            metric_name="ErrorActionFailure",
            dimensions_map={"RuleName": rule_name},
            period=PERIOD,
            statistic="Sum",
        )
        self._alarm(f"{rule_name}Lost", lost, f"Rule {rule_name} lost a message: its action and errorAction failed")

    def alarm_on_burst(self, construct_id: str, metric: cloudwatch.IMetric, description: str, threshold: float) -> None:
        """An alarm (to the alarm topic) when `metric` reaches `threshold` in one of its periods."""
        self._alarm(construct_id, metric, description, threshold=threshold)

    def graph_outcomes(self, title: str, service: str, outcomes: list[str]) -> None:
        """The counts a function reports with Powertools Metrics (one metric per outcome)."""
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=title,
                left=[
                    cloudwatch.Metric(
                        namespace=self.namespace,
                        metric_name=outcome,
                        dimensions_map={"service": service},
                        period=PERIOD,
                        statistic="Sum",
                    )
                    for outcome in outcomes
                ],
                width=24,
            )
        )
