"""Tests for tools/least_privilege.py: the real template passes, widened copies fail.

Run: .venv/bin/python -m unittest tools/test_least_privilege.py -v   (from the repository root)

Each widened copy is made by editing the template's text inside one resource's block, so the
tests keep working as the policies themselves change.
"""

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
TEMPLATE = os.path.join(ROOT, "template.yaml")
ALLOW_LIST = os.path.join(TOOLS, "least-privilege.yaml")
MEMBER_TEMPLATE = os.path.join(ROOT, "member-account.yaml")
MEMBER_ALLOW_LIST = os.path.join(TOOLS, "least-privilege-member.yaml")
SCRIPT = os.path.join(TOOLS, "least_privilege.py")

_spec = importlib.util.spec_from_file_location("least_privilege", SCRIPT)
lp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lp)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def block_bounds(text, resource):
    """(start, end) of `  <resource>:` up to the next top-level resource (two-space indent)."""
    m = re.search(rf"^  {re.escape(resource)}:\s*$", text, re.M)
    if not m:
        raise AssertionError(f"{resource} not found in the template")
    nxt = re.compile(r"^(  \S|\S)", re.M).search(text, m.end())
    return m.start(), nxt.start() if nxt else len(text)


def edit_block(text, resource, pattern, replace):
    """Applies re.sub(pattern, replace, count=1) inside the resource's block; the pattern must match."""
    start, end = block_bounds(text, resource)
    block, n = re.subn(pattern, replace, text[start:end], count=1, flags=re.M)
    if n != 1:
        raise AssertionError(f"pattern {pattern!r} not found in {resource}")
    return text[:start] + block + text[end:]



# A session role's trust, one statement per action: named by a request (`req-…`, what a revoke's
# deny matches) with a source identity (the person), and tagged with the request id alone
# (`jit:request-id`, shared/src/domain/credentials.rs), exactly as `adapters/sts.rs` assumes it.
SESSION_ROLE_ASSUMED_AS_BY_THE_CREDENTIALS_FUNCTION = {
    "sts:AssumeRole": {"StringLike": {"sts:RoleSessionName": "req-" + "?" * 32}, "Null": {"sts:SourceIdentity": "false"}},
    "sts:SetSourceIdentity": {"Null": {"sts:SourceIdentity": "false"}},
    "sts:TagSession": {
        "StringLike": {"aws:RequestTag/jit:request-id": "req-*"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["jit:request-id"]},
    },
}

class LeastPrivilegeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.template = read(TEMPLATE)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def check(self, template_text, allow_list=ALLOW_LIST):
        return lp.check(self.write("template.yaml", template_text), allow_list)

    def assertFailsWith(self, findings, *fragments):
        self.assertTrue(findings.failures, "expected the check to fail")
        joined = "\n".join(findings.failures)
        for fragment in fragments:
            self.assertIn(fragment, joined)

    def insert_statement(self, resource, lines):
        """Adds a statement as the first entry under the resource's `Statement:`."""
        def add(m):
            indent = m.group(1) + "  "
            body = [indent + "- " + lines[0]] + [indent + "  " + line for line in lines[1:]]
            return m.group(0) + "\n" + "\n".join(body)
        return edit_block(self.template, resource, r"^(\s+)Statement:[ \t]*$", add)

    # (a) -------------------------------------------------------------------------------------

    def test_the_real_template_passes(self):
        findings = lp.check(TEMPLATE, ALLOW_LIST)
        self.assertEqual(findings.failures, [])

    def test_the_command_line_exits_0_for_the_real_template(self):
        run = subprocess.run([sys.executable, SCRIPT, TEMPLATE, ALLOW_LIST], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    # (b) -------------------------------------------------------------------------------------

    def test_an_action_added_to_an_existing_statement_fails(self):
        text = edit_block(self.template, "SubmitRequestTablePolicy", r"^(\s+)- (dynamodb:\w+)[ \t]*$", r"\1- \2\n\1- dynamodb:Scan")
        self.assertFailsWith(self.check(text), "SubmitRequestTablePolicy (on SubmitRequestFunction's role)", "dynamodb:Scan",
                             "GetAtt:RequestsTable.Arn")

    def test_a_new_statement_fails(self):
        text = self.insert_statement("NotifyFunction", ["Effect: Allow", "Action: dynamodb:DeleteItem", "Resource: !GetAtt RequestsTable.Arn"])
        self.assertFailsWith(self.check(text), "NotifyFunction", "Allow dynamodb:DeleteItem on GetAtt:RequestsTable.Arn")

    def test_an_action_added_to_a_role_policy_fails(self):
        text = edit_block(self.template, "SweeperGrantDeletePolicy", r'^(\s+)"iam:DeleteUserPolicy",', r'\1"iam:PutUserPolicy",\n\1"iam:DeleteUserPolicy",')
        self.assertFailsWith(self.check(text), "SweeperGrantDeletePolicy (on SweeperFunction's role)", "iam:PutUserPolicy")

    def test_a_service_wildcard_fails_even_when_listed(self):
        text = self.insert_statement("NotifyFunction", ["Effect: Allow", "Action: dynamodb:*", "Resource: !GetAtt RequestsTable.Arn"])
        allow = read(ALLOW_LIST).replace("      - dynamodb:GetItem\n      Resource:\n      - GetAtt:RequestsTable.Arn\n",
                                          "      - dynamodb:GetItem\n      - dynamodb:*\n      Resource:\n      - GetAtt:RequestsTable.Arn\n", 1)
        self.assertNotEqual(allow, read(ALLOW_LIST), "the allow-list's NotifyFunction GetItem statement moved; update this test")
        self.assertFailsWith(self.check(text, self.write("allow.yaml", allow)), "NotifyFunction", "wildcard action 'dynamodb:*'")

    # (c) -------------------------------------------------------------------------------------

    def test_a_resource_widened_to_star_fails(self):
        text = edit_block(self.template, "NotifyFunction", r"^(\s+)Resource: (?![\"']?\*)\S.*$", r'\1Resource: "*"')
        self.assertFailsWith(self.check(text), "NotifyFunction", 'on Resource "*"')

    def test_a_role_policy_resource_widened_to_star_fails(self):
        text = edit_block(self.template, "LifecycleGrantWritePolicy", r'"arn:\$\{AWS::Partition\}:iam::\$\{AWS::AccountId\}:user/\*"', '"*"')
        self.assertFailsWith(self.check(text), "LifecycleGrantWritePolicy", "iam:PutUserPolicy", 'Resource "*"')

    def test_a_dropped_condition_fails(self):
        text = edit_block(self.template, "LifecycleGrantWritePolicy", r'^\s+"StringEquals": \{"aws:ResourceTag/\$\{EligiblePrincipalTagKey\}": "true"\}\n', "")
        self.assertFailsWith(self.check(text), "LifecycleGrantWritePolicy", "iam:PutRolePolicy on Sub:arn:")

    def test_a_dropped_deny_fails(self):
        text = edit_block(self.template, "SweeperGrantDeletePolicy", r'"Effect": "Deny"', '"Effect": "Allow"')
        self.assertFailsWith(self.check(text), "SweeperGrantDeletePolicy", "lost Deny")

    # (d) -------------------------------------------------------------------------------------

    def test_a_sam_policy_template_fails(self):
        text = edit_block(self.template, "NotifyFunction", r"^(\s+)Policies:[ \t]*$",
                          r"\g<0>\n\1  - DynamoDBCrudPolicy:\n\1      TableName: !Ref RequestsTable")
        self.assertFailsWith(self.check(text), "NotifyFunction", "SAM policy template DynamoDBCrudPolicy")

    def test_a_managed_policy_fails(self):
        text = edit_block(self.template, "EvaluateRequestFunction", r"^(\s+)Policies:[ \t]*$",
                          r"\g<0>\n\1  - arn:aws:iam::aws:policy/AdministratorAccess")
        self.assertFailsWith(self.check(text), "EvaluateRequestFunction", "managed policy arn:aws:iam::aws:policy/AdministratorAccess")

    def test_an_unlisted_function_fails(self):
        text = self.template.replace("\n  SweeperFunction:\n", "\n  SweeperFunction2:\n", 1)
        self.assertFailsWith(self.check(text), "SweeperFunction2", "not in the allow-list")

    # (e) the outbox: event sources and who publishes -------------------------------------------

    def add_sam_stream_event(self, destination=True):
        """PublishEventsFunction reading the stream through a SAM DynamoDB event instead of its
        AWS::Lambda::EventSourceMapping (optionally with a typed on-failure destination)."""
        lines = ["Events:", "  Outbox:", "    Type: DynamoDB", "    Properties:",
                 "      Stream: !GetAtt RequestsTable.StreamArn", "      StartingPosition: TRIM_HORIZON"]
        if destination:
            lines += ["      DestinationConfig:", "        OnFailure:", "          Type: SQS",
                      "          Destination: !GetAtt PublishEventsOnFailureQueue.Arn"]
        def add(m):
            return m.group(0) + "\n" + "\n".join(m.group(1) + line for line in lines)
        return edit_block(self.template, "PublishEventsFunction", r"^(\s+)CodeUri: .*$", add)

    def allow_list_with_implicit_grants(self, *items):
        allow = read(ALLOW_LIST)
        anchor = "  PublishEventsFunction:\n    Type: AWS::Serverless::Function\n"
        self.assertIn(anchor, allow, "the allow-list's PublishEventsFunction entry moved; update this test")
        listed = anchor + "    ImplicitGrants:\n" + "".join(f"    - '{item}'\n" for item in items)
        return self.write("allow.yaml", allow.replace(anchor, listed, 1))

    def test_a_sam_dynamodb_event_fails_with_the_managed_policy_it_attaches(self):
        findings = self.check(self.add_sam_stream_event(destination=False))
        self.assertFailsWith(findings, "PublishEventsFunction", "Events.Outbox:DynamoDB",
                             "service-role/AWSLambdaDynamoDBExecutionRole")

    def test_a_sam_event_destination_is_a_grant_of_its_own(self):
        text = self.add_sam_stream_event()
        findings = self.check(text, self.allow_list_with_implicit_grants("Events.Outbox:DynamoDB"))
        self.assertFailsWith(findings, "PublishEventsFunction",
                             "Events.Outbox.DestinationConfig.OnFailure:SQS:GetAtt:PublishEventsOnFailureQueue.Arn")
        self.assertNotIn("Events.Outbox:DynamoDB is not", "\n".join(findings.failures))

    def test_listed_sam_event_grants_pass(self):
        text = self.add_sam_stream_event()
        allow = self.allow_list_with_implicit_grants(
            "Events.Outbox:DynamoDB", "Events.Outbox.DestinationConfig.OnFailure:SQS:GetAtt:PublishEventsOnFailureQueue.Arn")
        self.assertEqual(self.check(text, allow).failures, [])

    def test_a_sam_event_destination_moved_elsewhere_fails(self):
        text = self.add_sam_stream_event().replace(
            "Destination: !GetAtt PublishEventsOnFailureQueue.Arn", "Destination: !GetAtt LifecycleDeadLetterQueue.Arn", 1)
        allow = self.allow_list_with_implicit_grants(
            "Events.Outbox:DynamoDB", "Events.Outbox.DestinationConfig.OnFailure:SQS:GetAtt:PublishEventsOnFailureQueue.Arn")
        self.assertFailsWith(self.check(text, allow), "OnFailure:SQS:GetAtt:LifecycleDeadLetterQueue.Arn")

    def test_a_stream_read_widened_to_every_stream_fails(self):
        text = edit_block(self.template, "PublishEventsFunction", r"^(\s+)Resource: !GetAtt RequestsTable\.StreamArn[ \t]*$", r'\1Resource: "*"')
        self.assertFailsWith(self.check(text), "PublishEventsFunction", "dynamodb:GetRecords on Resource \"*\"")

    def test_put_events_is_granted_to_the_outbox_relay_only(self):
        findings = lp.Findings()
        entries = lp.read_template(TEMPLATE, findings)
        entries.pop("__roles__")
        publishers = sorted(name for name, entry in entries.items()
                            for s in entry.get("Statements", []) if s["Effect"] == "Allow" and "events:PutEvents" in s["Action"])
        self.assertEqual(publishers, ["PublishEventsFunction"])

    def test_put_events_added_back_to_another_function_fails(self):
        text = self.insert_statement("ApproveRequestFunction", ["Effect: Allow", "Action: events:PutEvents", "Resource: !GetAtt EventBus.Arn"])
        self.assertFailsWith(self.check(text), "ApproveRequestFunction: Allow events:PutEvents on GetAtt:EventBus.Arn is not in the allow-list")

    # (f) credentials mode: who may assume what ---------------------------------------------------

    def test_assume_role_is_granted_on_session_roles_to_the_credentials_function_only(self):
        # Session roles to the credentials function; member accounts' reader role (node tags) to
        # the evaluation function, their teardown role to the lifecycle and sweeper functions.
        # Nothing else assumes a role, and only the credentials function sets a source identity or
        # session tags.
        findings = lp.Findings()
        entries = lp.read_template(TEMPLATE, findings)
        entries.pop("__roles__")
        grants = sorted((name, action, res) for name, entry in entries.items()
                        for s in entry.get("Statements", []) if s["Effect"] == "Allow"
                        for action in s["Action"] if action.startswith("sts:")
                        for res in s["Resource"])
        session = "Sub:arn:${AWS::Partition}:iam::*:role/${SessionRoleName}"
        reader = "Sub:arn:${AWS::Partition}:iam::*:role/jit-node-access-reader"
        teardown = "Sub:arn:${AWS::Partition}:iam::*:role/jit-node-access-teardown"
        self.assertEqual(grants, [
            ("EvaluateRequestFunction", "sts:AssumeRole", reader),
            ("IssueCredentialsFunction", "sts:AssumeRole", session),
            ("IssueCredentialsFunction", "sts:SetSourceIdentity", session),
            ("IssueCredentialsFunction", "sts:TagSession", session),
            ("LifecycleFunction", "sts:AssumeRole", teardown),
            ("SweeperFunction", "sts:AssumeRole", teardown),
        ])

    def test_assume_role_widened_to_any_role_fails(self):
        text = edit_block(self.template, "IssueCredentialsFunction", r"role/\$\{SessionRoleName\}", "role/*")
        self.assertFailsWith(self.check(text), "IssueCredentialsFunction", "sts:AssumeRole on Sub:arn:${AWS::Partition}:iam::*:role/*")

    def test_member_role_assumption_widened_fails(self):
        text = edit_block(self.template, "EvaluateRequestFunction", r"role/jit-node-access-reader", "role/*")
        self.assertFailsWith(self.check(text), "EvaluateRequestFunction", "sts:AssumeRole on Sub:arn:${AWS::Partition}:iam::*:role/*")
        text = edit_block(self.template, "LifecycleFunction", r"role/jit-node-access-teardown", "role/${SessionRoleName}")
        self.assertFailsWith(self.check(text), "LifecycleFunction", "sts:AssumeRole on Sub:arn:${AWS::Partition}:iam::*:role/${SessionRoleName}")

    # (f2) approval seals: who may make them, who may only check them ------------------------------

    def mac_grants(self, template_path=TEMPLATE):
        """(function, action, resource) of every Allow that reaches kms:GenerateMac or kms:VerifyMac
        (wildcards included), role policies counted for the function whose role they attach to."""
        findings = lp.Findings()
        entries = lp.read_template(template_path, findings)
        roles = entries.pop("__roles__")
        out = set()
        for name, entry in entries.items():
            owners = [roles.get(r[len("Ref:"):], name) for r in entry.get("Roles", []) if r.startswith("Ref:")] or [name]
            for s in entry.get("Statements", []):
                if s["Effect"] != "Allow":
                    continue
                for action in s["Action"]:
                    for mac in ("kms:GenerateMac", "kms:VerifyMac"):
                        if lp.fnmatch.fnmatchcase(mac.lower(), action.lower()):
                            out.update((owner, mac if action == mac else action, res) for owner in owners for res in s["Resource"])
        return sorted(out)

    def test_approvals_are_sealed_by_the_deciding_functions_and_only_checked_by_the_granting_ones(self):
        # GenerateMac only for evaluate-request and approve-request, VerifyMac only for lifecycle,
        # sweeper and issue-credentials, each on ApprovalSealKey alone: a function that grants or
        # issues credentials can never make the seal it checks.
        key = "GetAtt:ApprovalSealKey.Arn"
        self.assertEqual(self.mac_grants(), [
            ("ApproveRequestFunction", "kms:GenerateMac", key),
            ("EvaluateRequestFunction", "kms:GenerateMac", key),
            ("IssueCredentialsFunction", "kms:VerifyMac", key),
            ("LifecycleFunction", "kms:VerifyMac", key),
            ("SweeperFunction", "kms:VerifyMac", key),
        ])

    def test_generate_mac_given_to_a_granting_function_fails(self):
        for fn in ("LifecycleFunction", "SweeperFunction", "IssueCredentialsFunction"):
            text = self.insert_statement(fn, ["Effect: Allow", "Action: kms:GenerateMac", "Resource: !GetAtt ApprovalSealKey.Arn"])
            self.assertFailsWith(self.check(text), f"{fn}: Allow kms:GenerateMac on GetAtt:ApprovalSealKey.Arn is not in the allow-list")
            self.assertIn((fn, "kms:GenerateMac", "GetAtt:ApprovalSealKey.Arn"), self.mac_grants(self.write("template.yaml", text)))

    def test_generate_mac_in_a_role_policy_on_a_granting_function_fails(self):
        # The same permission through a role policy on the lifecycle role.
        text = edit_block(self.template, "LifecycleTablePolicy", r"^(\s+)- dynamodb:UpdateItem[ \t]*$",
                          r"\g<0>\n\1- kms:GenerateMac")
        self.assertFailsWith(self.check(text), "LifecycleTablePolicy (on LifecycleFunction's role)", "kms:GenerateMac")

    def test_a_seal_permission_widened_to_a_wildcard_or_any_key_fails(self):
        text = edit_block(self.template, "LifecycleFunction", r"Action: kms:VerifyMac", "Action: kms:*Mac")
        self.assertFailsWith(self.check(text), "LifecycleFunction: Allow kms:*Mac on GetAtt:ApprovalSealKey.Arn is not in the allow-list")
        text = edit_block(self.template, "EvaluateRequestSealPolicy", r"(Action: kms:GenerateMac\n\s+Resource: )!GetAtt ApprovalSealKey\.Arn",
                          r"\1!Sub arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*")
        self.assertFailsWith(self.check(text), "EvaluateRequestSealPolicy (on EvaluateRequestFunction's role): Allow kms:GenerateMac on "
                             "Sub:arn:${AWS::Partition}:kms:")

    def test_the_seal_key_is_an_hmac_key_kept_administered_by_the_account_and_sealing_for_the_deciders_only(self):
        # The account's IAM policies decide, but no principal other than the two deciding roles may
        # GenerateMac, whatever they allow (the Deny's exceptions are checked against the role
        # policies by the checker). Retained: a replaced key would invalidate every stored seal.
        template = lp.plain(lp.cfn_yaml.load(TEMPLATE))
        key = template["Resources"]["ApprovalSealKey"]
        self.assertEqual(key["Type"], "AWS::KMS::Key")
        self.assertEqual((key.get("DeletionPolicy"), key.get("UpdateReplacePolicy")), ("Retain", "Retain"))
        props = key["Properties"]
        self.assertEqual((props["KeySpec"], props["KeyUsage"]), ("HMAC_256", "GENERATE_VERIFY_MAC"))
        policy = lp.read_resource_policies(TEMPLATE, lp.Findings())["ApprovalSealKey"]
        self.assertEqual(policy["Allows"], [{"Action": ["kms:*"], "Resource": ["*"],
                                             "Principal": {"AWS": "Sub:arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}])
        self.assertEqual(policy["Denies"], [{"Action": ["kms:GenerateMac"], "Resource": ["*"], "Condition": {"ArnNotEquals": {
            "aws:PrincipalArn": ["GetAtt:ApproveRequestFunctionRole.Arn", "GetAtt:EvaluateRequestFunctionRole.Arn"]}}}])

    def test_exactly_the_sealing_and_checking_functions_get_the_seal_key(self):
        template = lp.plain(lp.cfn_yaml.load(TEMPLATE))
        holders = sorted(name for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
                         and "JIT_APPROVAL_KEY_ID" in (((r["Properties"].get("Environment") or {}).get("Variables")) or {}))
        self.assertEqual(holders, ["ApproveRequestFunction", "EvaluateRequestFunction", "IssueCredentialsFunction",
                                   "LifecycleFunction", "SweeperFunction"])
        for name in holders:
            value = template["Resources"][name]["Properties"]["Environment"]["Variables"]["JIT_APPROVAL_KEY_ID"]
            self.assertEqual(lp.render(value), "GetAtt:ApprovalSealKey.Arn", name)
        self.assertNotIn("JIT_APPROVAL_KEY_ID", str(template.get("Globals")))

    # (g) member-account.yaml ---------------------------------------------------------------------

    def test_the_member_template_passes_its_allow_list(self):
        self.assertEqual(lp.check(MEMBER_TEMPLATE, MEMBER_ALLOW_LIST).failures, [])

    def test_member_roles_trust_only_the_hub_roles_named_and_assume_nothing(self):
        # The checker does not read trust policies, so they are checked here: one Allow each, of
        # the hub roles passed as parameters (no service, no account root, no "*"), in the hub
        # account; only the session role may be tagged or carry a source identity.
        template = lp.plain(lp.cfn_yaml.load(MEMBER_TEMPLATE))
        trusts = {}
        for name, resource in template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            statements = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            self.assertEqual(len(statements), 3 if name == "SessionRole" else 1, name)
            principals, actions = set(), []
            for s in statements:
                self.assertEqual((s["Effect"], list(s["Principal"])), ("Allow", ["AWS"]), name)
                action = lp.as_list(s["Action"])
                expected = {"StringEquals": {"aws:PrincipalAccount": "Ref:HubAccountId"}}
                if name == "SessionRole":
                    expected |= SESSION_ROLE_ASSUMED_AS_BY_THE_CREDENTIALS_FUNCTION[action[0]]
                self.assertEqual(lp.render_tree(s["Condition"]), expected, name)
                principals.add(lp.render(s["Principal"]["AWS"]))
                actions += action
            self.assertEqual(len(principals), 1, name)
            trusts[name] = (principals.pop(), sorted(actions))
        self.assertEqual(trusts, {
            "SessionRole": ("Ref:CredentialsFunctionRoleArn", ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]),
            "ReaderRole": ("Ref:NodeReaderRoleArns", ["sts:AssumeRole"]),
            "TeardownRole": ("Ref:LifecycleRoleArns", ["sts:AssumeRole"]),
        })
        entries = lp.read_template(MEMBER_TEMPLATE, lp.Findings())
        entries.pop("__roles__")
        sts = [(name, a) for name, e in entries.items() for s in e["Statements"] for a in s["Action"] if a.startswith("sts:")]
        self.assertEqual(sts, [], "no member role may assume roles itself")

    def test_the_hub_session_role_is_assumed_only_as_the_credentials_function_assumes_it(self):
        template = lp.plain(lp.cfn_yaml.load(TEMPLATE))
        statements = template["Resources"]["SessionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        trust = {}
        for s in statements:
            self.assertEqual((s["Effect"], lp.render(s["Principal"]["AWS"])), ("Allow", "GetAtt:IssueCredentialsFunctionRole.Arn"))
            trust[s["Action"]] = lp.render_tree(s["Condition"])
        self.assertEqual(trust, SESSION_ROLE_ASSUMED_AS_BY_THE_CREDENTIALS_FUNCTION)

    def test_each_member_role_is_trusted_by_exactly_the_hub_functions_that_assume_it(self):
        # A member role's trust names a hub output (the parameter of the same name); that output
        # must list the roles of exactly the hub functions allowed sts:AssumeRole on the member
        # role's name, so a function given the permission is also trusted, and no other is.
        hub = lp.plain(lp.cfn_yaml.load(TEMPLATE))
        member = lp.plain(lp.cfn_yaml.load(MEMBER_TEMPLATE))
        entries = lp.read_template(TEMPLATE, lp.Findings())
        roles = entries.pop("__roles__")

        def output_roles(name):
            value = hub["Outputs"][name]["Value"]
            items = value["Fn::Join"][1] if "Fn::Join" in value else [value]
            return sorted(roles[i["Fn::GetAtt"][0]] for i in items)

        for role_name, logical in (("jit-node-access-reader", "ReaderRole"), ("jit-node-access-teardown", "TeardownRole")):
            resource = member["Resources"][logical]
            self.assertEqual(resource["Properties"]["RoleName"], role_name)
            trusted = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"]["Ref"]
            assuming = sorted(name for name, e in entries.items() for s in e.get("Statements", [])
                              if s["Effect"] == "Allow" and "sts:AssumeRole" in s["Action"]
                              and f"Sub:arn:${{AWS::Partition}}:iam::*:role/{role_name}" in s["Resource"])
            self.assertEqual(output_roles(trusted), assuming, role_name)
        self.assertEqual(output_roles("CredentialsFunctionRoleArn"), ["IssueCredentialsFunction"])

    # (h) resource policies: who may write into the stack's resources ---------------------------

    def test_the_write_policies_deny_everyone_but_the_stacks_writers(self):
        # The bus, both mail topics and the table each carry a Deny to "*" whose only exceptions
        # (aws:PrincipalArn) are the roles of the functions that write there (and, for
        # subscriptions, the MailAdministratorRoleArn parameter).
        findings = lp.Findings()
        policies = lp.read_resource_policies(TEMPLATE, findings)
        self.assertEqual(findings.failures, [])
        writers = lambda *fns: sorted(f"GetAtt:{f}Role.Arn" for f in fns)
        excepted = {(name, tuple(d["Action"]), d.get("When", "")): sorted(lp.principal_exceptions(d.get("Condition")))
                    for name, p in policies.items() for d in p["Denies"]}
        writes = ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PartiQLDelete", "dynamodb:PartiQLInsert",
                  "dynamodb:PartiQLUpdate", "dynamodb:PutItem", "dynamodb:UpdateItem")
        subscriptions = ("sns:SetSubscriptionAttributes", "sns:Subscribe")
        self.assertEqual(excepted, {
            ("RequestsTable", writes, ""): writers("SubmitRequestFunction", "EvaluateRequestFunction", "ApproveRequestFunction",
                                                   "IssueCredentialsFunction", "SweeperFunction", "LifecycleFunction"),
            ("EventBusPolicy", ("events:PutEvents",), ""): writers("PublishEventsFunction"),
            ("ApproverMailTopicPolicy", ("sns:Publish",), ""): writers("NotifyFunction"),
            ("ApproverMailTopicPolicy", subscriptions, ""): ["Ref:MailAdministratorRoleArn"],
            ("RequesterMailTopicPolicy", ("sns:Publish",), ""): writers("NotifyFunction"),
            ("RequesterMailTopicPolicy", subscriptions, ""): ["Ref:MailAdministratorRoleArn"],
            ("ApprovalSealKey", ("kms:GenerateMac",), ""): writers("EvaluateRequestFunction", "ApproveRequestFunction"),
        })
        self.assertEqual(policies["ApprovalSealKey"]["Protects"], ["ApprovalSealKey"])
        self.assertEqual(policies["EventBusPolicy"]["Protects"], ["EventBus"])
        self.assertEqual(policies["ApproverMailTopicPolicy"]["Protects"], ["ApproverMailTopic"])
        self.assertEqual(policies["RequesterMailTopicPolicy"]["Protects"], ["RequesterMailTopic"])

    def test_a_dropped_resource_policy_fails(self):
        start, end = block_bounds(self.template, "EventBusPolicy")
        text = self.template[:start] + self.template[end:]
        self.assertFailsWith(self.check(text), "EventBusPolicy: listed resource policy is missing from the template")

    def test_a_deny_turned_into_an_allow_fails(self):
        text = edit_block(self.template, "ApproverMailTopicPolicy", r"Effect: Deny", "Effect: Allow")
        self.assertFailsWith(self.check(text), "ApproverMailTopicPolicy: resource policy statement", "is not a Deny",
                             "listed Deny sns:Publish on Ref:ApproverMailTopic", "is missing from the template")

    def test_another_role_excepted_from_a_deny_fails(self):
        # NotifyFunction reads the table but may not write it: excepting its role is an opening.
        text = edit_block(self.template, "RequestsTable", r"^(\s+)- !GetAtt SweeperFunctionRole\.Arn[ \t]*$",
                          r"\g<0>\n\1- !GetAtt NotifyFunctionRole.Arn")
        self.assertFailsWith(self.check(text), "RequestsTable: the Deny of", "excepts NotifyFunction's role, which no policy allows",
                             "RequestsTable: Deny dynamodb:PutItem on * with Condition", "is not in the allow-list")

    def test_an_exception_that_is_not_a_function_role_fails(self):
        text = edit_block(self.template, "EventBusPolicy", r"aws:PrincipalArn: !GetAtt PublishEventsFunctionRole\.Arn",
                          "aws:PrincipalArn: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
        self.assertFailsWith(self.check(text), "EventBusPolicy: its Deny of events:PutEvents excepts "
                             "Sub:arn:${AWS::Partition}:iam::${AWS::AccountId}:root, which is neither the role of one of the stack's functions")

    def test_a_writer_left_out_of_the_exceptions_fails(self):
        # The sweeper still writes the table: denying it would break expiry.
        text = edit_block(self.template, "RequestsTable", r"^\s+- !GetAtt SweeperFunctionRole\.Arn\n", "")
        self.assertFailsWith(self.check(text), "RequestsTable: SweeperFunction is allowed dynamodb:DeleteItem, dynamodb:PutItem, "
                             "dynamodb:UpdateItem on RequestsTable, but the Deny of")

    def test_a_publisher_added_without_its_exception_fails(self):
        text = self.insert_statement("ApproveRequestFunction", ["Effect: Allow", "Action: sns:Publish", "Resource: !Ref RequesterMailTopic"])
        self.assertFailsWith(self.check(text), "RequesterMailTopicPolicy: ApproveRequestFunction is allowed sns:Publish on RequesterMailTopic")

    def test_a_sealer_left_out_of_the_seal_keys_exceptions_fails(self):
        text = edit_block(self.template, "ApprovalSealKey", r"^\s+- !GetAtt ApproveRequestFunctionRole\.Arn\n", "")
        self.assertFailsWith(self.check(text), "ApprovalSealKey: ApproveRequestFunction is allowed kms:GenerateMac on ApprovalSealKey, "
                             "but the Deny of kms:GenerateMac does not except its role")

    def test_a_function_given_the_right_to_seal_without_its_exception_fails(self):
        # A granting function that could also seal would approve what it grants.
        text = self.insert_statement("LifecycleFunction", ["Effect: Allow", "Action: kms:GenerateMac", "Resource: !GetAtt ApprovalSealKey.Arn"])
        self.assertFailsWith(self.check(text), "ApprovalSealKey: LifecycleFunction is allowed kms:GenerateMac on ApprovalSealKey")

    def test_an_allow_added_to_a_key_policy_fails(self):
        text = self.insert_statement("ApprovalSealKey", ["Effect: Allow", "Principal: {AWS: '*'}", "Action: kms:GenerateMac", 'Resource: "*"'])
        self.assertFailsWith(self.check(text), 'ApprovalSealKey: its Allow {"Action":["kms:GenerateMac"],"Principal":{"AWS":"*"},'
                             '"Resource":["*"]} is not in the allow-list')

    def test_a_key_policy_allow_widened_by_dropping_its_condition_fails(self):
        start, end = block_bounds(self.template, "AlertTopicKey")
        block, n = re.subn(r"\n\s+Condition:\n\s+StringEquals:\n\s+aws:SourceAccount: !Ref AWS::AccountId", "", self.template[start:end])
        self.assertEqual(n, 1)
        self.assertFailsWith(self.check(self.template[:start] + block + self.template[end:]),
                             'AlertTopicKey: its Allow {"Action":["kms:Decrypt","kms:GenerateDataKey*"],"Principal":'
                             '{"Service":"cloudwatch.amazonaws.com"},"Resource":["*"]} is not in the allow-list',
                             "AlertTopicKey: listed Allow")

    def test_a_key_policy_allow_listed_with_lists_where_the_template_has_single_values_passes(self):
        # `x` and `[x]` mean the same in a policy: only what is allowed counts.
        allowed = read(ALLOW_LIST).replace("          aws:SourceAccount: Ref:AWS::AccountId\n",
                                           "          aws:SourceAccount: [Ref:AWS::AccountId]\n", 1)
        allowed = allowed.replace("        Service: cloudwatch.amazonaws.com\n", "        Service: [cloudwatch.amazonaws.com]\n", 1)
        self.assertNotEqual(allowed, read(ALLOW_LIST))
        self.assertEqual(self.check(self.template, self.write("allow.yaml", allowed)).failures, [])

    def test_an_allow_listed_for_a_policy_that_may_hold_none_fails(self):
        allowed = read(ALLOW_LIST).replace("  EventBusPolicy:\n    Type: AWS::Events::EventBusPolicy\n",
                                           "  EventBusPolicy:\n    Type: AWS::Events::EventBusPolicy\n    Allows:\n    - Action: [events:PutEvents]\n"
                                           "      Resource: ['*']\n      Principal: '*'\n", 1)
        self.assertFailsWith(self.check(self.template, self.write("allow.yaml", allowed)),
                             "allow-list ResourcePolicies EventBusPolicy: a AWS::Events::EventBusPolicy resource policy may hold no Allow")

    def test_the_generated_allow_list_passes(self):
        run = subprocess.run([sys.executable, SCRIPT, "--generate", TEMPLATE], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("ResourcePolicies:", run.stdout)
        self.assertEqual(self.check(self.template, self.write("generated.yaml", run.stdout)).failures, [])

    def test_the_command_line_exits_1_for_a_widened_template(self):
        text = self.insert_statement("NotifyFunction", ["Effect: Allow", "Action: s3:GetObject", 'Resource: "*"'])
        run = subprocess.run([sys.executable, SCRIPT, self.write("template.yaml", text), ALLOW_LIST], capture_output=True, text=True)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("FAIL NotifyFunction: Allow s3:GetObject on *", run.stdout)


if __name__ == "__main__":
    unittest.main()
