#!/usr/bin/env python3
"""Checks every IAM permission in the SAM template against an explicit allow-list.

Usage:
    python tools/least_privilege.py template.yaml tools/least-privilege.yaml
    python tools/least_privilege.py --generate template.yaml > tools/least-privilege.yaml

What is checked, per resource that carries IAM permissions:
  * AWS::Serverless::Function and AWS::Serverless::StateMachine: the statements of their inline
    `Policies` documents. SAM policy templates (`DynamoDBCrudPolicy: ...`) and managed policy
    names/ARNs in `Policies` fail unless the allow-list names them for that resource.
  * AWS::IAM::RolePolicy, AWS::IAM::Policy, AWS::IAM::ManagedPolicy: their PolicyDocument (a YAML
    mapping, or a `!Sub` JSON string) and the roles they attach to.
  * AWS::IAM::Role: inline Policies[].PolicyDocument and ManagedPolicyArns.
  * What SAM grants by itself: function properties such as Role or DeadLetterQueue, polling event
    sources (`Events: {X: {Type: DynamoDB}}`: SAM attaches the AWS managed poller policy, whose
    stream or queue reads are on Resource "*") and their `DestinationConfig.OnFailure` with a
    Type (SAM adds a send policy for the Destination). Each fails unless the allow-list names it
    under ImplicitGrants (`Events.X:DynamoDB`, `Events.X.DestinationConfig.OnFailure:SQS:<dest>`).
    An AWS::Lambda::EventSourceMapping grants nothing itself: the function's own Policies must
    hold the stream reads and the destination send, and are checked as above.

Resource policies that keep everyone else from writing into the stack's resources (the allow-list's
ResourcePolicies): the table's ResourcePolicy, AWS::Events::EventBusPolicy (and an event bus's
Policy), AWS::SNS::TopicPolicy and a KMS key's KeyPolicy. Each must hold exactly the Deny statements
listed for it, to Principal "*"; an Allow in one fails (grants go through role policies, checked
above), except in a key policy, which must allow someone: its Allows must be exactly those listed
(`Allows`, with their Principal). The
exceptions a Deny makes through `aws:PrincipalArn` must be roles of the stack's functions
(`GetAtt:<Function>Role.Arn`) or parameters (`Ref:<Parameter>`), and the function roles excepted
from a Deny must be exactly those whose IAM policies allow one of its actions on the resource the
policy protects: a writer left out would be denied, a role excepted without a grant is an opening.

Every statement is split into single (When, Effect, Action, Resource, Condition) permissions, so
how statements are grouped does not matter, only what they allow:
  * a permission in the template that is not in the allow-list fails (a widened policy);
  * an Allow of `*` or of a whole service (`dynamodb:*`) fails, listed or not;
  * an Allow on Resource "*" fails unless the allow-list names that action under
    StarResourceActions for that resource;
  * NotAction / NotResource / Principal statements fail;
  * an allow-list Allow the template no longer has is a warning; a listed Deny that is gone
    fails (losing a Deny widens what the Allows grant).

Resources and condition values are compared as the expressions written in the template, not as
resolved ARNs: `!GetAtt RequestsTable.Arn` is `GetAtt:RequestsTable.Arn`, `!Sub x` is `Sub:x`,
`!Ref X` is `Ref:X`, a string inside a `!Sub` JSON policy document that has `${...}` in it is
`Sub:<string>`, plain strings are themselves, other intrinsics are `<Name>:<canonical JSON>`.
A statement that is one branch of `!If [Cond, stmt, !Ref AWS::NoValue]` carries `When: Cond`
(`When: "!Cond"` for the false branch).

Exit status: 0 when nothing failed, 1 otherwise (2 for usage errors).
"""

import argparse
import fnmatch
import json
import re
import sys

try:
    from cfnlint.decode import cfn_yaml
except ImportError:  # pragma: no cover - the Makefile runs this from the project venv
    sys.exit("least_privilege: cfn-lint is not installed; run `make venv` and use .venv/bin/python")
import yaml  # PyYAML, a dependency of cfn-lint

FUNCTION_TYPES = ("AWS::Serverless::Function",)
STATE_MACHINE_TYPES = ("AWS::Serverless::StateMachine",)
POLICY_TYPES = ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
ROLE_TYPES = ("AWS::IAM::Role",)
CHECKED_TYPES = FUNCTION_TYPES + STATE_MACHINE_TYPES + POLICY_TYPES + ROLE_TYPES

# Resource types and properties through which SAM or CloudFormation grant IAM permissions outside
# the documents checked here. Their presence fails unless the allow-list names it (ImplicitGrants).
UNCHECKED_RESOURCE_TYPES = ("AWS::Serverless::Connector", "AWS::IAM::User", "AWS::IAM::Group", "AWS::IAM::UserToGroupAddition")
IMPLICIT_GRANT_PROPERTIES = ("Role", "DeadLetterQueue", "EventInvokeConfig", "VpcConfig")
# SAM event sources whose poller permissions SAM adds to the function's role, with the AWS managed
# policy it attaches for them (None: SAM writes inline statements instead). A SAM DynamoDB event,
# for one, attaches service-role/AWSLambdaDynamoDBExecutionRole: DescribeStream, GetRecords,
# GetShardIterator and ListStreams on every stream in the account (Resource "*"). Declaring an
# AWS::Lambda::EventSourceMapping and granting the stream reads in the function's own Policies
# keeps them checkable here.
POLLING_EVENT_POLICIES = {
    "SQS": "service-role/AWSLambdaSQSQueueExecutionRole",
    "Kinesis": "service-role/AWSLambdaKinesisExecutionRole",
    "DynamoDB": "service-role/AWSLambdaDynamoDBExecutionRole",
    "MSK": "service-role/AWSLambdaMSKExecutionRole",
    "MQ": None,
    "SelfManagedKafka": None,
    "DocumentDB": None,
}
POLLING_EVENT_TYPES = tuple(POLLING_EVENT_POLICIES)
# A polling event's DestinationConfig.OnFailure with a Type makes SAM add an inline policy
# (`<Function><Event><Type>Policy`) for its Destination: sqs:SendMessage, sns:Publish or S3 writes.
DESTINATION_POLICY_TYPES = ("SQS", "SNS", "S3")

ENTRY_KEYS = {"Type", "Statements", "StarResourceActions", "PolicyTemplates", "ManagedPolicies", "Roles", "ImplicitGrants"}
STATEMENT_KEYS = {"When", "Effect", "Action", "Resource", "Condition"}

# Resource policies read here (the property holding the policy, and whether it is one statement).
# The allow-list's ResourcePolicies entries: Type and Denies (statements without Effect).
RESOURCE_POLICY_TYPES = {
    "AWS::DynamoDB::Table": ("ResourcePolicy.PolicyDocument", False),
    "AWS::Events::EventBus": ("Policy", False),
    "AWS::Events::EventBusPolicy": ("Statement", True),
    "AWS::SNS::TopicPolicy": ("PolicyDocument", False),
    "AWS::KMS::Key": ("KeyPolicy", False),
}
# A key policy must allow someone or nobody can use or manage the key: its Allows (the account's
# IAM delegation, a service such as CloudWatch) are checked as the allow-list lists them, exactly.
ALLOWING_RESOURCE_POLICY_TYPES = ("AWS::KMS::Key",)
RESOURCE_POLICY_KEYS = {"Type", "Allows", "Denies"}
DENY_KEYS = STATEMENT_KEYS - {"Effect"}
# Condition operators through which a Deny to "*" excepts the principals it lists.
EXCEPTING_OPERATORS = ("ArnNotEquals", "ArnNotLike", "StringNotEquals", "StringNotLike")


class Findings:
    def __init__(self):
        self.failures = []
        self.warnings = []

    def fail(self, message):
        self.failures.append(message)

    def warn(self, message):
        self.warnings.append(message)


# ---------------------------------------------------------------------------------------------
# Canonical forms


def plain(value):
    """cfn-lint's node classes as plain dicts, lists and strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def dumps(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def is_intrinsic(value):
    return isinstance(value, dict) and len(value) == 1 and (next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::"))


def render(value, in_sub=False):
    """One resource / action / condition value as a canonical string."""
    if isinstance(value, str):
        return "Sub:" + value if in_sub and "${" in value else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if is_intrinsic(value):
        (name, args), = value.items()
        if name == "Ref":
            return "Ref:" + str(args)
        if name == "Fn::GetAtt":
            return "GetAtt:" + (".".join(str(a) for a in args) if isinstance(args, list) else str(args))
        if name == "Fn::Sub":
            if isinstance(args, str):
                return "Sub:" + args
            if isinstance(args, list) and len(args) == 2:
                return "Sub:" + str(args[0]) + " " + dumps(render_tree(args[1]))
        return name.replace("Fn::", "") + ":" + dumps(render_tree(args))
    return "JSON:" + dumps(render_tree(value))


def render_tree(value, in_sub=False):
    """A structure with every intrinsic and string leaf rendered (for conditions and JSON forms)."""
    if isinstance(value, str) or is_intrinsic(value) or not isinstance(value, (dict, list)):
        return render(value, in_sub)
    if isinstance(value, list):
        return [render_tree(v, in_sub) for v in value]
    return {k: render_tree(v, in_sub) for k, v in value.items()}


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def condition_key(condition):
    """Canonical JSON of a rendered Condition: value lists sorted, scalars as one-element lists."""
    if condition in (None, {}):
        return ""
    if not isinstance(condition, dict):
        return dumps(condition)
    out = {}
    for op, block in condition.items():
        if isinstance(block, dict):
            out[op] = {k: sorted(str(v) for v in as_list(val)) for k, val in block.items()}
        else:
            out[op] = block
    return dumps(out)


# ---------------------------------------------------------------------------------------------
# Reading the template


def branches(element, guard=""):
    """Expands `!If [Cond, a, b]` elements into (guard, value) pairs, dropping AWS::NoValue."""
    if isinstance(element, dict) and list(element) == ["Fn::If"]:
        args = element["Fn::If"]
        if isinstance(args, list) and len(args) == 3 and isinstance(args[0], str):
            cond = args[0]
            out = []
            for sub_guard, value in ((cond, args[1]), ("!" + cond, args[2])):
                combined = sub_guard if not guard else guard + "&" + sub_guard
                out.extend(branches(value, combined))
            return out
    if element == {"Ref": "AWS::NoValue"}:
        return []
    return [(guard, element)]


def normalize_statement(stmt, in_sub, where, findings, guard=""):
    """A template statement as the allow-list writes it (Action/Resource sorted, rendered)."""
    if not isinstance(stmt, dict) or is_intrinsic(stmt):
        findings.fail(f"{where}: a statement that is not a plain mapping ({render(stmt)}); write it out explicitly")
        return None
    for key in ("NotAction", "NotResource", "Principal", "NotPrincipal"):
        if key in stmt:
            findings.fail(f"{where}: statement uses {key}, which the allow-list cannot bound; use Action/Resource")
            return None
    unknown = set(stmt) - {"Sid", "Effect", "Action", "Resource", "Condition"}
    if unknown:
        findings.fail(f"{where}: statement has unexpected keys {sorted(unknown)}")
    effect = stmt.get("Effect")
    if effect not in ("Allow", "Deny"):
        findings.fail(f"{where}: statement Effect is {effect!r}, not Allow or Deny")
        return None
    if "Action" not in stmt or "Resource" not in stmt:
        findings.fail(f"{where}: statement without Action or Resource")
        return None
    out = {}
    if guard:
        out["When"] = guard
    out["Effect"] = effect
    out["Action"] = sorted({render(a, in_sub) for a in as_list(stmt["Action"])})
    out["Resource"] = sorted({render(r, in_sub) for r in as_list(stmt["Resource"])})
    if stmt.get("Condition"):
        cond = render_tree(stmt["Condition"], in_sub)
        if isinstance(cond, dict):
            cond = {op: ({k: (sorted(v) if isinstance(v, list) else v) for k, v in blk.items()} if isinstance(blk, dict) else blk)
                    for op, blk in cond.items()}
        out["Condition"] = cond
    return out


def document_statements(doc, where, findings, guard=""):
    """Statements of a policy document: a mapping, or a `!Sub` JSON string."""
    in_sub = False
    if isinstance(doc, dict) and list(doc) == ["Fn::Sub"]:
        args = doc["Fn::Sub"]
        if isinstance(args, list):
            if len(args) == 2 and args[1]:
                findings.fail(f"{where}: a !Sub policy document with a variable map is not supported; use ${{}} references only")
                return []
            args = args[0]
        try:
            doc = json.loads(args)
        except (TypeError, ValueError) as e:
            findings.fail(f"{where}: the !Sub policy document is not JSON ({e})")
            return []
        in_sub = True
    elif isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError as e:
            findings.fail(f"{where}: the policy document string is not JSON ({e})")
            return []
    if not isinstance(doc, dict) or "Statement" not in doc:
        findings.fail(f"{where}: a policy document without Statement ({render(doc)})")
        return []
    out = []
    for element in as_list(doc["Statement"]):
        for sub_guard, stmt in branches(element, guard):
            s = normalize_statement(stmt, in_sub, where, findings, sub_guard)
            if s is not None:
                out.append(s)
    return out


def sam_policies(policies, where, findings):
    """A SAM `Policies` value: (statements, policy templates, managed policies)."""
    statements, templates, managed = [], [], []
    for guard, item in [b for element in as_list(policies) for b in branches(element)]:
        if isinstance(item, str) or (is_intrinsic(item) and list(item)[0] in ("Ref", "Fn::Sub", "Fn::Join", "Fn::ImportValue")):
            managed.append(render(item))
        elif isinstance(item, dict) and "Statement" in item:
            statements.extend(document_statements(item, where, findings, guard))
        elif isinstance(item, dict) and len(item) == 1 and not is_intrinsic(item):
            (name, params), = item.items()
            templates.append(name + ":" + dumps(render_tree(params)))
        else:
            findings.fail(f"{where}: unrecognised Policies entry {render(item)}")
    return statements, templates, managed


def function_roles(resources):
    """SAM names a function's generated role <LogicalId>Role."""
    return {name + "Role": name for name, r in resources.items() if r.get("Type") in FUNCTION_TYPES + STATE_MACHINE_TYPES}


def implicit_grants(name, resource, globals_function):
    props = resource.get("Properties") or {}
    found = []
    for prop in IMPLICIT_GRANT_PROPERTIES:
        if prop in props or (resource.get("Type") in FUNCTION_TYPES and prop in globals_function and prop != "Role"):
            found.append(prop)
    for event_name, event in (props.get("Events") or {}).items():
        if isinstance(event, dict) and event.get("Type") in POLLING_EVENT_TYPES:
            found.append(f"Events.{event_name}:{event['Type']}")
            found.extend(destination_grants(event_name, event))
    return found


def destination_grants(event_name, event):
    """`Events.<name>.DestinationConfig.OnFailure:<Type>:<Destination>` for the policy SAM adds for a
    polling event's on-failure destination, so that listing the event does not also allow sending
    its failures anywhere (a changed Destination is a new grant)."""
    destination = (((event.get("Properties") or {}).get("DestinationConfig")) or {})
    on_failure = destination.get("OnFailure") if isinstance(destination, dict) else None
    if not isinstance(on_failure, dict) or "Type" not in on_failure:
        return []
    dtype = on_failure.get("Type")
    dtype = dtype if isinstance(dtype, str) else render(dtype)
    return [f"Events.{event_name}.DestinationConfig.OnFailure:{dtype}:{render(on_failure.get('Destination'))}"]


def describe_implicit_grant(item):
    """What SAM adds for an ImplicitGrants item, for the failure message."""
    if item.startswith("Events.") and ".DestinationConfig." in item:
        return " (SAM adds an inline policy that lets the role send to that destination)"
    if item.startswith("Events.") and ":" in item:
        policy = POLLING_EVENT_POLICIES.get(item.rsplit(":", 1)[1])
        if policy:
            return f" (SAM attaches the managed policy {policy}, on Resource \"*\")"
        return " (SAM adds the poller's permissions to the role)"
    return ""


def read_template(path, findings):
    """{logical id: entry} in the allow-list's shape, for every resource that carries IAM grants."""
    try:
        template = plain(cfn_yaml.load(path))
    except Exception as e:  # cfn-lint raises several decode error types
        findings.fail(f"{path}: cannot be parsed: {e}")
        return {}
    resources = template.get("Resources") or {}
    globals_function = ((template.get("Globals") or {}).get("Function")) or {}
    roles = function_roles(resources)
    entries = {}
    for name, resource in resources.items():
        rtype = resource.get("Type")
        props = resource.get("Properties") or {}
        if rtype in UNCHECKED_RESOURCE_TYPES:
            findings.fail(f"{name}: {rtype} grants IAM permissions this check cannot bound; grant them through an explicit policy")
            continue
        if rtype not in CHECKED_TYPES:
            continue
        entry = {"Type": rtype}
        if rtype in FUNCTION_TYPES + STATE_MACHINE_TYPES:
            st, templates, managed = sam_policies(props.get("Policies"), name, findings)
            entry["Statements"] = st
            entry["PolicyTemplates"] = templates
            entry["ManagedPolicies"] = managed
            entry["ImplicitGrants"] = implicit_grants(name, resource, globals_function)
        elif rtype in POLICY_TYPES:
            entry["Statements"] = document_statements(props.get("PolicyDocument"), name, findings)
            entry["Roles"] = sorted(render(r) for r in as_list(props.get("RoleName")) + as_list(props.get("Roles")))
            for key in ("Users", "Groups"):
                if props.get(key):
                    findings.fail(f"{name}: attaches to IAM {key.lower()}, which the allow-list does not cover")
        else:  # AWS::IAM::Role
            st = []
            for guard, pol in [b for element in as_list(props.get("Policies")) for b in branches(element)]:
                st.extend(document_statements((pol or {}).get("PolicyDocument"), f"{name} policy {pol.get('PolicyName', '?')}", findings, guard))
            entry["Statements"] = st
            entry["ManagedPolicies"] = sorted(render(a) for a in as_list(props.get("ManagedPolicyArns")))
        entries[name] = entry
    entries["__roles__"] = roles
    return entries


def protected_resources(rtype, props, name):
    """Logical ids of the resources a resource policy guards (the table, bus or key itself, the topics)."""
    if rtype in ("AWS::DynamoDB::Table", "AWS::Events::EventBus", "AWS::KMS::Key"):
        return [name]
    targets = as_list(props.get("EventBusName")) if rtype == "AWS::Events::EventBusPolicy" else as_list(props.get("Topics"))
    return sorted(t["Ref"] for t in targets if isinstance(t, dict) and isinstance(t.get("Ref"), str))


def principal_exceptions(condition):
    """The values a Deny's Condition excepts through aws:PrincipalArn (rendered)."""
    out = []
    for op, block in (condition or {}).items():
        if op.replace("IfExists", "") in EXCEPTING_OPERATORS and isinstance(block, dict):
            for key, values in block.items():
                if key.lower() == "aws:principalarn":
                    out.extend(as_list(values))
    return out


def read_resource_policies(path, findings):
    """{logical id: {"Type", "Protects", "Denies"}} for every resource policy of the types read here,
    each Deny normalized as the allow-list writes it (without Effect)."""
    try:
        template = plain(cfn_yaml.load(path))
    except Exception as e:  # cfn-lint raises several decode error types
        findings.fail(f"{path}: cannot be parsed: {e}")
        return {}
    resources = template.get("Resources") or {}
    parameters = set(template.get("Parameters") or {})
    roles = function_roles(resources)
    out = {}
    for name, resource in resources.items():
        rtype = resource.get("Type")
        if rtype not in RESOURCE_POLICY_TYPES:
            continue
        props = resource.get("Properties") or {}
        prop, single = RESOURCE_POLICY_TYPES[rtype]
        doc = props
        for part in prop.split("."):
            doc = doc.get(part) if isinstance(doc, dict) else None
        if rtype == "AWS::Events::EventBusPolicy" and doc is None and props.get("Action"):
            findings.fail(f"{name}: grants {props.get('Action')} to {render(props.get('Principal'))}; resource policies may only Deny here")
            continue
        if doc is None:
            continue
        if single:
            doc = {"Statement": doc}
        elif isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except ValueError as e:
                findings.fail(f"{name}: the resource policy is not JSON ({e})")
                continue
        denies, allows = [], []
        for guard, stmt in [b for element in as_list((doc or {}).get("Statement")) for b in branches(element)]:
            if rtype in ALLOWING_RESOURCE_POLICY_TYPES and isinstance(stmt, dict) and stmt.get("Effect") == "Allow":
                body = {k: v for k, v in stmt.items() if k not in ("Sid", "Principal")}
                s = normalize_statement(body, False, name, findings, guard)
                if s is not None:
                    del s["Effect"]
                    s["Principal"] = render_tree(stmt.get("Principal"))
                    allows.append(s)
                continue
            if not isinstance(stmt, dict) or stmt.get("Effect") != "Deny":
                findings.fail(f"{name}: resource policy statement {render(stmt)} is not a Deny; grant through the functions' role policies")
                continue
            principal = stmt.get("Principal")
            if principal not in ("*", {"AWS": "*"}):
                findings.fail(f"{name}: a Deny to {render(principal)}; deny to Principal \"*\" and except the allowed roles in aws:PrincipalArn")
                continue
            body = {k: v for k, v in stmt.items() if k not in ("Sid", "Principal")}
            s = normalize_statement(body, False, name, findings, guard)
            if s is None:
                continue
            del s["Effect"]
            for value in principal_exceptions(s.get("Condition")):
                ok = (value.startswith("GetAtt:") and value.endswith(".Arn") and value[len("GetAtt:"):-len(".Arn")] in roles) \
                    or (value.startswith("Ref:") and value[len("Ref:"):] in parameters)
                if not ok:
                    findings.fail(f"{name}: its Deny of {', '.join(s['Action'])} excepts {value}, which is neither the role of one of "
                                  "the stack's functions (GetAtt:<Function>Role.Arn) nor a parameter")
            denies.append(s)
        out[name] = {"Type": rtype, "Protects": protected_resources(rtype, props, name), "Denies": denies}
        if rtype in ALLOWING_RESOURCE_POLICY_TYPES:
            out[name]["Allows"] = allows
    return out


def grants_by_role(template_entries, roles):
    """[(role expression, action, resource)] of every Allow, the role as a Deny excepts it."""
    out = []
    for name, entry in template_entries.items():
        if entry["Type"] in FUNCTION_TYPES + STATE_MACHINE_TYPES:
            holders = [f"GetAtt:{name}Role.Arn"]
        elif entry["Type"] in ROLE_TYPES:
            holders = [f"GetAtt:{name}.Arn"]
        else:
            holders = [f"GetAtt:{r[len('Ref:'):]}.Arn" for r in entry.get("Roles", []) if r.startswith("Ref:")]
        for s in entry.get("Statements", []):
            if s["Effect"] == "Allow":
                out.extend((h, a, r) for h in holders for a in s["Action"] for r in s["Resource"])
    return out


def mentions(resource, logical_ids):
    """Whether a rendered Resource is "*" or names one of the logical ids."""
    return resource == "*" or any(re.search(rf"(^|[:{{]){re.escape(i)}([.}}]|$)", resource) for i in logical_ids)


def canonical_allow(allow):
    """A key-policy Allow (the template's, as read above, or the allow-list's) in one form: Action,
    Resource and every Condition and Principal value as sorted lists, so `x` and `[x]` compare equal."""
    out = dict(allow)
    for key in ("Action", "Resource"):
        if key in out:
            out[key] = sorted(str(v) for v in as_list(out[key]))
    if isinstance(out.get("Condition"), dict):
        out["Condition"] = {op: ({k: sorted(str(v) for v in as_list(val)) for k, val in blk.items()} if isinstance(blk, dict) else blk)
                            for op, blk in out["Condition"].items()}
    if isinstance(out.get("Principal"), dict):
        out["Principal"] = {k: sorted(str(v) for v in as_list(val)) for k, val in out["Principal"].items()}
    return out


def compare_resource_policies(policies, allowed, template_entries, roles, findings):
    owner = {f"GetAtt:{role}.Arn": fn for role, fn in roles.items()}
    grants = grants_by_role(template_entries, roles)
    for name, policy in policies.items():
        listed = allowed.get(name)
        if listed is None:
            findings.fail(f"{name}: {policy['Type']} resource policy is not in the allow-list's ResourcePolicies; add its Denies there")
            listed = {}
        elif listed.get("Type") != policy["Type"]:
            findings.fail(f"{name}: is {policy['Type']} in the template but {listed.get('Type')} in the allow-list")
        have = explode([dict(s, Effect="Deny") for s in policy["Denies"]])
        want = explode([dict(s, Effect="Deny") for s in listed.get("Denies") or [] if isinstance(s, dict)])
        for perm in sorted(set(want) - set(have)):
            findings.fail(f"{name}: listed {describe(perm)} is missing from the template (a lost Deny lets whoever IAM allows in)")
        for perm in sorted(set(have) - set(want)):
            findings.fail(f"{name}: {describe(perm)} is not in the allow-list")
        have_allows = {dumps(canonical_allow(s)): s for s in policy.get("Allows", [])}
        want_allows = {dumps(canonical_allow(s)): s for s in listed.get("Allows") or [] if isinstance(s, dict)}
        for key in sorted(set(have_allows) - set(want_allows)):
            findings.fail(f"{name}: its Allow {dumps(have_allows[key])} is not in the allow-list")
        for key in sorted(set(want_allows) - set(have_allows)):
            findings.fail(f"{name}: listed Allow {dumps(want_allows[key])} is missing from the template")
        for deny in policy["Denies"]:
            excepted = {owner[v] for v in principal_exceptions(deny.get("Condition")) if v in owner}
            granted = {}
            for holder, action, res in grants:
                if mentions(res, policy["Protects"]) and any(
                        fnmatch.fnmatchcase(d.lower(), action.lower()) or fnmatch.fnmatchcase(action.lower(), d.lower())
                        for d in deny["Action"]):
                    granted.setdefault(owner.get(holder, holder), set()).add(action)
            for who in sorted(set(granted) - excepted):
                findings.fail(f"{name}: {who} is allowed {', '.join(sorted(granted[who]))} on {', '.join(policy['Protects'])}, "
                              f"but the Deny of {', '.join(deny['Action'])} does not except its role")
            for who in sorted(excepted - set(granted)):
                findings.fail(f"{name}: the Deny of {', '.join(deny['Action'])} excepts {who}'s role, which no policy allows any of them")
    for name in sorted(set(allowed) - set(policies)):
        findings.fail(f"{name}: listed resource policy is missing from the template (a lost Deny lets whoever IAM allows in)")


# ---------------------------------------------------------------------------------------------
# Comparing


def explode(statements):
    """{(When, Effect, Action, Resource, Condition key): Condition} for a list of statements."""
    out = {}
    for s in statements:
        ckey = condition_key(s.get("Condition"))
        for action in as_list(s.get("Action")):
            for res in as_list(s.get("Resource")):
                out[(s.get("When", ""), s.get("Effect"), action, res, ckey)] = s.get("Condition")
    return out


def describe(perm):
    when, effect, action, res, ckey = perm
    text = f"{effect} {action} on {res}"
    if ckey:
        text += f" with Condition {ckey}"
    if when:
        text += f" (when {when})"
    return text


def is_service_wildcard(action):
    return action.strip() == "*" or action.strip().endswith(":*")


def label(name, entry, roles):
    """`LifecycleGrantWritePolicy (on LifecycleFunction's role)` for policies on a function role."""
    owners = [roles[r[len("Ref:"):]] for r in entry.get("Roles", []) if r.startswith("Ref:") and r[len("Ref:"):] in roles]
    return f"{name} (on {', '.join(owners)}'s role)" if owners else name


def validate_allow_list(allowed, findings):
    entries = allowed.get("Resources") if isinstance(allowed, dict) else None
    if not isinstance(entries, dict):
        findings.fail("allow-list: expected a top-level `Resources:` mapping")
        return {}
    unknown = set(allowed) - {"Version", "Resources", "ResourcePolicies"}
    if unknown:
        findings.fail(f"allow-list: unknown top-level keys {sorted(unknown)}")
    policies = allowed.get("ResourcePolicies") or {}
    if not isinstance(policies, dict):
        findings.fail("allow-list: `ResourcePolicies:` must be a mapping")
        policies = {}
    for name, entry in policies.items():
        bad = set(entry) - RESOURCE_POLICY_KEYS if isinstance(entry, dict) else {"<not a mapping>"}
        if bad:
            findings.fail(f"allow-list ResourcePolicies {name}: unknown keys {sorted(bad)} (allowed: {sorted(RESOURCE_POLICY_KEYS)})")
            continue
        for s in entry.get("Denies") or []:
            bad = set(s) - DENY_KEYS if isinstance(s, dict) else {"<not a mapping>"}
            if bad:
                findings.fail(f"allow-list ResourcePolicies {name}: deny with unknown keys {sorted(bad)}")
        if entry.get("Allows") and entry.get("Type") not in ALLOWING_RESOURCE_POLICY_TYPES:
            findings.fail(f"allow-list ResourcePolicies {name}: a {entry.get('Type')} resource policy may hold no Allow")
        for s in entry.get("Allows") or []:
            bad = set(s) - (DENY_KEYS | {"Principal"}) if isinstance(s, dict) else {"<not a mapping>"}
            if bad:
                findings.fail(f"allow-list ResourcePolicies {name}: allow with unknown keys {sorted(bad)}")
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            findings.fail(f"allow-list {name}: expected a mapping")
            continue
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            findings.fail(f"allow-list {name}: unknown keys {sorted(unknown)} (allowed: {sorted(ENTRY_KEYS)})")
        for s in entry.get("Statements") or []:
            bad = set(s) - STATEMENT_KEYS if isinstance(s, dict) else {"<not a mapping>"}
            if bad:
                findings.fail(f"allow-list {name}: statement with unknown keys {sorted(bad)}")
    return entries


def compare(template_entries, allowed_entries, findings):
    roles = template_entries.pop("__roles__", {})
    for name, entry in template_entries.items():
        who = label(name, entry, roles)
        listed = allowed_entries.get(name)
        if listed is None:
            findings.fail(f"{who}: {entry['Type']} is not in the allow-list; add its permissions there")
            listed = {}
        elif listed.get("Type") != entry["Type"]:
            findings.fail(f"{who}: is {entry['Type']} in the template but {listed.get('Type')} in the allow-list")
        have = explode(entry.get("Statements", []))
        allow = explode([s for s in listed.get("Statements") or [] if isinstance(s, dict)])
        star_ok = listed.get("StarResourceActions") or {}
        for perm in sorted(have):
            when, effect, action, res, _ = perm
            if effect == "Allow" and is_service_wildcard(action):
                findings.fail(f"{who}: Allow of a wildcard action {action!r} on {res}; name the actions")
            if effect == "Allow" and res == "*" and action not in star_ok:
                findings.fail(f"{who}: {action} on Resource \"*\" is not marked allowed (StarResourceActions) for this resource")
            if perm not in allow:
                findings.fail(f"{who}: {describe(perm)} is not in the allow-list")
        for perm in sorted(set(allow) - set(have)):
            if perm[1] == "Deny":
                findings.fail(f"{who}: listed {describe(perm)} is missing from the template (a lost Deny widens the Allows)")
            else:
                findings.warn(f"{who}: listed {describe(perm)} is not in the template (list can be narrowed)")
        for key in ("PolicyTemplates", "ManagedPolicies", "ImplicitGrants"):
            have_set, allow_set = set(entry.get(key, [])), set(listed.get(key) or [])
            for item in sorted(have_set - allow_set):
                kind = {"PolicyTemplates": "SAM policy template", "ManagedPolicies": "managed policy",
                        "ImplicitGrants": "property that grants IAM permissions implicitly"}[key]
                detail = describe_implicit_grant(item) if key == "ImplicitGrants" else ""
                findings.fail(f"{who}: {kind} {item} is not in the allow-list ({key}){detail}")
            for item in sorted(allow_set - have_set):
                findings.warn(f"{who}: listed {key} entry {item} is not in the template")
        if "Roles" in entry and sorted(listed.get("Roles") or []) != entry["Roles"]:
            findings.fail(f"{who}: attached to {entry['Roles']}, the allow-list says {sorted(listed.get('Roles') or [])}")
    for name in sorted(set(allowed_entries) - set(template_entries)):
        findings.warn(f"{name}: in the allow-list but not in the template")


def check(template_path, allow_list_path):
    """Returns Findings for the template against the allow-list."""
    findings = Findings()
    try:
        with open(allow_list_path, encoding="utf-8") as f:
            allowed = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        findings.fail(f"{allow_list_path}: cannot be read: {e}")
        return findings
    allowed_entries = validate_allow_list(allowed, findings)
    template_entries = read_template(template_path, findings)
    if template_entries:
        roles = template_entries.get("__roles__", {})
        compare(template_entries, allowed_entries, findings)
        allowed_policies = (allowed.get("ResourcePolicies") if isinstance(allowed, dict) else None) or {}
        policies = read_resource_policies(template_path, findings)
        compare_resource_policies(policies, allowed_policies if isinstance(allowed_policies, dict) else {},
                                  template_entries, roles, findings)
    return findings


# ---------------------------------------------------------------------------------------------
# Generating a first allow-list


def generate(template_path):
    findings = Findings()
    entries = read_template(template_path, findings)
    entries.pop("__roles__", None)
    out = {"Version": 1, "Resources": {}}
    for name, entry in entries.items():
        e = {"Type": entry["Type"]}
        if entry.get("Roles"):
            e["Roles"] = entry["Roles"]
        e["Statements"] = entry.get("Statements", [])
        star = sorted({a for s in e["Statements"] if s["Effect"] == "Allow" and "*" in s["Resource"] for a in s["Action"]})
        if star:
            e["StarResourceActions"] = {a: "TODO: why this action cannot be scoped to a resource" for a in star}
        for key in ("PolicyTemplates", "ManagedPolicies", "ImplicitGrants"):
            if entry.get(key):
                e[key] = entry[key]
        out["Resources"][name] = e
    policies = read_resource_policies(template_path, findings)
    if policies:
        out["ResourcePolicies"] = {name: dict({"Type": p["Type"]}, **({"Allows": p["Allows"]} if "Allows" in p else {}),
                                              Denies=p["Denies"]) for name, p in policies.items()}
    for message in findings.failures:
        print(f"least_privilege: {message}", file=sys.stderr)
    return yaml.safe_dump(out, sort_keys=False, default_flow_style=False, width=200)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check the template's IAM permissions against an allow-list.")
    parser.add_argument("--generate", action="store_true", help="print an allow-list generated from the template")
    parser.add_argument("template")
    parser.add_argument("allow_list", nargs="?")
    args = parser.parse_args(argv)
    if args.generate:
        sys.stdout.write(generate(args.template))
        return 0
    if not args.allow_list:
        parser.error("the allow-list path is required")
    findings = check(args.template, args.allow_list)
    for message in findings.warnings:
        print(f"WARN {message}")
    for message in findings.failures:
        print(f"FAIL {message}")
    if findings.failures:
        print(f"least_privilege: {len(findings.failures)} failure(s): the template grants more than {args.allow_list} allows")
        return 1
    print(f"least_privilege: OK, every IAM permission in {args.template} is in {args.allow_list}"
          + (", and so are its resource policies' Denies" if read_resource_policies(args.template, Findings()) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
