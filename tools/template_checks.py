#!/usr/bin/env python3
"""Observability and retention checks on the SAM template.

Usage:
    python tools/template_checks.py template.yaml

What must hold (each failure names the resource):
  * every AWS::Logs::LogGroup has a retention (a value CloudWatch Logs accepts, or a parameter);
  * every function (AWS::Serverless::Function, AWS::Lambda::Function) has a log group of the
    template, `/aws/lambda/${Function}` or the one its LoggingConfig.LogGroup names, kept
    `!Ref LogRetentionDays` (a Number parameter whose AllowedValues are CloudWatch Logs' values);
  * every function invoked asynchronously (SAM events EventBridgeRule, Schedule, SNS, S3 and the
    like; targets of AWS::Events::Rule and AWS::Scheduler::Schedule, SNS subscriptions, S3
    notifications) has an on-failure destination (SAM's EventInvokeConfig property or an
    AWS::Lambda::EventInvokeConfig) that is an SQS queue of the template of its own, encrypted
    (SqsManagedSseEnabled or a KMS key), keeping messages 14 days, that its role may send to,
    with an alarm on ApproximateNumberOfMessagesVisible above zero;
  * every function has an alarm on its AWS/Lambda Errors and one on its Throttles;
  * every function reading a stream (an event source mapping of a DynamoDB or Kinesis stream, or a
    SAM DynamoDB / Kinesis event) has an alarm on its IteratorAge (Maximum);
  * every alarm has AlarmActions; those above treat missing data as notBreaching;
  * every state machine logs (Level other than OFF, IncludeExecutionData false, a log group of the
    template), and a SAM state machine's Policies allow the log-delivery actions it needs;
  * every HTTP API (AWS::Serverless::HttpApi, AWS::ApiGatewayV2::Stage) has access logs to a log
    group of the template, in a JSON format that logs `$context.routeKey`, never `$context.path`
    (mail-link paths carry their token);
  * every DynamoDB table has TTL on `expiresAt`, the RecordRetentionDays parameter exists, and
    every function allowed to write a table gets `JIT_RECORD_RETENTION_DAYS: !Ref
    RecordRetentionDays`.

The template is read with tools/least_privilege.py's loader (cfn-lint's, which knows the short-form
tags !Ref, !GetAtt, !Sub) and its policy readers. Exit status: 0 when nothing failed, 1 otherwise.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import least_privilege as lp  # noqa: E402  (the loader and the policy readers)

LOG_RETENTION_PARAMETER = "LogRetentionDays"
RECORD_RETENTION_PARAMETER = "RecordRetentionDays"
RECORD_RETENTION_VARIABLE = "JIT_RECORD_RETENTION_DAYS"
TTL_ATTRIBUTE = "expiresAt"
# RetentionInDays values CloudWatch Logs accepts.
CLOUDWATCH_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                             2557, 2922, 3288, 3653)
ON_FAILURE_RETENTION_SECONDS = 14 * 24 * 3600

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
# SAM event sources that invoke the function asynchronously (Lambda's own retries and
# on-failure destinations apply), and those that read a stream.
ASYNC_EVENT_TYPES = ("EventBridgeRule", "CloudWatchEvent", "Schedule", "ScheduleV2", "SNS", "S3", "IoTRule",
                     "CloudWatchLogs")
STREAM_EVENT_TYPES = ("DynamoDB", "Kinesis")
# What Step Functions' documentation lists for a state machine's role to log to CloudWatch Logs.
STATE_MACHINE_LOG_ACTIONS = ("logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                             "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                             "logs:DescribeResourcePolicies", "logs:DescribeLogGroups")
TABLE_WRITES = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:PartiQLInsert",
                "dynamodb:PartiQLUpdate")
# Access log variables that may carry a secret: the raw path (/decide/{token}).
FORBIDDEN_ACCESS_LOG_VARIABLES = ("$context.path",)
REQUIRED_ACCESS_LOG_VARIABLES = ("$context.requestId", "$context.routeKey", "$context.status")


def load(path):
    """The template as plain dicts, lists and strings, intrinsics in their long form."""
    return lp.plain(lp.cfn_yaml.load(path))


# ---------------------------------------------------------------------------------------------
# Reading intrinsics


def ref(value):
    """X for `!Ref X`, else None."""
    if isinstance(value, dict) and list(value) == ["Ref"] and isinstance(value["Ref"], str):
        return value["Ref"]
    return None


def getatt(value):
    """(X, attribute) for `!GetAtt X.attribute`, else None."""
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        args = value["Fn::GetAtt"]
        if isinstance(args, str) and "." in args:
            args = args.split(".", 1)
        if isinstance(args, list) and len(args) == 2 and all(isinstance(a, str) for a in args):
            return args[0], args[1]
    return None


def sub_text(value):
    """The template string of `!Sub` (either form), else None."""
    if isinstance(value, dict) and list(value) == ["Fn::Sub"]:
        args = value["Fn::Sub"]
        if isinstance(args, list) and args and isinstance(args[0], str):
            return args[0]
        if isinstance(args, str):
            return args
    return None


def names_function(value, functions):
    """The function a target/endpoint value names (`!GetAtt F.Arn`, `!Ref F`, `${F.Arn}`), or None."""
    ga = getatt(value)
    if ga and ga[0] in functions and ga[1] == "Arn":
        return ga[0]
    r = ref(value)
    if r in functions:
        return r
    text = sub_text(value)
    if text:
        for f in functions:
            if "${" + f + ".Arn}" in text or text.strip() == "${" + f + "}":
                return f
    return None


def is_true(value):
    return value is True or (isinstance(value, str) and value.lower() == "true")


def is_false(value):
    return value is False or (isinstance(value, str) and value.lower() == "false")


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# The template's parts


class Template:
    def __init__(self, template):
        self.template = template if isinstance(template, dict) else {}
        self.resources = self.template.get("Resources") or {}
        self.parameters = self.template.get("Parameters") or {}
        self.globals_function = ((self.template.get("Globals") or {}).get("Function")) or {}
        self.failures = []

    def fail(self, message):
        self.failures.append(message)

    def of_type(self, *types):
        return {name: r for name, r in self.resources.items() if isinstance(r, dict) and r.get("Type") in types}

    def props(self, name):
        return (self.resources.get(name) or {}).get("Properties") or {}

    def functions(self):
        return self.of_type(*FUNCTION_TYPES)

    def function_property(self, name, key):
        """A function's property, SAM's Globals.Function filling in for SAM functions."""
        resource = self.resources[name]
        value = (resource.get("Properties") or {}).get(key)
        if value is None and resource.get("Type") == "AWS::Serverless::Function":
            value = self.globals_function.get(key)
        return value

    def alarms(self):
        return self.of_type("AWS::CloudWatch::Alarm")

    def alarms_on(self, namespace, metric, dimension, matches):
        """(name, properties) of the alarms on namespace/metric whose `dimension` value matches."""
        out = []
        for name, alarm in self.alarms().items():
            p = alarm.get("Properties") or {}
            if p.get("Namespace") != namespace or p.get("MetricName") != metric:
                continue
            for d in p.get("Dimensions") or []:
                if isinstance(d, dict) and d.get("Name") == dimension and matches(d.get("Value")):
                    out.append((name, p))
                    break
        return out

    def function_statements(self, name):
        """Every statement of the function's role: its own Policies and the role policies on
        `<Function>Role` (SAM's role name), as least_privilege normalizes them."""
        findings = lp.Findings()
        statements = []
        if self.resources[name].get("Type") == "AWS::Serverless::Function":
            statements, _, _ = lp.sam_policies(self.props(name).get("Policies"), name, findings)
        role = name + "Role"
        for policy_name, policy in self.of_type(*lp.POLICY_TYPES).items():
            p = policy.get("Properties") or {}
            attached = [ref(r) for r in lp.as_list(p.get("RoleName")) + lp.as_list(p.get("Roles"))]
            if role in attached:
                statements.extend(lp.document_statements(p.get("PolicyDocument"), policy_name, findings))
        return statements


def allows(statements, action, resource):
    """Whether an Allow among the normalized statements grants action on the rendered resource."""
    return any(s["Effect"] == "Allow" and action in s["Action"] and resource in s["Resource"] for s in statements)


# ---------------------------------------------------------------------------------------------
# Checks


def check_log_groups(t):
    for name, group in t.of_type("AWS::Logs::LogGroup").items():
        retention = (group.get("Properties") or {}).get("RetentionInDays")
        if retention is None:
            t.fail(f"{name}: a log group without RetentionInDays (kept forever)")
        elif ref(retention) is not None:
            if ref(retention) not in t.parameters:
                t.fail(f"{name}: RetentionInDays refers to {ref(retention)}, which is not a parameter")
        elif number(retention) not in CLOUDWATCH_RETENTION_DAYS:
            t.fail(f"{name}: RetentionInDays {lp.render(retention)} is not a value CloudWatch Logs accepts")


def check_log_retention_parameter(t):
    param = t.parameters.get(LOG_RETENTION_PARAMETER)
    if not isinstance(param, dict):
        t.fail(f"Parameters: {LOG_RETENTION_PARAMETER} is missing")
        return
    if param.get("Type") != "Number":
        t.fail(f"Parameters: {LOG_RETENTION_PARAMETER} is not a Number")
    allowed = sorted(number(v) for v in param.get("AllowedValues") or [])
    if allowed != sorted(float(v) for v in CLOUDWATCH_RETENTION_DAYS):
        t.fail(f"Parameters: {LOG_RETENTION_PARAMETER}'s AllowedValues are not the values CloudWatch Logs accepts")


def function_log_groups(t, name):
    """The template's log groups that receive the function's logs."""
    groups = t.of_type("AWS::Logs::LogGroup")
    logging = t.function_property(name, "LoggingConfig") or {}
    target = logging.get("LogGroup") if isinstance(logging, dict) else None
    found = []
    for gname, group in groups.items():
        group_name = (group.get("Properties") or {}).get("LogGroupName")
        if target is not None:
            if ref(target) == gname or (group_name is not None and group_name == target):
                found.append(gname)
        elif sub_text(group_name) == "/aws/lambda/${" + name + "}":
            found.append(gname)
    return found


def check_function_log_groups(t):
    for name in t.functions():
        groups = function_log_groups(t, name)
        if not groups:
            t.fail(f"{name}: no log group of the template receives its logs (an AWS::Logs::LogGroup named "
                   f"!Sub /aws/lambda/${{{name}}}, or one its LoggingConfig.LogGroup names)")
        for g in groups:
            retention = t.props(g).get("RetentionInDays")
            if ref(retention) != LOG_RETENTION_PARAMETER:
                t.fail(f"{g} ({name}'s log group): RetentionInDays is {lp.render(retention) if retention is not None else 'missing'},"
                       f" not !Ref {LOG_RETENTION_PARAMETER}")


def async_invokers(t):
    """{function: [what invokes it asynchronously]}."""
    functions = t.functions()
    out = {}
    for name, fn in functions.items():
        if fn.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in (t.props(name).get("Events") or {}).items():
            if isinstance(event, dict) and event.get("Type") in ASYNC_EVENT_TYPES:
                out.setdefault(name, []).append(f"event {event_name} ({event['Type']})")
    for rname, rule in t.of_type("AWS::Events::Rule").items():
        for target in (rule.get("Properties") or {}).get("Targets") or []:
            f = names_function((target or {}).get("Arn"), functions)
            if f:
                out.setdefault(f, []).append(f"rule {rname}")
    for sname, schedule in t.of_type("AWS::Scheduler::Schedule").items():
        f = names_function(((schedule.get("Properties") or {}).get("Target") or {}).get("Arn"), functions)
        if f:
            out.setdefault(f, []).append(f"schedule {sname}")
    for sname, sub in t.of_type("AWS::SNS::Subscription").items():
        p = sub.get("Properties") or {}
        f = names_function(p.get("Endpoint"), functions)
        if f and str(p.get("Protocol")).lower() == "lambda":
            out.setdefault(f, []).append(f"subscription {sname}")
    for tname, topic in t.of_type("AWS::SNS::Topic").items():
        for sub in (topic.get("Properties") or {}).get("Subscription") or []:
            f = names_function((sub or {}).get("Endpoint"), functions)
            if f and str((sub or {}).get("Protocol")).lower() == "lambda":
                out.setdefault(f, []).append(f"topic {tname}")
    for bname, bucket in t.of_type("AWS::S3::Bucket").items():
        notifications = (bucket.get("Properties") or {}).get("NotificationConfiguration") or {}
        for conf in notifications.get("LambdaConfigurations") or []:
            f = names_function((conf or {}).get("Function"), functions)
            if f:
                out.setdefault(f, []).append(f"bucket {bname}")
    return out


def on_failure_destinations(t, name):
    """[(where, destination, SAM Type or None)] of the function's asynchronous on-failure destinations."""
    out = []
    config = t.props(name).get("EventInvokeConfig") if t.resources[name].get("Type") == "AWS::Serverless::Function" else None
    if isinstance(config, dict):
        on_failure = ((config.get("DestinationConfig") or {}).get("OnFailure")) or {}
        if on_failure:
            out.append((f"{name}.EventInvokeConfig", on_failure.get("Destination"), on_failure.get("Type")))
    for cname, c in t.of_type("AWS::Lambda::EventInvokeConfig").items():
        p = c.get("Properties") or {}
        fn = p.get("FunctionName")
        if ref(fn) == name or getatt(fn) == (name, "Arn"):
            on_failure = ((p.get("DestinationConfig") or {}).get("OnFailure")) or {}
            if on_failure:
                out.append((cname, on_failure.get("Destination"), None))
    return out


def fires_above_zero(p):
    """Whether an alarm's threshold means 'more than zero' of a count."""
    op, threshold = p.get("ComparisonOperator"), number(p.get("Threshold"))
    if threshold is None:
        return False
    return (op == "GreaterThanThreshold" and 0 <= threshold < 1) or (op == "GreaterThanOrEqualToThreshold" and 0 < threshold <= 1)


def check_on_failure(t):
    queues = t.of_type("AWS::SQS::Queue")
    used = {}
    for name, invokers in sorted(async_invokers(t).items()):
        destinations = on_failure_destinations(t, name)
        if not destinations:
            t.fail(f"{name}: invoked asynchronously ({', '.join(invokers)}) without an on-failure destination "
                   "(EventInvokeConfig DestinationConfig.OnFailure)")
            continue
        for where, destination, sam_type in destinations:
            if destination is None:
                t.fail(f"{where}: an on-failure destination without Destination (SAM would make an unencrypted, "
                       "unalarmed queue); name a queue of the template")
                continue
            ga = getatt(destination)
            queue = ga[0] if ga and ga[1] == "Arn" and ga[0] in queues else None
            if queue is None:
                t.fail(f"{where}: the on-failure destination {lp.render(destination)} is not !GetAtt <queue>.Arn of an "
                       "AWS::SQS::Queue of the template")
                continue
            used.setdefault(queue, []).append(name)
            p = t.props(queue)
            if not (is_true(p.get("SqsManagedSseEnabled")) or p.get("KmsMasterKeyId")):
                t.fail(f"{queue} ({name}'s on-failure queue): not encrypted (SqsManagedSseEnabled: true or KmsMasterKeyId)")
            if number(p.get("MessageRetentionPeriod")) != ON_FAILURE_RETENTION_SECONDS:
                t.fail(f"{queue} ({name}'s on-failure queue): MessageRetentionPeriod is not {ON_FAILURE_RETENTION_SECONDS} (14 days)")
            alarms = [a for a in t.alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
                                             lambda v, q=queue: getatt(v) == (q, "QueueName"))
                      if fires_above_zero(a[1]) and a[1].get("AlarmActions")]
            if not alarms:
                t.fail(f"{queue} ({name}'s on-failure queue): no alarm with AlarmActions on its "
                       "ApproximateNumberOfMessagesVisible above zero")
            if sam_type != "SQS" and not allows(t.function_statements(name), "sqs:SendMessage", f"GetAtt:{queue}.Arn"):
                t.fail(f"{name}: its role may not sqs:SendMessage to its on-failure queue {queue} (Lambda sends with it)")
    for queue, owners in used.items():
        if len(set(owners)) > 1:
            t.fail(f"{queue}: the on-failure queue of several functions ({', '.join(sorted(set(owners)))}); give each its own")


def check_function_alarms(t):
    for name in t.functions():
        for metric in ("Errors", "Throttles"):
            alarms = t.alarms_on("AWS/Lambda", metric, "FunctionName", lambda v, n=name: ref(v) == n)
            if not alarms:
                t.fail(f"{name}: no alarm on its AWS/Lambda {metric} (dimension FunctionName: !Ref {name})")
            for aname, p in alarms:
                if p.get("TreatMissingData") != "notBreaching":
                    t.fail(f"{aname}: TreatMissingData is not notBreaching")


def stream_consumers(t):
    functions = t.functions()
    streams = set(t.of_type("AWS::Kinesis::Stream"))
    out = {}
    for mname, mapping in t.of_type("AWS::Lambda::EventSourceMapping").items():
        p = mapping.get("Properties") or {}
        ga = getatt(p.get("EventSourceArn"))
        if ga and (ga[1] == "StreamArn" or ga[0] in streams):
            f = names_function(p.get("FunctionName"), functions)
            if f:
                out.setdefault(f, []).append(mname)
    for name, fn in functions.items():
        if fn.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in (t.props(name).get("Events") or {}).items():
            if isinstance(event, dict) and event.get("Type") in STREAM_EVENT_TYPES:
                out.setdefault(name, []).append(f"event {event_name}")
    return out


def check_iterator_age(t):
    for name, sources in sorted(stream_consumers(t).items()):
        alarms = [a for a in t.alarms_on("AWS/Lambda", "IteratorAge", "FunctionName", lambda v, n=name: ref(v) == n)
                  if a[1].get("Statistic") == "Maximum"]
        if not alarms:
            t.fail(f"{name}: reads a stream ({', '.join(sources)}) without an alarm on its IteratorAge (Maximum)")


def check_alarm_actions(t):
    for name, alarm in t.alarms().items():
        if not (alarm.get("Properties") or {}).get("AlarmActions"):
            t.fail(f"{name}: an alarm without AlarmActions tells no one")


def log_group_of_template(t, arn):
    ga = getatt(arn)
    return ga[0] if ga and ga[1] == "Arn" and ga[0] in t.of_type("AWS::Logs::LogGroup") else None


def check_state_machines(t):
    for name, sm in t.of_type("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine").items():
        sam = sm.get("Type") == "AWS::Serverless::StateMachine"
        key = "Logging" if sam else "LoggingConfiguration"
        logging = t.props(name).get(key)
        if not isinstance(logging, dict):
            t.fail(f"{name}: no {key} (its executions' history is kept 90 days only, and nowhere for the log retention)")
            continue
        if logging.get("Level") not in ("ALL", "ERROR", "FATAL"):
            level = logging.get("Level")
            t.fail(f"{name}: {key}.Level is {lp.render(level) if level is not None else 'missing'}, not ALL, ERROR or FATAL")
        if not is_false(logging.get("IncludeExecutionData")):
            t.fail(f"{name}: {key}.IncludeExecutionData must be false (execution data names people)")
        destinations = logging.get("Destinations") or []
        if not destinations:
            t.fail(f"{name}: {key} without Destinations")
        for d in destinations:
            arn = ((d or {}).get("CloudWatchLogsLogGroup") or {}).get("LogGroupArn")
            if log_group_of_template(t, arn) is None:
                t.fail(f"{name}: logs to {lp.render(arn) if arn is not None else 'nothing'}, not !GetAtt <log group>.Arn "
                       "of an AWS::Logs::LogGroup of the template")
        if sam and "Role" not in t.props(name):
            statements, _, _ = lp.sam_policies(t.props(name).get("Policies"), name, lp.Findings())
            missing = [a for a in STATE_MACHINE_LOG_ACTIONS if not allows(statements, a, "*")]
            if missing:
                t.fail(f"{name}: its Policies do not allow {', '.join(missing)} on \"*\", which Step Functions needs to log")


def check_access_log_settings(t, name, settings):
    if not isinstance(settings, dict):
        t.fail(f"{name}: no AccessLogSettings (who called which route is not logged)")
        return
    if log_group_of_template(t, settings.get("DestinationArn")) is None:
        t.fail(f"{name}: AccessLogSettings.DestinationArn is not !GetAtt <log group>.Arn of an AWS::Logs::LogGroup of the template")
    fmt = settings.get("Format")
    if not isinstance(fmt, str):
        t.fail(f"{name}: AccessLogSettings.Format is not a string")
        return
    try:
        parsed = json.loads(fmt)
    except ValueError as e:
        t.fail(f"{name}: AccessLogSettings.Format is not JSON ({e})")
        parsed = None
    if parsed is not None and not isinstance(parsed, dict):
        t.fail(f"{name}: AccessLogSettings.Format is not a JSON object")
    for variable in FORBIDDEN_ACCESS_LOG_VARIABLES:
        # `$context.path` but not a longer variable that starts the same way.
        rest = fmt
        while variable in rest:
            after = rest[rest.index(variable) + len(variable):]
            if not (after[:1].isalnum() or after[:1] in "._"):
                t.fail(f"{name}: the access log format logs {variable}, which carries mail-link tokens; log $context.routeKey")
                break
            rest = after
    for variable in REQUIRED_ACCESS_LOG_VARIABLES:
        if variable not in fmt:
            t.fail(f"{name}: the access log format does not log {variable}")


def check_apis(t):
    for name in t.of_type("AWS::Serverless::HttpApi"):
        check_access_log_settings(t, name, t.props(name).get("AccessLogSettings"))
    for name in t.of_type("AWS::ApiGatewayV2::Stage"):
        check_access_log_settings(t, name, t.props(name).get("AccessLogSettings"))


def check_tables(t):
    tables = t.of_type("AWS::DynamoDB::Table")
    for name in tables:
        ttl = t.props(name).get("TimeToLiveSpecification") or {}
        if ttl.get("AttributeName") != TTL_ATTRIBUTE or not is_true(ttl.get("Enabled")):
            t.fail(f"{name}: no TimeToLiveSpecification {{AttributeName: {TTL_ATTRIBUTE}, Enabled: true}} (records are kept forever)")
    if not tables:
        return
    param = t.parameters.get(RECORD_RETENTION_PARAMETER)
    if not isinstance(param, dict):
        t.fail(f"Parameters: {RECORD_RETENTION_PARAMETER} is missing")
    else:
        if param.get("Type") != "Number":
            t.fail(f"Parameters: {RECORD_RETENTION_PARAMETER} is not a Number")
        if number(param.get("MinValue")) is None or number(param.get("MinValue")) < 1:
            t.fail(f"Parameters: {RECORD_RETENTION_PARAMETER} has no MinValue of at least 1")
    for name in t.functions():
        writes = [s for s in t.function_statements(name) if s["Effect"] == "Allow"
                  and any(a in TABLE_WRITES for a in s["Action"]) and any(lp.mentions(r, tables) for r in s["Resource"])]
        if not writes:
            continue
        env = t.function_property(name, "Environment") or {}
        variables = dict((t.globals_function.get("Environment") or {}).get("Variables") or {})
        variables.update((env.get("Variables") if isinstance(env, dict) else None) or {})
        if ref(variables.get(RECORD_RETENTION_VARIABLE)) != RECORD_RETENTION_PARAMETER:
            t.fail(f"{name}: writes the table but its environment lacks {RECORD_RETENTION_VARIABLE}: !Ref {RECORD_RETENTION_PARAMETER}")


CHECKS = (check_log_groups, check_log_retention_parameter, check_function_log_groups, check_on_failure,
          check_function_alarms, check_iterator_age, check_alarm_actions, check_state_machines, check_apis,
          check_tables)


def check(template):
    """Failure messages for a loaded template (see load)."""
    t = Template(template)
    for c in CHECKS:
        c(t)
    return t.failures


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: template_checks.py TEMPLATE", file=sys.stderr)
        return 2
    try:
        template = load(argv[0])
    except Exception as e:  # cfn-lint raises several decode error types
        print(f"FAIL {argv[0]}: cannot be parsed: {e}")
        return 1
    failures = check(template)
    for message in failures:
        print(f"FAIL {message}")
    if failures:
        print(f"template_checks: {len(failures)} failure(s) in {argv[0]}")
        return 1
    print(f"template_checks: OK, {argv[0]} has its log retention, alarms, on-failure queues, execution and access logs, and TTL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
