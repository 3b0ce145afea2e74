#!/usr/bin/env python3
"""Writes every IAM policy document of CloudFormation/SAM templates as plain JSON, for parliament.

Usage:
    python tools/template_iam_documents.py TEMPLATE... --out DIR [--stack-name NAME] [--parameter NAME=VALUE]...

Then `python tools/iam_lint.py DIR` lints them (`make iam-lint` runs both over template.yaml and
member-account.yaml, into target/iam-documents-template).

What is extracted, one JSON file per document, named <template>.<resource>.<policy>[.<variant>].json:
  * AWS::Serverless::Function and AWS::Serverless::StateMachine `Policies`: inline documents, and
    SAM policy templates (`SQSSendMessagePolicy: {QueueName: ...}`) expanded with SAM's own
    templates (samtranslator, installed with the SAM CLI: make iam-lint depends on it); a function's AssumeRolePolicyDocument.
    Managed policy names or ARNs are not documents of the template: printed as skipped.
  * AWS::IAM::Role (AssumeRolePolicyDocument, Policies), AWS::IAM::User and AWS::IAM::Group
    (Policies), AWS::IAM::RolePolicy, AWS::IAM::Policy and AWS::IAM::ManagedPolicy (PolicyDocument,
    a mapping or a JSON string). ManagedPolicyArns are printed as skipped.
  * Resource policies: AWS::KMS::Key / ReplicaKey KeyPolicy, AWS::DynamoDB::Table ResourcePolicy
    (and its stream's), AWS::DynamoDB::GlobalTable replicas' ResourcePolicy (and their streams'),
    AWS::Events::EventBus Policy, AWS::Events::EventBusPolicy (Statement, or the legacy
    Action/Principal form), AWS::SNS::TopicPolicy, AWS::SQS::QueuePolicy, AWS::S3::BucketPolicy,
    AWS::Logs::ResourcePolicy, AWS::SecretsManager::ResourcePolicy, AWS::ECR::Repository,
    AWS::ApiGateway::RestApi Policy, AWS::OpenSearchService::Domain / AWS::Elasticsearch::Domain
    AccessPolicies.
A property anywhere else whose name says it holds a policy (PolicyDocument, KeyPolicy,
ResourcePolicy, Policy, Policies, ...) fails: nothing is dropped silently.

Intrinsics are resolved to concrete, plausible values: pseudo parameters (partition aws, region
us-east-1, account 123456789012, the stack name), parameters to their Default (a parameter whose
Default is empty or missing gets a value of its shape from its name: *RoleArn(s), *TopicArn, *AccountId(s),
*IdentityStoreId; or from --parameter; otherwise the tool fails), Ref and GetAtt of each resource to a name or ARN of
the shape its type has (SAM's generated <Function>Role and <StateMachine>Role included), Fn::Sub
(both forms), Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::GetAZs, Fn::Base64, Fn::If and
AWS::NoValue. Fn::If: both branches are linted, as separate documents; a document whose Fn::Ifs
name conditions C1..Cn is written once per assignment of them, the variant named
`C1=true.C2=false` (the Conditions section is not evaluated: each branch is linted whatever the
defaults pick). A resource's own Condition is taken as true. Anything else (Fn::ImportValue,
Fn::GetAtt of an attribute whose shape is not known here, a Ref to nothing) fails loudly.

Policies parliament could not read as written, made explicit (and printed):
  * a trust policy (AssumeRolePolicyDocument) has no Resource: it governs the role, so each
    statement gets the role's ARN as its Resource, and parliament checks sts:AssumeRole and the
    like against the role resource type;
  * a resource policy statement without Resource, or with Resource "*", acts on the resource the
    policy is attached to (in a KMS key policy "*" is the key, in a DynamoDB resource policy the
    table): it is written with that resource's ARN, so parliament checks each action against the
    resource type it acts on instead of reporting Resource "*"; where the policy is attached to
    several resources, one document per resource;
  * an AWS::Events::EventBusPolicy's StatementId is not written as the statement's Sid: EventBridge
    allows hyphens in it that IAM's Sid grammar, which parliament applies, does not.

Exit status: 0 when every document was written, 1 when something could not be resolved or
extracted (the rest is still written), 2 for usage errors.
"""

import argparse
import base64
import hashlib
import json
import pathlib
import re
import sys
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import least_privilege  # noqa: E402  its cfn-lint YAML loader reads the short-form tags (!Sub, !If, ...)

PARTITION = "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
DEFAULT_STACK_NAME = "jit-node-access"
MAX_CONDITIONS = 6  # 2**6 variants of one document at most


class Unresolvable(Exception):
    """An intrinsic (or a template shape) this tool cannot turn into a concrete value."""


class NeedCondition(Exception):
    """Resolution reached an Fn::If on a condition the current variant has not assigned."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name


class _NoValue:
    def __repr__(self):
        return "AWS::NoValue"


NOVALUE = _NoValue()


def is_intrinsic(value):
    return isinstance(value, dict) and len(value) == 1 and (next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::"))


def suffix(logical_id, length=12):
    """A stable stand-in for the random suffix CloudFormation gives generated names."""
    return hashlib.sha1(logical_id.encode()).hexdigest()[:length].upper()


def plausible_parameter(name, ptype):
    """A value for a parameter whose Default is empty or missing, from its name; None if unknown."""
    is_list = ptype == "CommaDelimitedList" or ptype.startswith("List<")
    if re.search(r"AccountIds?$", name):
        return ["111122223333", "444455556666"] if is_list else ACCOUNT
    if re.search(r"IdentityStoreId$", name):
        return "d-1234567890"
    if re.search(r"RoleArns?$", name):
        base = f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"
        return [base + "-1", base + "-2"] if is_list else base
    if re.search(r"TopicArn$", name):
        return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name}"
    if re.search(r"Parameter(Name)?$", name):
        # An SSM parameter's name (optional ones are empty by default).
        return f"/jit-node-access/{name}"
    return None


# ---------------------------------------------------------------------------------------------
# Ref and GetAtt of resources

# Property holding a resource's physical name, when the template gives one.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Serverless::StateMachine": "Name",
    "AWS::SSM::Document": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::ECR::Repository": "RepositoryName",
}


class Template:
    def __init__(self, path, data, stack_name, overrides):
        self.path = path
        self.stem = pathlib.Path(path).stem
        self.stack_name = stack_name
        self.resources = dict(data.get("Resources") or {})
        self.parameters = data.get("Parameters") or {}
        self.mappings = data.get("Mappings") or {}
        self.conditions = set(data.get("Conditions") or {})
        self.overrides = overrides
        # SAM's generated execution roles, which the template may name (!GetAtt FooFunctionRole.Arn).
        self.generated = set()
        for name, resource in list(self.resources.items()):
            rtype = resource.get("Type")
            props = resource.get("Properties") or {}
            if rtype in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine") and not props.get("Role"):
                role = {"Type": "AWS::IAM::Role", "Properties": {}}
                if resource.get("Condition") is not None:
                    role["Condition"] = resource["Condition"]
                if name + "Role" not in self.resources:
                    self.resources[name + "Role"] = role
                    self.generated.add(name + "Role")

    def parameter(self, name):
        spec = self.parameters[name] or {}
        ptype = str(spec.get("Type", "String"))
        is_list = ptype == "CommaDelimitedList" or ptype.startswith("List<")
        if name in self.overrides:
            value = self.overrides[name]
        else:
            value = spec.get("Default")
            if value is None or value == "" or value == []:
                value = plausible_parameter(name, ptype)
                if value is None:
                    raise Unresolvable(f"parameter {name} has no default (or an empty one) and no plausible value is known; "
                                       f"pass --parameter {name}=VALUE")
        if is_list:
            if isinstance(value, list):
                return [str(v) for v in value]
            return [v.strip() for v in str(value).split(",")]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


class Resolver:
    """Resolves intrinsics of one template under one assignment of its conditions."""

    def __init__(self, template, assignment):
        self.t = template
        self.assignment = dict(assignment)
        self.stack = []

    # -- resources ------------------------------------------------------------------------------

    def resource(self, logical_id):
        resource = self.t.resources.get(logical_id)
        if resource is None:
            raise Unresolvable(f"no resource or parameter named {logical_id}")
        cond = resource.get("Condition")
        if isinstance(cond, str) and self.assignment.get(cond) is False:
            raise Unresolvable(f"{logical_id} does not exist when condition {cond} is false")
        return resource.get("Type"), resource.get("Properties") or {}

    def physical_name(self, logical_id, default=None):
        rtype, props = self.resource(logical_id)
        prop = NAME_PROPERTIES.get(rtype)
        if prop and props.get(prop) is not None:
            key = ("name", logical_id)
            if key in self.stack:
                raise Unresolvable(f"the name of {logical_id} depends on itself")
            self.stack.append(key)
            try:
                value = self.resolve(props[prop])
            finally:
                self.stack.pop()
            if not isinstance(value, str):
                raise Unresolvable(f"the {prop} of {logical_id} does not resolve to a string")
            return value
        if default is not None:
            return default
        return f"{self.t.stack_name}-{logical_id}-{suffix(logical_id)}"[:64]

    def ref(self, name):
        if name in PSEUDO_NAMES:
            return self.pseudo(name)
        if name in self.t.parameters:
            return self.t.parameter(name)
        rtype, props = self.resource(name)
        p, r, a = PARTITION, REGION, ACCOUNT
        if rtype in ("AWS::SNS::Topic",):
            return f"arn:{p}:sns:{r}:{a}:{self.physical_name(name)}"
        if rtype in ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine"):
            return f"arn:{p}:states:{r}:{a}:stateMachine:{self.physical_name(name)}"
        if rtype == "AWS::SQS::Queue":
            return f"https://sqs.{r}.amazonaws.com/{a}/{self.queue_name(name)}"
        if rtype in ("AWS::KMS::Key", "AWS::KMS::ReplicaKey"):
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.t.stem}/{name}"))
        if rtype == "AWS::IAM::ManagedPolicy":
            return f"arn:{p}:iam::{a}:policy/{self.physical_name(name)}"
        if rtype == "AWS::SecretsManager::Secret":
            return f"arn:{p}:secretsmanager:{r}:{a}:secret:{self.physical_name(name)}-AbCdEf"
        if rtype in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api", "AWS::ApiGatewayV2::Api", "AWS::ApiGateway::RestApi"):
            return suffix(name, 10).lower()
        if rtype in ("AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"):
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.t.stem}/{name}"))
        if rtype == "AWS::Events::EventBus":
            return self.physical_name(name)
        if rtype == "AWS::Events::Rule":
            bus = self.rule_bus(props)
            return self.physical_name(name) if bus == "default" else f"{bus}|{self.physical_name(name)}"
        if rtype in NAME_PROPERTIES:
            return self.physical_name(name)
        raise Unresolvable(f"!Ref {name}: the value of a {rtype} is not known here")

    def queue_name(self, logical_id):
        _, props = self.resource(logical_id)
        name = self.physical_name(logical_id, f"{self.t.stack_name}-{logical_id}-{suffix(logical_id)}"[:80])
        if props.get("FifoQueue") is True and not name.endswith(".fifo"):
            name += ".fifo"
        return name

    def rule_bus(self, props):
        bus = props.get("EventBusName")
        if bus is None:
            return "default"
        bus = self.resolve(bus)
        return bus.rsplit("/", 1)[-1] if bus.startswith("arn:") else bus

    def role_arn(self, logical_id):
        _, props = self.resource(logical_id)
        path = self.resolve(props["Path"]) if props.get("Path") is not None else "/"
        return f"arn:{PARTITION}:iam::{ACCOUNT}:role{path}{self.physical_name(logical_id)}"

    def getatt(self, logical_id, attr):
        rtype, props = self.resource(logical_id)
        p, r, a = PARTITION, REGION, ACCOUNT
        shapes = {
            ("AWS::DynamoDB::Table", "Arn"): lambda: f"arn:{p}:dynamodb:{r}:{a}:table/{self.physical_name(logical_id)}",
            ("AWS::DynamoDB::Table", "StreamArn"): lambda: f"arn:{p}:dynamodb:{r}:{a}:table/{self.physical_name(logical_id)}/stream/2024-01-01T00:00:00.000",
            ("AWS::DynamoDB::GlobalTable", "Arn"): lambda: f"arn:{p}:dynamodb:{r}:{a}:table/{self.physical_name(logical_id)}",
            ("AWS::DynamoDB::GlobalTable", "StreamArn"): lambda: f"arn:{p}:dynamodb:{r}:{a}:table/{self.physical_name(logical_id)}/stream/2024-01-01T00:00:00.000",
            ("AWS::KMS::Key", "Arn"): lambda: f"arn:{p}:kms:{r}:{a}:key/{self.ref(logical_id)}",
            ("AWS::KMS::Key", "KeyId"): lambda: self.ref(logical_id),
            ("AWS::KMS::ReplicaKey", "Arn"): lambda: f"arn:{p}:kms:{r}:{a}:key/{self.ref(logical_id)}",
            ("AWS::KMS::ReplicaKey", "KeyId"): lambda: self.ref(logical_id),
            ("AWS::SQS::Queue", "Arn"): lambda: f"arn:{p}:sqs:{r}:{a}:{self.queue_name(logical_id)}",
            ("AWS::SQS::Queue", "QueueName"): lambda: self.queue_name(logical_id),
            ("AWS::SQS::Queue", "QueueUrl"): lambda: self.ref(logical_id),
            ("AWS::SNS::Topic", "TopicArn"): lambda: self.ref(logical_id),
            ("AWS::SNS::Topic", "TopicName"): lambda: self.physical_name(logical_id),
            ("AWS::Lambda::Function", "Arn"): lambda: f"arn:{p}:lambda:{r}:{a}:function:{self.physical_name(logical_id)}",
            ("AWS::Serverless::Function", "Arn"): lambda: f"arn:{p}:lambda:{r}:{a}:function:{self.physical_name(logical_id)}",
            ("AWS::IAM::Role", "Arn"): lambda: self.role_arn(logical_id),
            ("AWS::IAM::Role", "RoleId"): lambda: "AROA" + suffix(logical_id, 17),
            ("AWS::IAM::User", "Arn"): lambda: f"arn:{p}:iam::{a}:user/{self.physical_name(logical_id)}",
            ("AWS::IAM::Group", "Arn"): lambda: f"arn:{p}:iam::{a}:group/{self.physical_name(logical_id)}",
            ("AWS::IAM::InstanceProfile", "Arn"): lambda: f"arn:{p}:iam::{a}:instance-profile/{self.physical_name(logical_id)}",
            ("AWS::IAM::ManagedPolicy", "PolicyArn"): lambda: self.ref(logical_id),
            ("AWS::Logs::LogGroup", "Arn"): lambda: f"arn:{p}:logs:{r}:{a}:log-group:{self.physical_name(logical_id)}:*",
            ("AWS::Events::EventBus", "Arn"): lambda: f"arn:{p}:events:{r}:{a}:event-bus/{self.physical_name(logical_id)}",
            ("AWS::Events::EventBus", "Name"): lambda: self.physical_name(logical_id),
            ("AWS::Events::Rule", "Arn"): lambda: self.rule_arn(logical_id, props),
            ("AWS::StepFunctions::StateMachine", "Arn"): lambda: self.ref(logical_id),
            ("AWS::StepFunctions::StateMachine", "Name"): lambda: self.physical_name(logical_id),
            ("AWS::Serverless::StateMachine", "Arn"): lambda: self.ref(logical_id),
            ("AWS::Serverless::StateMachine", "Name"): lambda: self.physical_name(logical_id),
            ("AWS::S3::Bucket", "Arn"): lambda: f"arn:{p}:s3:::{self.physical_name(logical_id).lower()}",
            ("AWS::S3::Bucket", "DomainName"): lambda: f"{self.physical_name(logical_id).lower()}.s3.amazonaws.com",
            ("AWS::CloudWatch::Alarm", "Arn"): lambda: f"arn:{p}:cloudwatch:{r}:{a}:alarm:{self.physical_name(logical_id)}",
            ("AWS::SSM::Parameter", "Type"): lambda: "String",
            ("AWS::Serverless::HttpApi", "ApiEndpoint"): lambda: f"https://{self.ref(logical_id)}.execute-api.{r}.amazonaws.com",
            ("AWS::ApiGatewayV2::Api", "ApiEndpoint"): lambda: f"https://{self.ref(logical_id)}.execute-api.{r}.amazonaws.com",
            ("AWS::ApiGatewayV2::Api", "ApiId"): lambda: self.ref(logical_id),
            ("AWS::ECR::Repository", "Arn"): lambda: f"arn:{p}:ecr:{r}:{a}:repository/{self.physical_name(logical_id)}",
            ("AWS::SecretsManager::Secret", "Id"): lambda: self.ref(logical_id),
        }
        shape = shapes.get((rtype, attr))
        if shape is None:
            raise Unresolvable(f"!GetAtt {logical_id}.{attr}: the {attr} of a {rtype} is not known here")
        return shape()

    def rule_arn(self, logical_id, props):
        bus = self.rule_bus(props)
        name = self.physical_name(logical_id)
        prefix = "" if bus == "default" else bus + "/"
        return f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{prefix}{name}"

    def pseudo(self, name):
        if name == "AWS::NoValue":
            return NOVALUE
        if name == "AWS::StackName":
            return self.t.stack_name
        if name == "AWS::StackId":
            return f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{self.t.stack_name}/{uuid.uuid5(uuid.NAMESPACE_URL, self.t.stack_name)}"
        if name == "AWS::NotificationARNs":
            return []
        return PSEUDO[name]

    # -- intrinsics -----------------------------------------------------------------------------

    def resolve(self, value):
        """The value with every intrinsic resolved; NOVALUE where AWS::NoValue leaves nothing."""
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NOVALUE]
        if not isinstance(value, dict):
            return value
        if not is_intrinsic(value):
            out = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not NOVALUE}
        (fn, args), = value.items()
        handler = INTRINSICS.get(fn)
        if handler is None:
            raise Unresolvable(f"{fn} cannot be resolved to a concrete value here")
        return handler(self, args)

    def resolve_string(self, value, what):
        out = self.resolve(value)
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            return str(out)
        if not isinstance(out, str):
            raise Unresolvable(f"{what} must resolve to a string, not {json.dumps(out)}")
        return out

    def fn_ref(self, args):
        if not isinstance(args, str):
            raise Unresolvable(f"Ref takes a name, not {json.dumps(args)}")
        return self.ref(args)

    def fn_getatt(self, args):
        if isinstance(args, str):
            logical_id, _, attr = args.partition(".")
        elif isinstance(args, list) and len(args) == 2:
            logical_id, attr = args[0], self.resolve_string(args[1], "the attribute of Fn::GetAtt")
        else:
            raise Unresolvable(f"Fn::GetAtt takes [resource, attribute], not {json.dumps(args)}")
        if not attr:
            raise Unresolvable(f"Fn::GetAtt {logical_id}: no attribute")
        return self.getatt(logical_id, attr)

    def fn_sub(self, args):
        if isinstance(args, str):
            text, variables = args, {}
        elif isinstance(args, list) and len(args) == 2 and isinstance(args[1], dict):
            text = args[0]
            variables = {k: self.resolve(v) for k, v in args[1].items()}
        else:
            raise Unresolvable(f"Fn::Sub takes a string or [string, variables], not {json.dumps(args)}")
        if not isinstance(text, str):
            raise Unresolvable(f"the string of Fn::Sub must be literal, not {json.dumps(text)}")

        def substitute(m):
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            name = inner.strip()
            if name in variables:
                v = variables[name]
            elif name in PSEUDO_NAMES or name in self.t.parameters or name in self.t.resources:
                v = self.ref(name)
            elif "." in name:
                logical_id, _, attr = name.partition(".")
                v = self.getatt(logical_id, attr)
            else:
                raise Unresolvable(f"Fn::Sub: ${{{name}}} names no variable, parameter or resource")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v)
            if not isinstance(v, str):
                raise Unresolvable(f"Fn::Sub: ${{{name}}} is not a string ({json.dumps(v) if v is not NOVALUE else 'AWS::NoValue'})")
            return v

        return re.sub(r"\$\{([^}]*)\}", substitute, text)

    def fn_join(self, args):
        if not (isinstance(args, list) and len(args) == 2):
            raise Unresolvable(f"Fn::Join takes [delimiter, list], not {json.dumps(args)}")
        delimiter = self.resolve_string(args[0], "the delimiter of Fn::Join")
        items = self.resolve(args[1])
        if not isinstance(items, list):
            raise Unresolvable(f"Fn::Join: {json.dumps(items)} is not a list")
        return delimiter.join(self.resolve_string(i, "an item of Fn::Join") for i in items)

    def fn_select(self, args):
        if not (isinstance(args, list) and len(args) == 2):
            raise Unresolvable(f"Fn::Select takes [index, list], not {json.dumps(args)}")
        index = self.resolve_string(args[0], "the index of Fn::Select")
        if not index.isdigit():
            raise Unresolvable(f"Fn::Select: the index {index!r} is not a number")
        index = int(index)
        items = self.resolve(args[1])
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise Unresolvable(f"Fn::Select: no item {index} in {json.dumps(items)}")
        return items[index]

    def fn_split(self, args):
        if not (isinstance(args, list) and len(args) == 2):
            raise Unresolvable(f"Fn::Split takes [delimiter, string], not {json.dumps(args)}")
        delimiter = self.resolve_string(args[0], "the delimiter of Fn::Split")
        return self.resolve_string(args[1], "the string of Fn::Split").split(delimiter)

    def fn_if(self, args):
        if not (isinstance(args, list) and len(args) == 3 and isinstance(args[0], str)):
            raise Unresolvable(f"Fn::If takes [condition, then, else], not {json.dumps(args)}")
        name = args[0]
        if name not in self.t.conditions:
            raise Unresolvable(f"Fn::If: no condition named {name}")
        if name not in self.assignment:
            raise NeedCondition(name)
        return self.resolve(args[1] if self.assignment[name] else args[2])

    def fn_find_in_map(self, args):
        if not (isinstance(args, list) and len(args) in (3, 4)):
            raise Unresolvable(f"Fn::FindInMap takes [map, key, key], not {json.dumps(args)}")
        keys = [self.resolve_string(a, "a key of Fn::FindInMap") for a in args[:3]]
        try:
            return self.resolve(self.t.mappings[keys[0]][keys[1]][keys[2]])
        except (KeyError, TypeError):
            raise Unresolvable(f"Fn::FindInMap: no {'/'.join(keys)} in Mappings") from None

    def fn_get_azs(self, args):
        return [REGION + z for z in "abc"]

    def fn_base64(self, args):
        return base64.b64encode(self.resolve_string(args, "the value of Fn::Base64").encode()).decode()


PSEUDO = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}
PSEUDO_NAMES = set(PSEUDO) | {"AWS::NoValue", "AWS::StackName", "AWS::StackId", "AWS::NotificationARNs"}
INTRINSICS = {
    "Ref": Resolver.fn_ref,
    "Fn::GetAtt": Resolver.fn_getatt,
    "Fn::Sub": Resolver.fn_sub,
    "Fn::Join": Resolver.fn_join,
    "Fn::Select": Resolver.fn_select,
    "Fn::Split": Resolver.fn_split,
    "Fn::If": Resolver.fn_if,
    "Fn::FindInMap": Resolver.fn_find_in_map,
    "Fn::GetAZs": Resolver.fn_get_azs,
    "Fn::Base64": Resolver.fn_base64,
}


# ---------------------------------------------------------------------------------------------
# Where the documents are


class Source:
    """One policy document of the template (or an item of a Policies list), unresolved.

    kind: "identity"; "trust" or "resource", whose `attached(resolver)` gives the ARNs of the role
    or resources the policy governs; "sam-policy" (an item of a SAM resource's Policies: a
    document, a policy template or a managed policy); "iam-policies-item" (an item of an IAM
    role's, user's or group's Policies: {PolicyName, PolicyDocument}).
    """

    def __init__(self, resource, label, raw, kind, attached=None):
        self.resource = resource
        self.label = label
        self.raw = raw
        self.kind = kind
        self.attached = attached


def as_items(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def safe(text):
    return re.sub(r"[^A-Za-z0-9_.=+-]", "-", str(text))


# Properties (anywhere under a resource's Properties) whose name says they hold a policy; each
# must be read by one of the extractors below, or the template fails.
POLICY_PROPERTY_NAMES = {
    "PolicyDocument", "AssumeRolePolicyDocument", "KeyPolicy", "ResourcePolicy", "Policy", "Policies",
    "PolicyText", "RepositoryPolicyText", "AccessPolicies", "AccessPolicy", "FileSystemPolicy", "Statement",
}


def policy_property_paths(value, path=()):
    """The paths of every property named like a policy, under one resource's Properties."""
    out = []
    if isinstance(value, dict) and not is_intrinsic(value):
        for k, v in value.items():
            if k in POLICY_PROPERTY_NAMES:
                out.append(path + (k,))
                continue  # what is inside a policy is the policy
            out.extend(policy_property_paths(v, path + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(policy_property_paths(v, path + (i,)))
    return out


def own(arn_fn):
    return lambda r: [arn_fn(r)]


class Extraction:
    def __init__(self):
        self.sources = []
        self.notes = []
        self.errors = []
        self.read_paths = set()

    def add(self, resource, path, *args, **kwargs):
        self.read_paths.add((resource,) + tuple(path))
        self.sources.append(Source(resource, *args, **kwargs))


def sam_policies(x, name, props):
    x.read_paths.add((name, "Policies"))
    for i, item in enumerate(as_items(props.get("Policies"))):
        x.sources.append(Source(name, f"Policies-{i}", item, "sam-policy"))


def iam_policies_list(x, name, props):
    x.read_paths.add((name, "Policies"))
    for i, item in enumerate(as_items(props.get("Policies"))):
        label = item.get("PolicyName") if isinstance(item, dict) and isinstance(item.get("PolicyName"), str) else i
        x.sources.append(Source(name, f"Policies-{safe(label)}", item, "iam-policies-item"))


def extract(template, x):
    """Finds every policy document of the template (x.sources), what is skipped (x.notes)."""
    for name, resource in template.resources.items():
        if name in template.generated:
            continue
        rtype = resource.get("Type")
        props = resource.get("Properties") or {}
        if not isinstance(props, dict):
            x.errors.append(f"{name}: Properties is not a mapping")
            continue
        if rtype in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            sam_policies(x, name, props)
            if rtype == "AWS::Serverless::Function" and props.get("AssumeRolePolicyDocument") is not None:
                x.add(name, ["AssumeRolePolicyDocument"], "AssumeRolePolicyDocument", props["AssumeRolePolicyDocument"], "trust",
                      attached=lambda r, n=name: [r.role_arn(n + "Role")])
        elif rtype == "AWS::IAM::Role":
            x.add(name, ["AssumeRolePolicyDocument"], "AssumeRolePolicyDocument", props.get("AssumeRolePolicyDocument"), "trust",
                  attached=lambda r, n=name: [r.role_arn(n)])
            iam_policies_list(x, name, props)
            for arn in as_items(props.get("ManagedPolicyArns")):
                x.notes.append(f"{name}: managed policy {json.dumps(arn)} (not a document of the template) skipped")
        elif rtype in ("AWS::IAM::User", "AWS::IAM::Group"):
            iam_policies_list(x, name, props)
        elif rtype in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            x.add(name, ["PolicyDocument"], "PolicyDocument", props.get("PolicyDocument"), "identity")
        elif rtype in ("AWS::KMS::Key", "AWS::KMS::ReplicaKey"):
            if props.get("KeyPolicy") is not None:
                x.add(name, ["KeyPolicy"], "KeyPolicy", props["KeyPolicy"], "resource", attached=own(lambda r, n=name: r.getatt(n, "Arn")))
        elif rtype == "AWS::DynamoDB::Table":
            if props.get("ResourcePolicy") is not None:
                x.add(name, ["ResourcePolicy"], "ResourcePolicy", (props["ResourcePolicy"] or {}).get("PolicyDocument"), "resource",
                      attached=own(lambda r, n=name: r.getatt(n, "Arn")))
            stream = props.get("StreamSpecification") or {}
            if isinstance(stream, dict) and stream.get("ResourcePolicy") is not None:
                x.add(name, ["StreamSpecification", "ResourcePolicy"], "StreamResourcePolicy", (stream["ResourcePolicy"] or {}).get("PolicyDocument"),
                      "resource", attached=own(lambda r, n=name: r.getatt(n, "StreamArn")))
        elif rtype == "AWS::DynamoDB::GlobalTable":
            for i, replica in enumerate(as_items(props.get("Replicas"))):
                if not isinstance(replica, dict):
                    continue
                if replica.get("ResourcePolicy") is not None:
                    x.add(name, ["Replicas", i, "ResourcePolicy"], f"Replicas-{i}-ResourcePolicy", (replica["ResourcePolicy"] or {}).get("PolicyDocument"),
                          "resource", attached=own(lambda r, n=name: r.getatt(n, "Arn")))
                rs = replica.get("ReplicaStreamSpecification") or {}
                if isinstance(rs, dict) and rs.get("ResourcePolicy") is not None:
                    x.add(name, ["Replicas", i, "ReplicaStreamSpecification", "ResourcePolicy"], f"Replicas-{i}-StreamResourcePolicy",
                          (rs["ResourcePolicy"] or {}).get("PolicyDocument"), "resource", attached=own(lambda r, n=name: r.getatt(n, "StreamArn")))
        elif rtype == "AWS::Events::EventBus":
            if props.get("Policy") is not None:
                x.add(name, ["Policy"], "Policy", props["Policy"], "resource", attached=own(lambda r, n=name: r.getatt(n, "Arn")))
        elif rtype == "AWS::Events::EventBusPolicy":
            x.add(name, ["Statement"], "Statement", eventbus_policy_document(props), "resource",
                  attached=own(lambda r, p=props: eventbus_arn(r, p.get("EventBusName"))))
        elif rtype == "AWS::SNS::TopicPolicy":
            x.add(name, ["PolicyDocument"], "PolicyDocument", props.get("PolicyDocument"), "resource",
                  attached=lambda r, p=props: [r.resolve_string(t, "a topic of Topics") for t in as_items(r.resolve(p.get("Topics")))])
        elif rtype == "AWS::SQS::QueuePolicy":
            x.add(name, ["PolicyDocument"], "PolicyDocument", props.get("PolicyDocument"), "resource",
                  attached=lambda r, p=props: [queue_arn(r, q) for q in as_items(r.resolve(p.get("Queues")))])
        elif rtype == "AWS::S3::BucketPolicy":
            x.add(name, ["PolicyDocument"], "PolicyDocument", props.get("PolicyDocument"), "resource",
                  attached=lambda r, p=props: [f"arn:{PARTITION}:s3:::{r.resolve_string(p.get('Bucket'), 'Bucket')}",
                                               f"arn:{PARTITION}:s3:::{r.resolve_string(p.get('Bucket'), 'Bucket')}/*"])
        elif rtype == "AWS::Logs::ResourcePolicy":
            x.add(name, ["PolicyDocument"], "PolicyDocument", props.get("PolicyDocument"), "resource",
                  attached=lambda r: [f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:*"])
        elif rtype == "AWS::SecretsManager::ResourcePolicy":
            x.add(name, ["ResourcePolicy"], "ResourcePolicy", props.get("ResourcePolicy"), "resource",
                  attached=lambda r, p=props: [r.resolve_string(p.get("SecretId"), "SecretId")])
        elif rtype == "AWS::ECR::Repository":
            if props.get("RepositoryPolicyText") is not None:
                x.add(name, ["RepositoryPolicyText"], "RepositoryPolicyText", props["RepositoryPolicyText"], "resource",
                      attached=own(lambda r, n=name: r.getatt(n, "Arn")))
        elif rtype == "AWS::ApiGateway::RestApi":
            if props.get("Policy") is not None:
                x.add(name, ["Policy"], "Policy", props["Policy"], "resource",
                      attached=lambda r, n=name: [f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{r.ref(n)}/*"])
        elif rtype in ("AWS::OpenSearchService::Domain", "AWS::Elasticsearch::Domain"):
            if props.get("AccessPolicies") is not None:
                x.add(name, ["AccessPolicies"], "AccessPolicies", props["AccessPolicies"], "resource",
                      attached=lambda r, p=props: [f"arn:{PARTITION}:es:{REGION}:{ACCOUNT}:domain/{r.resolve_string(p.get('DomainName'), 'DomainName')}/*"])
        for path in policy_property_paths(props):
            if (name,) + path not in x.read_paths:
                where = ".".join(str(p) for p in path)
                x.errors.append(f"{name}: {rtype} property {where} looks like a policy, and this tool does not extract it")


def eventbus_arn(r, bus):
    name = "default" if bus is None else r.resolve_string(bus, "EventBusName")
    return name if name.startswith("arn:") else f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{name}"


def queue_arn(r, url):
    """A queue's ARN from its URL (what !Ref of a queue gives)."""
    m = re.fullmatch(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([^/]+)", str(url))
    if not m:
        raise Unresolvable(f"{url} is not a queue URL")
    return f"arn:{PARTITION}:sqs:{m.group(1)}:{m.group(2)}:{m.group(3)}"


def eventbus_policy_document(props):
    """An AWS::Events::EventBusPolicy as one policy document (unresolved).

    The Statement form is the statement. The legacy form (Action, Principal: an account or "*",
    Condition: {Type, Key, Value}) is the statement EventBridge writes for it.
    """
    if props.get("Statement") is not None:
        return {"Version": "2012-10-17", "Statement": [props["Statement"]]}
    if props.get("Action") is None:
        return None
    principal = props.get("Principal")
    statement = {
        "Effect": "Allow",
        "Principal": "*" if principal == "*" else {"AWS": {"Fn::Sub": ["arn:${AWS::Partition}:iam::${Account}:root", {"Account": principal}]}},
        "Action": props["Action"],
        "Resource": {"Fn::Sub": ["arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${Bus}",
                                 {"Bus": props.get("EventBusName", "default")}]},
    }
    condition = props.get("Condition")
    if isinstance(condition, dict):
        statement["Condition"] = {condition.get("Type", "StringEquals"): {condition.get("Key"): condition.get("Value")}}
    return {"Version": "2012-10-17", "Statement": [statement]}


# ---------------------------------------------------------------------------------------------
# Resolving a source into documents


def sam_policy_templates():
    from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor

    return PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())


def as_document(value, where):
    """A resolved policy document: a mapping, or a JSON string of one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise Unresolvable(f"{where} is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise Unresolvable(f"{where} is not a policy document: {json.dumps(value)}")
    return value


def make_explicit(doc, kind, resources, notes, where):
    """A trust or resource policy with the resource it governs written out (see the module doc)."""
    statements = doc.get("Statement")
    single = isinstance(statements, dict)
    out = []
    for i, stmt in enumerate([statements] if single else statements or []):
        if not isinstance(stmt, dict):
            out.append(stmt)
            continue
        label = f"statement {i}" + (f" ({stmt['Sid']})" if isinstance(stmt.get("Sid"), str) else "")
        if "Resource" not in stmt and "NotResource" not in stmt:
            stmt = dict(stmt, Resource=resources[0] if len(resources) == 1 else list(resources))
            notes.append(f"{where}: {label} has no Resource; written with {', '.join(resources)}, "
                         f"the {'role' if kind == 'trust' else 'resource'} the policy governs")
        elif kind == "resource" and "*" in as_items(stmt.get("Resource")):
            rest = [r for r in as_items(stmt["Resource"]) if r != "*"]
            new = rest + [r for r in resources if r not in rest]
            stmt = dict(stmt, Resource=new[0] if len(new) == 1 else new)
            notes.append(f"{where}: Resource \"*\" of {label} is the resource the policy is attached to; written as {', '.join(resources)}")
        out.append(stmt)
    doc = dict(doc)
    doc["Statement"] = out[0] if single else out
    return doc


def resolve_source(template, source, forced, notes, processor_cache):
    """[(variant label, document)] for one source, one per assignment of the conditions its
    Fn::Ifs reach. Raises Unresolvable."""
    pending = [dict(forced)]
    done = []
    while pending:
        assignment = pending.pop(0)
        try:
            resolver = Resolver(template, assignment)
            docs = resolve_once(resolver, source, notes, processor_cache)
        except NeedCondition as need:
            if len(set(assignment) - set(forced)) >= MAX_CONDITIONS:
                raise Unresolvable(f"more than {MAX_CONDITIONS} conditions in one document") from None
            pending.append(dict(assignment, **{need.name: True}))
            pending.append(dict(assignment, **{need.name: False}))
            continue
        label = ".".join(f"{k}={'true' if v else 'false'}" for k, v in assignment.items() if k not in forced)
        for extra, doc in docs:
            done.append((".".join(p for p in (extra, label) if p), doc))
    return done


def resolve_once(r, source, notes, processor_cache):
    """[(extra label, document)] of one source under one assignment; [] where nothing is left."""
    where = f"{source.resource}.{source.label}"
    value = r.resolve(source.raw)
    if value is NOVALUE or value is None:
        if source.kind in ("sam-policy", "iam-policies-item"):
            return []  # an item removed by Fn::If / AWS::NoValue
        raise Unresolvable(f"{where}: no document")
    if source.kind == "sam-policy":
        if isinstance(value, str):
            notes.append(f"{where}: managed policy {value} (not a document of the template) skipped")
            return []
        if not isinstance(value, dict):
            raise Unresolvable(f"{where}: neither a document, a policy template nor a managed policy: {json.dumps(value)}")
        if "Statement" in value:
            return [("", as_document(value, where))]
        if len(value) == 1:
            (tname, params), = value.items()
            if "processor" not in processor_cache:
                processor_cache["processor"] = sam_policy_templates()
            processor = processor_cache["processor"]
            if not processor.has(tname):
                raise Unresolvable(f"{where}: {tname} is not a SAM policy template")
            try:
                expanded = processor.convert(tname, params or {})
            except Exception as e:  # samtranslator's own parameter errors
                raise Unresolvable(f"{where}: SAM policy template {tname}: {e}") from None
            notes.append(f"{where}: SAM policy template {tname} expanded")
            return [(safe(tname), as_document(r.resolve(expanded), where))]
        raise Unresolvable(f"{where}: not a policy document: {json.dumps(value)}")
    if source.kind == "iam-policies-item":
        if not isinstance(value, dict) or "PolicyDocument" not in value:
            raise Unresolvable(f"{where}: a Policies item without PolicyDocument")
        return [("", as_document(value["PolicyDocument"], where))]
    doc = as_document(value, where)
    if source.kind == "identity":
        return [("", doc)]
    resources = [r.resolve_string(a, "an attached resource") for a in source.attached(r)]
    if not resources:
        raise Unresolvable(f"{where}: attached to no resource")
    if source.kind == "resource" and len(resources) > 1 and any(
        "*" in as_items(s.get("Resource")) or ("Resource" not in s and "NotResource" not in s)
        for s in as_items(doc.get("Statement")) if isinstance(s, dict)
    ):
        return [(f"on-{i}", make_explicit(doc, source.kind, [res], notes, f"{where}.on-{i}")) for i, res in enumerate(resources)]
    return [("", make_explicit(doc, source.kind, resources, notes, where))]


# ---------------------------------------------------------------------------------------------


def load(path):
    data = least_privilege.plain(least_privilege.cfn_yaml.load(path))
    if not isinstance(data, dict):
        raise Unresolvable(f"{path}: not a template")
    return data


def documents(path, stack_name=DEFAULT_STACK_NAME, overrides=None):
    """({file name: document}, notes, errors) of one template."""
    template = Template(path, load(path), stack_name, overrides or {})
    x = Extraction()
    extract(template, x)
    out = {}
    notes = list(x.notes)
    errors = [f"{template.stem}: {e}" for e in x.errors]
    cache = {}
    for source in x.sources:
        resource = template.resources[source.resource]
        cond = resource.get("Condition")
        forced = {cond: True} if isinstance(cond, str) else {}
        try:
            for variant, doc in resolve_source(template, source, forced, notes, cache):
                name = ".".join(p for p in (template.stem, source.resource, source.label, variant) if p) + ".json"
                if name in out:
                    raise Unresolvable(f"two documents named {name}")
                out[name] = doc
        except Unresolvable as e:
            errors.append(f"{template.stem}: {source.resource}.{source.label}: {e}")
    return out, list(dict.fromkeys(notes)), errors


def parse_overrides(items):
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--parameter takes NAME=VALUE, not {item!r}")
        out[name] = value
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write every IAM policy document of CloudFormation/SAM templates as JSON.")
    parser.add_argument("templates", nargs="+", metavar="TEMPLATE")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    parser.add_argument("--parameter", action="append", metavar="NAME=VALUE", help="a value for a parameter (repeatable)")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.parameter)
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    total = 0
    for path in args.templates:
        try:
            docs, notes, errors = documents(path, args.stack_name, overrides)
        except Unresolvable as e:
            print(f"FAIL {e}", file=sys.stderr)
            failed = True
            continue
        except Exception as e:  # cfn-lint's decode errors
            print(f"FAIL {path}: cannot be read: {e}", file=sys.stderr)
            failed = True
            continue
        stem = pathlib.Path(path).stem
        for old in out_dir.glob(f"{stem}.*.json"):  # this tool's files of an earlier run
            old.unlink()
        for name, doc in sorted(docs.items()):
            (out_dir / name).write_text(json.dumps(doc, indent=2) + "\n")
        for note in notes:
            print(f"note {stem}: {note}")
        for error in errors:
            print(f"FAIL {error}", file=sys.stderr)
        failed = failed or bool(errors)
        total += len(docs)
        print(f"{path}: {len(docs)} documents written to {out_dir}")
    if failed:
        print(f"template_iam_documents: failed (see FAIL above); {total} documents written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
