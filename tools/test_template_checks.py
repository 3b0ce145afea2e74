"""Tests for tools/template_checks.py: the real template passes; small inline templates pass or
fail as they should.

Run: .venv/bin/python -m unittest tools/test_template_checks.py -v   (from the repository root)

GOOD is the smallest template that passes: one function invoked by an EventBridge rule (with its
on-failure queue), one reading the table's stream, a table, a state machine and an HTTP API. Each
failing case changes one thing in its text.
"""

import os
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
TEMPLATE = os.path.join(ROOT, "template.yaml")
SCRIPT = os.path.join(TOOLS, "template_checks.py")

sys.path.insert(0, TOOLS)
import template_checks as tc  # noqa: E402

RETENTIONS = "[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]"


def alarm(name, namespace, metric, dimension, value, extra=""):
    return f"""
  {name}:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: {namespace}
      MetricName: {metric}
      Dimensions:
        - Name: {dimension}
          Value: {value}
      Statistic: {"Maximum" if metric in ("IteratorAge", "ApproximateNumberOfMessagesVisible") else "Sum"}
      Period: 300
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref Alerts]{extra}
"""


def function_alarms(fn):
    return (alarm(f"{fn}Errors", "AWS/Lambda", "Errors", "FunctionName", f"!Ref {fn}")
            + alarm(f"{fn}Throttles", "AWS/Lambda", "Throttles", "FunctionName", f"!Ref {fn}"))


GOOD = f"""
Transform: AWS::Serverless-2016-10-31
Parameters:
  LogRetentionDays:
    Type: Number
    Default: 365
    AllowedValues: {RETENTIONS}
  RecordRetentionDays:
    Type: Number
    Default: 365
    MinValue: 30
Resources:
  Alerts:
    Type: AWS::SNS::Topic
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TimeToLiveSpecification:
        AttributeName: expiresAt
        Enabled: true
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          JIT_RECORD_RETENTION_DAYS: !Ref RecordRetentionDays
      Policies:
        - Statement:
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt WorkerOnFailureQueue.Arn
      Events:
        OnEvent:
          Type: EventBridgeRule
          Properties:
            Pattern: {{source: [x]}}
  WorkerTablePolicy:
    Type: AWS::IAM::RolePolicy
    Properties:
      RoleName: !Ref WorkerRole
      PolicyName: table
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: [dynamodb:GetItem, dynamodb:PutItem]
            Resource: !GetAtt Table.Arn
  WorkerLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub /aws/lambda/${{Worker}}
      RetentionInDays: !Ref LogRetentionDays
  WorkerEventInvokeConfig:
    Type: AWS::Lambda::EventInvokeConfig
    Properties:
      FunctionName: !Ref Worker
      Qualifier: $LATEST
      DestinationConfig:
        OnFailure:
          Destination: !GetAtt WorkerOnFailureQueue.Arn
  WorkerOnFailureQueue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
      SqsManagedSseEnabled: true
{alarm("WorkerOnFailureAlarm", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "!GetAtt WorkerOnFailureQueue.QueueName")}
{function_alarms("Worker")}
  Relay:
    Type: AWS::Serverless::Function
    Properties:
      LoggingConfig:
        LogGroup: !Ref RelayLogGroup
  RelayLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: relay-logs
      RetentionInDays: !Ref LogRetentionDays
  RelayMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Relay
      EventSourceArn: !GetAtt Table.StreamArn
{function_alarms("Relay")}
{alarm("RelayIteratorAge", "AWS/Lambda", "IteratorAge", "FunctionName", "!Ref Relay")}
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Logging:
        Level: ERROR
        IncludeExecutionData: false
        Destinations:
          - CloudWatchLogsLogGroup:
              LogGroupArn: !GetAtt MachineLogGroup.Arn
      Policies:
        - Statement:
            - Effect: Allow
              Action:
                - logs:CreateLogDelivery
                - logs:GetLogDelivery
                - logs:UpdateLogDelivery
                - logs:DeleteLogDelivery
                - logs:ListLogDeliveries
                - logs:PutResourcePolicy
                - logs:DescribeResourcePolicies
                - logs:DescribeLogGroups
              Resource: "*"
  MachineLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: 30
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      AccessLogSettings:
        DestinationArn: !GetAtt ApiLogGroup.Arn
        Format: '{{"requestId":"$context.requestId","routeKey":"$context.routeKey","status":"$context.status"}}'
  ApiLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: !Ref LogRetentionDays
"""


class TemplateChecksTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def failures(self, text):
        path = os.path.join(self.tmp.name, "template.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return tc.check(tc.load(path))

    def variant(self, old, new, text=GOOD):
        self.assertEqual(text.count(old), 1, f"{old!r} is not once in the template; update this test")
        return text.replace(old, new)

    def assertFailsWith(self, text, *fragments):
        failures = self.failures(text)
        self.assertTrue(failures, "expected the checks to fail")
        joined = "\n".join(failures)
        for fragment in fragments:
            self.assertIn(fragment, joined)

    # The passing cases ---------------------------------------------------------------------------

    def test_the_real_template_passes(self):
        self.assertEqual(tc.check(tc.load(TEMPLATE)), [])

    def test_the_command_line_exits_0_for_the_real_template(self):
        run = subprocess.run([sys.executable, SCRIPT, TEMPLATE], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_the_real_template_without_an_on_failure_destination_fails(self):
        with open(TEMPLATE, encoding="utf-8") as f:
            text = f.read()
        start = text.index("\n  SweeperEventInvokeConfig:\n")
        end = text.index("\n  SweeperOnFailureQueue:\n")
        self.assertFailsWith(text[:start] + text[end:], "SweeperFunction: invoked asynchronously (event Sweep (Schedule))")

    def test_the_smallest_good_template_passes(self):
        self.assertEqual(self.failures(GOOD), [])

    def test_sams_event_invoke_config_property_with_a_named_queue_passes(self):
        # SAM grants the send itself when Type is SQS, so no sqs:SendMessage in Policies is needed.
        text = self.variant("""  WorkerEventInvokeConfig:
    Type: AWS::Lambda::EventInvokeConfig
    Properties:
      FunctionName: !Ref Worker
      Qualifier: $LATEST
      DestinationConfig:
        OnFailure:
          Destination: !GetAtt WorkerOnFailureQueue.Arn
""", "")
        text = self.variant("""      Policies:
        - Statement:
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt WorkerOnFailureQueue.Arn
""", """      EventInvokeConfig:
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: !GetAtt WorkerOnFailureQueue.Arn
""", text)
        self.assertEqual(self.failures(text), [])

    def test_a_function_called_only_synchronously_needs_no_on_failure_queue(self):
        text = self.variant("""      Events:
        OnEvent:
          Type: EventBridgeRule
          Properties:
            Pattern: {source: [x]}
""", """      Events:
        Get:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: /x
""")
        self.assertEqual(self.failures(text), [])

    # Log groups and retention --------------------------------------------------------------------

    def test_a_function_without_a_log_group_fails(self):
        text = self.variant("LogGroupName: !Sub /aws/lambda/${Worker}", "LogGroupName: /aws/lambda/something-else")
        self.assertFailsWith(text, "Worker: no log group of the template receives its logs")

    def test_a_function_log_group_with_a_hard_coded_retention_fails(self):
        text = self.variant("""      LogGroupName: !Sub /aws/lambda/${Worker}
      RetentionInDays: !Ref LogRetentionDays""", """      LogGroupName: !Sub /aws/lambda/${Worker}
      RetentionInDays: 365""")
        self.assertFailsWith(text, "WorkerLogGroup (Worker's log group): RetentionInDays is 365, not !Ref LogRetentionDays")

    def test_a_log_group_without_retention_fails(self):
        text = self.variant("""    Properties:
      RetentionInDays: 30
""", """    Properties:
      LogGroupName: machine
""")
        self.assertFailsWith(text, "MachineLogGroup: a log group without RetentionInDays")

    def test_a_retention_cloudwatch_does_not_accept_fails(self):
        text = self.variant("RetentionInDays: 30", "RetentionInDays: 31")
        self.assertFailsWith(text, "MachineLogGroup: RetentionInDays 31 is not a value CloudWatch Logs accepts")

    def test_the_log_retention_parameter_must_offer_cloudwatchs_values(self):
        text = self.variant(f"    AllowedValues: {RETENTIONS}\n", "    MinValue: 1\n")
        self.assertFailsWith(text, "LogRetentionDays's AllowedValues are not the values CloudWatch Logs accepts")
        text = self.variant("""  LogRetentionDays:
    Type: Number""", """  LogDays:
    Type: Number""")
        self.assertFailsWith(text, "Parameters: LogRetentionDays is missing", "RetentionInDays refers to LogRetentionDays, which is not a parameter")

    # On-failure destinations ---------------------------------------------------------------------

    def without_event_invoke_config(self):
        start = GOOD.index("  WorkerEventInvokeConfig:")
        end = GOOD.index("  WorkerOnFailureQueue:")
        return GOOD[:start] + GOOD[end:]

    def test_an_eventbridge_target_without_an_on_failure_destination_fails(self):
        self.assertFailsWith(self.without_event_invoke_config(),
                             "Worker: invoked asynchronously (event OnEvent (EventBridgeRule)) without an on-failure destination")

    def test_a_scheduled_function_without_an_on_failure_destination_fails(self):
        text = self.variant("""          Type: EventBridgeRule
          Properties:
            Pattern: {source: [x]}""", """          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)""", self.without_event_invoke_config())
        self.assertFailsWith(text, "Worker: invoked asynchronously (event OnEvent (Schedule))")

    def test_a_target_of_a_plain_rule_without_an_on_failure_destination_fails(self):
        text = self.without_event_invoke_config() + """
  Rule:
    Type: AWS::Events::Rule
    Properties:
      Targets:
        - Id: relay
          Arn: !GetAtt Relay.Arn
"""
        self.assertFailsWith(text, "Relay: invoked asynchronously (rule Rule) without an on-failure destination")

    def test_an_unencrypted_on_failure_queue_fails(self):
        text = self.variant("      SqsManagedSseEnabled: true\n", "      SqsManagedSseEnabled: false\n")
        self.assertFailsWith(text, "WorkerOnFailureQueue (Worker's on-failure queue): not encrypted")

    def test_a_kms_encrypted_on_failure_queue_passes(self):
        text = self.variant("      SqsManagedSseEnabled: true\n", "      KmsMasterKeyId: alias/aws/sqs\n")
        self.assertEqual(self.failures(text), [])

    def test_an_on_failure_queue_kept_less_than_14_days_fails(self):
        text = self.variant("MessageRetentionPeriod: 1209600", "MessageRetentionPeriod: 345600")
        self.assertFailsWith(text, "MessageRetentionPeriod is not 1209600 (14 days)")

    def test_an_on_failure_queue_without_an_alarm_fails(self):
        text = self.variant("Value: !GetAtt WorkerOnFailureQueue.QueueName", "Value: some-other-queue")
        self.assertFailsWith(text, "WorkerOnFailureQueue (Worker's on-failure queue): no alarm with AlarmActions")

    def test_an_on_failure_alarm_that_never_fires_on_one_message_fails(self):
        start = GOOD.index("  WorkerOnFailureAlarm:")
        end = GOOD.index("  WorkerErrors:")
        text = GOOD[:start] + GOOD[start:end].replace("Threshold: 1", "Threshold: 10") + GOOD[end:]
        self.assertFailsWith(text, "WorkerOnFailureQueue (Worker's on-failure queue): no alarm with AlarmActions")

    def test_an_on_failure_destination_that_is_not_a_queue_of_the_template_fails(self):
        text = self.variant("          Destination: !GetAtt WorkerOnFailureQueue.Arn",
                            "          Destination: arn:aws:sqs:us-east-1:111122223333:elsewhere")
        self.assertFailsWith(text, "WorkerEventInvokeConfig: the on-failure destination arn:aws:sqs:us-east-1:111122223333:elsewhere"
                                   " is not !GetAtt <queue>.Arn")

    def test_sams_own_on_failure_queue_fails(self):
        # Type SQS without Destination: SAM makes a queue of its own, unencrypted and unalarmed.
        text = self.variant("""      Policies:
        - Statement:
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt WorkerOnFailureQueue.Arn
""", """      EventInvokeConfig:
        DestinationConfig:
          OnFailure:
            Type: SQS
""", self.without_event_invoke_config())
        self.assertFailsWith(text, "Worker.EventInvokeConfig: an on-failure destination without Destination")

    def test_a_role_that_may_not_send_to_its_on_failure_queue_fails(self):
        text = self.variant("              Action: sqs:SendMessage\n", "              Action: sqs:GetQueueUrl\n")
        self.assertFailsWith(text, "Worker: its role may not sqs:SendMessage to its on-failure queue WorkerOnFailureQueue")

    def test_one_on_failure_queue_for_two_functions_fails(self):
        text = GOOD + """
  RelayEventInvokeConfig:
    Type: AWS::Lambda::EventInvokeConfig
    Properties:
      FunctionName: !Ref Relay
      Qualifier: $LATEST
      DestinationConfig:
        OnFailure:
          Destination: !GetAtt WorkerOnFailureQueue.Arn
  Rule:
    Type: AWS::Events::Rule
    Properties:
      Targets:
        - Id: relay
          Arn: !GetAtt Relay.Arn
"""
        self.assertFailsWith(text, "WorkerOnFailureQueue: the on-failure queue of several functions (Relay, Worker)",
                             "Relay: its role may not sqs:SendMessage to its on-failure queue WorkerOnFailureQueue")

    # Alarms --------------------------------------------------------------------------------------

    def test_a_function_without_an_errors_alarm_fails(self):
        text = self.variant("""  WorkerErrors:
    Type: AWS::CloudWatch::Alarm""", """  WorkerErrors:
    Type: AWS::CloudWatch::Dashboard""")
        self.assertFailsWith(text, "Worker: no alarm on its AWS/Lambda Errors (dimension FunctionName: !Ref Worker)")

    def test_a_function_without_a_throttles_alarm_fails(self):
        start = GOOD.index("  RelayThrottles:")
        end = GOOD.index("  RelayIteratorAge:")
        self.assertFailsWith(GOOD[:start] + GOOD[end:], "Relay: no alarm on its AWS/Lambda Throttles")

    def test_an_errors_alarm_that_breaches_on_missing_data_fails(self):
        start = GOOD.index("  WorkerErrors:")
        end = GOOD.index("  WorkerThrottles:")
        text = GOOD[:start] + GOOD[start:end].replace("TreatMissingData: notBreaching", "TreatMissingData: breaching") + GOOD[end:]
        self.assertFailsWith(text, "WorkerErrors: TreatMissingData is not notBreaching")

    def test_an_alarm_without_actions_fails(self):
        start = GOOD.index("  RelayErrors:")
        end = GOOD.index("  RelayThrottles:")
        text = GOOD[:start] + GOOD[start:end].replace("      AlarmActions: [!Ref Alerts]\n", "") + GOOD[end:]
        self.assertFailsWith(text, "RelayErrors: an alarm without AlarmActions tells no one")

    def test_a_stream_reader_without_an_iterator_age_alarm_fails(self):
        text = self.variant("MetricName: IteratorAge", "MetricName: Duration")
        self.assertFailsWith(text, "Relay: reads a stream (RelayMapping) without an alarm on its IteratorAge (Maximum)")

    def test_a_sam_stream_event_needs_an_iterator_age_alarm_too(self):
        text = self.variant("""      LoggingConfig:
        LogGroup: !Ref RelayLogGroup
""", """      LoggingConfig:
        LogGroup: !Ref RelayLogGroup
      Events:
        Stream:
          Type: Kinesis
          Properties:
            Stream: arn:aws:kinesis:us-east-1:111122223333:stream/s
""", self.variant("MetricName: IteratorAge", "MetricName: Duration"))
        self.assertFailsWith(text, "Relay: reads a stream (RelayMapping, event Stream) without an alarm on its IteratorAge")

    # State machine, API, table -------------------------------------------------------------------

    def test_a_state_machine_without_logging_fails(self):
        text = self.variant("      Logging:\n", "      NoLogging:\n")
        self.assertFailsWith(text, "Machine: no Logging")

    def test_a_state_machine_logging_execution_data_fails(self):
        text = self.variant("IncludeExecutionData: false", "IncludeExecutionData: true")
        self.assertFailsWith(text, "Machine: Logging.IncludeExecutionData must be false")

    def test_a_state_machine_logging_off_fails(self):
        text = self.variant("Level: ERROR", 'Level: "OFF"')
        self.assertFailsWith(text, "Machine: Logging.Level is OFF, not ALL, ERROR or FATAL")

    def test_a_state_machine_without_the_log_delivery_permissions_fails(self):
        text = self.variant("                - logs:PutResourcePolicy\n", "")
        self.assertFailsWith(text, "Machine: its Policies do not allow logs:PutResourcePolicy")

    def test_a_state_machine_logging_outside_the_template_fails(self):
        text = self.variant("LogGroupArn: !GetAtt MachineLogGroup.Arn", "LogGroupArn: arn:aws:logs:us-east-1:111122223333:log-group:x:*")
        self.assertFailsWith(text, "Machine: logs to arn:aws:logs:us-east-1:111122223333:log-group:x:*, not !GetAtt <log group>.Arn")

    def test_an_http_api_without_access_logs_fails(self):
        text = self.variant("      AccessLogSettings:\n", "      Other:\n")
        self.assertFailsWith(text, "Api: no AccessLogSettings")

    def test_an_access_log_with_the_raw_path_fails(self):
        text = self.variant('"routeKey":"$context.routeKey"', '"routeKey":"$context.routeKey","path":"$context.path"')
        self.assertFailsWith(text, "Api: the access log format logs $context.path, which carries mail-link tokens")

    def test_an_access_log_format_that_is_not_json_fails(self):
        text = self.variant("""        Format: '{"requestId":"$context.requestId","routeKey":"$context.routeKey","status":"$context.status"}'""",
                            """        Format: $context.requestId $context.routeKey $context.status""")
        self.assertFailsWith(text, "Api: AccessLogSettings.Format is not JSON")

    def test_an_access_log_without_the_route_key_fails(self):
        text = self.variant('"routeKey":"$context.routeKey",', "")
        self.assertFailsWith(text, "Api: the access log format does not log $context.routeKey")

    def test_a_table_without_ttl_fails(self):
        text = self.variant("AttributeName: expiresAt", "AttributeName: ttl")
        self.assertFailsWith(text, "Table: no TimeToLiveSpecification {AttributeName: expiresAt, Enabled: true}")
        text = self.variant("        Enabled: true\n", "        Enabled: false\n")
        self.assertFailsWith(text, "Table: no TimeToLiveSpecification")

    def test_a_table_writer_without_the_record_retention_fails(self):
        text = self.variant("          JIT_RECORD_RETENTION_DAYS: !Ref RecordRetentionDays\n", "          OTHER: x\n")
        self.assertFailsWith(text, "Worker: writes the table but its environment lacks JIT_RECORD_RETENTION_DAYS: !Ref RecordRetentionDays")

    def test_the_record_retention_from_globals_passes(self):
        text = self.variant("          JIT_RECORD_RETENTION_DAYS: !Ref RecordRetentionDays\n", "          OTHER: x\n")
        text = self.variant("Resources:\n", """Globals:
  Function:
    Environment:
      Variables:
        JIT_RECORD_RETENTION_DAYS: !Ref RecordRetentionDays
Resources:
""", text)
        self.assertEqual(self.failures(text), [])

    def test_the_record_retention_parameter_is_required(self):
        text = self.variant("  RecordRetentionDays:\n", "  RecordDays:\n")
        self.assertFailsWith(text, "Parameters: RecordRetentionDays is missing")

    def test_the_command_line_exits_1_for_a_failing_template(self):
        path = os.path.join(self.tmp.name, "bad.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.variant("AttributeName: expiresAt", "AttributeName: ttl"))
        run = subprocess.run([sys.executable, SCRIPT, path], capture_output=True, text=True)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("FAIL Table: no TimeToLiveSpecification", run.stdout)


if __name__ == "__main__":
    unittest.main()
