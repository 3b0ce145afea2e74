"""Tests for tools/template_iam_documents.py (and the known findings of tools/iam_lint.py it relies on).

Run: .venv/bin/python -m unittest tools/test_template_iam_documents.py -v   (from the repository root)

Small inline templates, written to a temporary directory, go through the resolver; the real
templates must extract without an error.
"""

import contextlib
import importlib.util
import io
import json
import os
import tempfile
import textwrap
import unittest

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)


def load_module(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tid = load_module("template_iam_documents")
iam_lint = load_module("iam_lint")

ACCOUNT = "123456789012"


class ResolverTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def template(self, body, name="t"):
        path = os.path.join(self.tmp.name, name + ".yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(body))
        return path

    def documents(self, body, **kwargs):
        docs, notes, errors = tid.documents(self.template(body), **kwargs)
        return docs, notes, errors

    def ok(self, body, **kwargs):
        docs, notes, errors = self.documents(body, **kwargs)
        self.assertEqual(errors, [])
        return docs, notes

    def test_sub_with_a_variables_map_pseudo_parameters_and_literals(self):
        docs, _ = self.ok("""
            Parameters:
              Prefix:
                Type: String
                Default: /app
            Resources:
              Table:
                Type: AWS::DynamoDB::Table
                Properties:
                  TableName: requests
              Policy:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Version: "2012-10-17"
                    Statement:
                      - Effect: Allow
                        Action: ssm:GetParameter
                        Resource: !Sub
                          - arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${Prefix}/${Name}
                          - Name: !Select [1, !Split ["-", "a-key-b"]]
                      - Effect: Allow
                        Action: dynamodb:Query
                        Resource: !Sub "${Table.Arn}/index/*"
                      - Effect: Allow
                        Action: s3:GetObject
                        Resource: !Join ["", ["arn:", !Ref AWS::Partition, ":s3:::${!bucket}/", !Ref AWS::StackName, "/*"]]
                      - Effect: Allow
                        Action: s3:GetObject
                        Resource: !Sub "arn:aws:s3:::${!literal}"
        """)
        doc = docs["t.Policy.PolicyDocument.json"]
        resources = [s["Resource"] for s in doc["Statement"]]
        self.assertEqual(resources, [
            f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/key",
            f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/requests/index/*",
            "arn:aws:s3:::${!bucket}/jit-node-access/*",  # Fn::Join does not substitute
            "arn:aws:s3:::${literal}",
        ])

    def test_getatt_and_ref_of_several_resource_types(self):
        docs, _ = self.ok("""
            Resources:
              Table:
                Type: AWS::DynamoDB::Table
                Properties: {}
              Queue:
                Type: AWS::SQS::Queue
                Properties:
                  QueueName: dlq
              Key:
                Type: AWS::KMS::Key
                Properties: {}
              Topic:
                Type: AWS::SNS::Topic
                Properties:
                  TopicName: mail
              Bus:
                Type: AWS::Events::EventBus
                Properties:
                  Name: !Sub ${AWS::StackName}-events
              Logs:
                Type: AWS::Logs::LogGroup
                Properties:
                  LogGroupName: !Sub /aws/lambda/${Fn}
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  FunctionName: worker
                  Policies:
                    - Statement:
                        - Effect: Allow
                          Action: "*"
                          Resource:
                            - !GetAtt Table.Arn
                            - !GetAtt Table.StreamArn
                            - !GetAtt Queue.Arn
                            - !Ref Queue
                            - !GetAtt Key.Arn
                            - !Ref Topic
                            - !GetAtt Bus.Arn
                            - !GetAtt Logs.Arn
                            - !GetAtt Fn.Arn
                            - !GetAtt FnRole.Arn
                            - !GetAtt Machine.Arn
                            - !Ref Machine
                            - !GetAtt Named.Arn
              Machine:
                Type: AWS::Serverless::StateMachine
                Properties:
                  Name: lifecycle
              Named:
                Type: AWS::IAM::Role
                Properties:
                  RoleName: reader
                  Path: /service/
                  AssumeRolePolicyDocument:
                    Statement:
                      - Effect: Allow
                        Principal: {Service: lambda.amazonaws.com}
                        Action: sts:AssumeRole
        """)
        resources = docs["t.Fn.Policies-0.json"]["Statement"][0]["Resource"]
        p = f"us-east-1:{ACCOUNT}"
        table = f"arn:aws:dynamodb:{p}:table/jit-node-access-Table-{tid.suffix('Table')}"
        self.assertEqual(resources[0], table)
        self.assertRegex(resources[1], r"^" + table + r"/stream/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")
        self.assertEqual(resources[2], f"arn:aws:sqs:{p}:dlq")
        self.assertEqual(resources[3], f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/dlq")
        self.assertRegex(resources[4], rf"^arn:aws:kms:{p}:key/[0-9a-f-]{{36}}$")
        self.assertEqual(resources[5:8], [
            f"arn:aws:sns:{p}:mail",
            f"arn:aws:events:{p}:event-bus/jit-node-access-events",
            f"arn:aws:logs:{p}:log-group:/aws/lambda/worker:*",
        ])
        self.assertEqual(resources[8], f"arn:aws:lambda:{p}:function:worker")
        self.assertRegex(resources[9], rf"^arn:aws:iam::{ACCOUNT}:role/jit-node-access-FnRole-[0-9A-F]{{12}}$")
        self.assertEqual(resources[10:12], [f"arn:aws:states:{p}:stateMachine:lifecycle"] * 2)
        self.assertEqual(resources[12], f"arn:aws:iam::{ACCOUNT}:role/service/reader")

    def test_if_gives_one_document_per_branch_and_novalue_drops_the_statement(self):
        docs, _ = self.ok("""
            Parameters:
              AdminRoleArn:
                Type: String
                Default: ""
            Conditions:
              HasAdmin: !Not [!Equals [!Ref AdminRoleArn, ""]]
            Resources:
              Topic:
                Type: AWS::SNS::Topic
              TopicPolicy:
                Type: AWS::SNS::TopicPolicy
                Properties:
                  Topics: [!Ref Topic]
                  PolicyDocument:
                    Version: "2012-10-17"
                    Statement:
                      - Effect: Deny
                        Principal: "*"
                        Action: sns:Publish
                        Resource: !Ref Topic
                      - !If
                        - HasAdmin
                        - Effect: Deny
                          Principal: "*"
                          Action: sns:Subscribe
                          Resource: !Ref Topic
                          Condition:
                            ArnNotEquals:
                              aws:PrincipalArn: !Ref AdminRoleArn
                        - !Ref AWS::NoValue
        """)
        self.assertEqual(sorted(docs), ["t.TopicPolicy.PolicyDocument.HasAdmin=false.json", "t.TopicPolicy.PolicyDocument.HasAdmin=true.json"])
        self.assertEqual(len(docs["t.TopicPolicy.PolicyDocument.HasAdmin=false.json"]["Statement"]), 1)
        true = docs["t.TopicPolicy.PolicyDocument.HasAdmin=true.json"]["Statement"]
        self.assertEqual(len(true), 2)
        # An empty default gets a plausible value of its shape in the branch that uses it.
        self.assertEqual(true[1]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"], f"arn:aws:iam::{ACCOUNT}:role/AdminRoleArn")

    def test_two_conditions_give_four_variants_and_a_resource_condition_is_taken_as_true(self):
        docs, _ = self.ok("""
            Conditions:
              A: !Equals ["1", "1"]
              B: !Equals ["1", "2"]
              Made: !Equals ["1", "1"]
            Resources:
              Policy:
                Type: AWS::IAM::Policy
                Condition: Made
                Properties:
                  PolicyName: p
                  Roles: [r]
                  PolicyDocument:
                    Statement:
                      - Effect: Allow
                        Action: !If [Made, sqs:SendMessage, sqs:DeleteQueue]
                        Resource: !If [A, !If [B, "arn:aws:sqs:*:*:ab", "arn:aws:sqs:*:*:a"], "arn:aws:sqs:*:*:none"]
        """)
        self.assertEqual(sorted(docs), [
            "t.Policy.PolicyDocument.A=false.json",
            "t.Policy.PolicyDocument.A=true.B=false.json",
            "t.Policy.PolicyDocument.A=true.B=true.json",
        ])
        self.assertEqual(docs["t.Policy.PolicyDocument.A=true.B=true.json"]["Statement"][0],
                         {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:*:*:ab"})

    def test_trust_and_resource_policies_name_the_resource_they_govern(self):
        docs, notes = self.ok("""
            Resources:
              Role:
                Type: AWS::IAM::Role
                Properties:
                  RoleName: runner
                  AssumeRolePolicyDocument:
                    Statement:
                      - Effect: Allow
                        Principal: {Service: events.amazonaws.com}
                        Action: sts:AssumeRole
                  Policies:
                    - PolicyName: start
                      PolicyDocument:
                        Statement:
                          - Effect: Allow
                            Action: states:StartExecution
                            Resource: "*"
              Key:
                Type: AWS::KMS::Key
                Properties:
                  KeyPolicy:
                    Statement:
                      - Effect: Allow
                        Principal: {AWS: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
                        Action: kms:*
                        Resource: "*"
              BusPolicy:
                Type: AWS::Events::EventBusPolicy
                Properties:
                  StatementId: only-these-put-events
                  Statement:
                    Effect: Deny
                    Principal: "*"
                    Action: events:PutEvents
                    Resource: !Sub arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default
        """)
        trust = docs["t.Role.AssumeRolePolicyDocument.json"]["Statement"][0]
        self.assertEqual(trust["Resource"], f"arn:aws:iam::{ACCOUNT}:role/runner")
        # An identity policy keeps its "*": parliament is to see it.
        self.assertEqual(docs["t.Role.Policies-start.json"]["Statement"][0]["Resource"], "*")
        key = docs["t.Key.KeyPolicy.json"]["Statement"][0]
        self.assertRegex(key["Resource"], rf"^arn:aws:kms:us-east-1:{ACCOUNT}:key/[0-9a-f-]{{36}}$")
        bus = docs["t.BusPolicy.Statement.json"]
        self.assertEqual(len(bus["Statement"]), 1)
        self.assertNotIn("Sid", bus["Statement"][0])
        self.assertTrue(any("has no Resource" in n for n in notes))
        self.assertTrue(any('Resource "*"' in n for n in notes))

    def test_a_json_policy_document_in_a_sub_and_a_sam_policy_template(self):
        docs, notes = self.ok("""
            Parameters:
              TagKey:
                Type: String
                Default: eligible
            Resources:
              Queue:
                Type: AWS::SQS::Queue
                Properties:
                  QueueName: work
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  Policies:
                    - SQSSendMessagePolicy:
                        QueueName: !GetAtt Queue.QueueName
                    - AWSLambdaBasicExecutionRole
              Writes:
                Type: AWS::IAM::RolePolicy
                Properties:
                  RoleName: !Ref FnRole
                  PolicyName: writes
                  PolicyDocument: !Sub |
                    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:PutRolePolicy",
                      "Resource": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*",
                      "Condition": {"StringEquals": {"aws:ResourceTag/${TagKey}": "true"}}}]}
        """)
        sam = docs["t.Fn.Policies-0.SQSSendMessagePolicy.json"]["Statement"][0]
        self.assertEqual(sam["Resource"], f"arn:aws:sqs:us-east-1:{ACCOUNT}:work")
        self.assertTrue(any("managed policy AWSLambdaBasicExecutionRole" in n for n in notes))
        writes = docs["t.Writes.PolicyDocument.json"]["Statement"][0]
        self.assertEqual(writes["Condition"], {"StringEquals": {"aws:ResourceTag/eligible": "true"}})

    def test_an_unresolvable_intrinsic_fails_loudly(self):
        _, _, errors = self.documents("""
            Resources:
              Policy:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Statement:
                      - Effect: Allow
                        Action: s3:GetObject
                        Resource: !ImportValue shared-bucket-arn
              Other:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Statement:
                      - Effect: Allow
                        Action: sqs:SendMessage
                        Resource: !GetAtt Nowhere.Arn
              Third:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Statement:
                      - Effect: Allow
                        Action: sqs:SendMessage
                        Resource: !GetAtt Queue.NotAnAttribute
              Queue:
                Type: AWS::SQS::Queue
        """)
        self.assertEqual(len(errors), 3, errors)
        self.assertIn("Fn::ImportValue cannot be resolved", errors[0])
        self.assertIn("no resource or parameter named Nowhere", errors[1])
        self.assertIn("NotAnAttribute of a AWS::SQS::Queue is not known", errors[2])

    def test_main_exits_non_zero_and_still_writes_the_rest(self):
        path = self.template("""
            Resources:
              Good:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Statement:
                      - {Effect: Allow, Action: "sqs:ListQueues", Resource: "*"}
              Bad:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Statement:
                      - {Effect: Allow, Action: "sqs:SendMessage", Resource: !Sub "${Missing}"}
        """)
        out = os.path.join(self.tmp.name, "out")
        os.makedirs(out)
        stale = os.path.join(out, "t.Gone.PolicyDocument.json")
        other = os.path.join(out, "generated.json")
        for p in (stale, other):
            with open(p, "w") as f:
                f.write("{}")
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            rc = tid.main([path, "--out", out])
        self.assertEqual(rc, 1)
        self.assertIn("${Missing} names no variable, parameter or resource", stderr.getvalue())
        self.assertEqual(sorted(os.listdir(out)), ["generated.json", "t.Good.PolicyDocument.json"])

    def test_parameters_without_a_usable_default_need_a_value(self):
        body = """
            Parameters:
              BucketName:
                Type: String
            Resources:
              Policy:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Statement:
                      - {Effect: Allow, Action: "s3:GetObject", Resource: !Sub "arn:aws:s3:::${BucketName}/*"}
        """
        _, _, errors = self.documents(body)
        self.assertEqual(len(errors), 1)
        self.assertIn("pass --parameter BucketName=VALUE", errors[0])
        docs, _ = self.ok(body, overrides={"BucketName": "logs"})
        self.assertEqual(docs["t.Policy.PolicyDocument.json"]["Statement"][0]["Resource"], "arn:aws:s3:::logs/*")

    def test_a_policy_this_tool_does_not_read_fails(self):
        _, _, errors = self.documents("""
            Resources:
              Point:
                Type: AWS::S3::AccessPoint
                Properties:
                  Bucket: b
                  Policy:
                    Statement:
                      - {Effect: Allow, Principal: "*", Action: "s3:GetObject", Resource: "*"}
        """)
        self.assertEqual(len(errors), 1)
        self.assertIn("property Policy looks like a policy", errors[0])

    def test_a_reference_to_a_resource_its_condition_removes_fails(self):
        _, _, errors = self.documents("""
            Conditions:
              MakeQueue: !Equals ["a", "b"]
            Resources:
              Queue:
                Type: AWS::SQS::Queue
                Condition: MakeQueue
              Policy:
                Type: AWS::IAM::ManagedPolicy
                Properties:
                  PolicyDocument:
                    Statement:
                      - Effect: Allow
                        Action: sqs:SendMessage
                        Resource: !If [MakeQueue, "arn:aws:sqs:*:*:other", !GetAtt Queue.Arn]
        """)
        self.assertEqual(len(errors), 1)
        self.assertIn("Queue does not exist when condition MakeQueue is false", errors[0])

    def test_the_real_templates_extract_without_an_error(self):
        for name, expected in (
            ("template.yaml", ["template.RequestsTable.ResourcePolicy.json", "template.EventBusPolicy.Statement.json",
                               "template.SessionRole.AssumeRolePolicyDocument.json", "template.LifecycleGrantWritePolicy.PolicyDocument.json"]),
            ("member-account.yaml", ["member-account.SessionLogKey.KeyPolicy.json", "member-account.TeardownRole.AssumeRolePolicyDocument.json"]),
        ):
            docs, _, errors = tid.documents(os.path.join(ROOT, name))
            self.assertEqual(errors, [], name)
            for doc_name in expected:
                self.assertIn(doc_name, docs)
            for doc in docs.values():
                self.assertNotIn("Fn::", json.dumps(doc))
                self.assertNotIn('"Ref"', json.dumps(doc))


class KnownFindingsTest(unittest.TestCase):
    """The entries of tools/iam_lint.py's known() for what parliament gets wrong in template policies."""

    STREAM = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/stream/2024-01-01T00:00:00.000"
    KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/9ad7d237-13ac-5ffd-be98-6eadaf3be328"

    def stream_finding(self):
        return {"issue": "RESOURCE_MISMATCH", "detail": [
            {"action": a, "required_format": "arn:*:dynamodb:*:*:table/*/stream/*"}
            for a in ("dynamodb:DescribeStream", "dynamodb:GetRecords")
        ]}

    def test_stream_reads_on_a_stream_arn_only(self):
        doc = {"Statement": [{"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords"], "Resource": self.STREAM}]}
        self.assertIsNotNone(iam_lint.known(self.stream_finding(), doc))
        on_table = {"Statement": [{"Effect": "Allow", "Action": "dynamodb:GetRecords", "Resource": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t"}]}
        self.assertIsNone(iam_lint.known(self.stream_finding(), on_table))
        self.assertIsNone(iam_lint.known(self.stream_finding(), None))

    def test_kms_star_in_a_key_policy_only(self):
        finding = {"issue": "RESOURCE_MISMATCH", "detail": [{"action": a, "required_format": f} for a, f in iam_lint.KMS_NON_KEY_ACTIONS]}
        key_policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": self.KEY}]}
        self.assertIsNotNone(iam_lint.known(finding, key_policy))
        identity = {"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": self.KEY}]}
        self.assertIsNone(iam_lint.known(finding, identity))
        fewer = {"issue": "RESOURCE_MISMATCH", "detail": finding["detail"][:-1]}
        self.assertIsNone(iam_lint.known(fewer, key_policy))

    def test_arn_operator_on_the_logs_encryption_context_only(self):
        finding = {"issue": "MISMATCHED_TYPE", "detail": "Type mismatch: ArnEquals requires a value of type Arn but given String"}
        logs = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "logs.us-east-1.amazonaws.com"}, "Action": "kms:Decrypt",
                               "Resource": self.KEY, "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:x"}}}]}
        self.assertIsNotNone(iam_lint.known(finding, logs))
        other = json.loads(json.dumps(logs))
        other["Statement"][0]["Condition"]["ArnEquals"]["kms:ViaService"] = "arn:aws:x"
        self.assertIsNone(iam_lint.known(finding, other))


if __name__ == "__main__":
    unittest.main()
