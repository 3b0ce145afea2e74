//! Deciding a request in AWS JITNA's order: deny-access `forbid` → auto-approval `permit` → the
//! one manual-approval policy that targets the node.

use std::collections::BTreeMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request,
    RestrictedExpression,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ids::{DurationMinutes, NodeId, NodeKind, NodeLocation};
use crate::domain::principal::{GroupRef, PrincipalIdentity, ResolvedPrincipal, IDENTITY_CENTER_ATTRIBUTES};
use crate::domain::request::{Decision, DecisionRule};
use crate::domain::status::RequestStatus;
use crate::policy::manual::{ManualPolicy, Targets};
use crate::policy::policy_set::{PolicySet, DEFAULT_AUTO_APPROVAL_WINDOW_MINUTES};

pub const ACTION_ID: &str = "getTokenForInstanceAccess";

/// A node as the policy engine sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub node_id: NodeId,
    /// Where the node lives (Cedar's `resource.account` and `resource.region`).
    pub location: NodeLocation,
    pub tags: BTreeMap<String, String>,
}

/// Why a Cedar evaluation could not start. Names and entities are built from validated input, so
/// either is a bug; the decision records it and fails closed (no auto-approval).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("could not build the Cedar request: {0}")]
    Request(String),
    #[error("could not select the Cedar statements: {0}")]
    Selection(String),
}

fn request_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Request(e.to_string())
}

fn uid(type_name: &str, id: &str) -> Result<EntityUid, EngineError> {
    let t = EntityTypeName::from_str(type_name).map_err(request_error)?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn string_map(map: &BTreeMap<String, String>) -> Vec<(String, RestrictedExpression)> {
    map.iter().map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone()))).collect()
}

/// The Cedar request and entities for (principal, node). Entity ids: IAM users, groups and roles
/// by ARN; Identity Center users and groups by their Identity Store ids; nodes by node id.
fn cedar_request(
    set: &PolicySet,
    principal: &ResolvedPrincipal,
    node: &NodeInfo,
    now: DateTime<Utc>,
    break_glass: bool,
) -> Result<(Request, Entities), EngineError> {
    let mut entities = Vec::new();
    let (principal_uid, attrs) = match &principal.identity {
        PrincipalIdentity::IamUser { arn, .. } => (uid("AWS::IAM::User", arn)?, Vec::new()),
        PrincipalIdentity::IamRole { arn, .. } => (uid("AWS::IAM::Role", arn)?, Vec::new()),
        PrincipalIdentity::IdentityCenterUser { user_id, .. } => {
            let attrs = principal
                .attributes
                .iter()
                .filter(|(k, _)| IDENTITY_CENTER_ATTRIBUTES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())))
                .collect();
            (uid("AWS::IdentityStore::User", user_id)?, attrs)
        }
    };
    let mut parents = Vec::new();
    for g in &principal.groups {
        let g_uid = match (&principal.identity, g) {
            (PrincipalIdentity::IamUser { .. }, GroupRef::IamGroup { arn, .. }) => uid("AWS::IAM::Group", arn)?,
            (PrincipalIdentity::IdentityCenterUser { .. }, GroupRef::IdentityCenterGroup { id, .. }) => {
                uid("AWS::IdentityStore::Group", id)?
            }
            // A group of another directory cannot contain this principal in the schema.
            _ => continue,
        };
        entities.push(Entity::new_no_attrs(g_uid.clone(), std::collections::HashSet::new()));
        parents.push(g_uid);
    }
    entities.push(
        Entity::new(principal_uid.clone(), attrs.into_iter().collect(), parents.into_iter().collect())
            .map_err(request_error)?,
    );

    let tags_uid = uid("AWS::IAM::PrincipalTags", &principal_uid.to_string())?;
    entities.push(
        Entity::new_with_tags(tags_uid.clone(), [], [], string_map(&principal.principal_tags))
            .map_err(request_error)?,
    );

    let resource_type = match node.node_id.kind() {
        NodeKind::Ec2Instance => "AWS::EC2::Instance",
        NodeKind::ManagedInstance => "AWS::SSM::ManagedInstance",
    };
    let resource_uid = uid(resource_type, node.node_id.instance_id())?;
    let resource_attrs = [
        ("account".to_owned(), RestrictedExpression::new_string(node.location.account.clone())),
        ("region".to_owned(), RestrictedExpression::new_string(node.location.region.clone())),
    ];
    entities.push(
        Entity::new_with_tags(resource_uid.clone(), resource_attrs, [], string_map(&node.tags))
            .map_err(request_error)?,
    );

    let action = uid("AWS::SSM::Action", ACTION_ID)?;
    let local = set.time_zone.local(now);
    let context = Context::from_pairs([
        (
            "iam".to_owned(),
            RestrictedExpression::new_record([(
                "principalTags".to_owned(),
                RestrictedExpression::new_entity_uid(tags_uid),
            )])
            .map_err(request_error)?,
        ),
        ("breakGlass".to_owned(), RestrictedExpression::new_bool(break_glass)),
        (
            "requestTime".to_owned(),
            RestrictedExpression::new_datetime(now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        ),
        (
            "local".to_owned(),
            RestrictedExpression::new_record([
                ("weekday".to_owned(), RestrictedExpression::new_string(local.weekday.to_owned())),
                ("hour".to_owned(), RestrictedExpression::new_long(local.hour.into())),
                ("minute".to_owned(), RestrictedExpression::new_long(local.minute.into())),
                ("timeZone".to_owned(), RestrictedExpression::new_string(set.time_zone.name().to_owned())),
            ])
            .map_err(request_error)?,
        ),
    ])
    .map_err(request_error)?;
    let schema = set.schema.as_ref();
    let request = Request::new(principal_uid, action, resource_uid, context, Some(schema)).map_err(request_error)?;
    let entities = Entities::from_entities(entities, Some(schema)).map_err(request_error)?;
    Ok((request, entities))
}

/// What the auto-approval stage found.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AutoStage {
    permits: Vec<String>,
    /// The forbids that matched.
    forbids: Vec<String>,
    /// The forbids (or statements the set does not know) whose evaluation errored: they might
    /// have matched, so they remove auto-approval and are named with the deny-access policies.
    errored_forbids: Vec<String>,
    /// Problems that made the engine skip auto-approval (fail closed).
    errors: Vec<String>,
    /// Whether an error might hide a forbid: a forbid (or a statement the set does not know)
    /// errored, or nothing could be evaluated. A permit that errors merely does not apply.
    forbid_unsure: bool,
}

impl AutoStage {
    /// The deny-access policies a decision records: those that matched, then those that errored.
    fn deny_ids(&self) -> Vec<String> {
        let mut ids = self.forbids.clone();
        ids.extend(self.errored_forbids.iter().filter(|id| !self.forbids.contains(id)).cloned());
        ids
    }
}

/// A Cedar policy id as the statement's `@id` says it (`PolicyId`'s `Display` escapes quotes
/// and backslashes, so it would not find the statement).
fn id_text(id: &cedar_policy::PolicyId) -> String {
    AsRef::<str>::as_ref(id).to_owned()
}

impl PolicySet {
    fn auto_stage(&self, principal: &ResolvedPrincipal, node: &NodeInfo, now: DateTime<Utc>) -> AutoStage {
        self.stage(principal, node, now, false)
    }

    /// The Cedar stage with `context.breakGlass` as given.
    fn stage(
        &self,
        principal: &ResolvedPrincipal,
        node: &NodeInfo,
        now: DateTime<Utc>,
        break_glass: bool,
    ) -> AutoStage {
        let built = cedar_request(self, principal, node, now, break_glass)
            .and_then(|(request, entities)| Ok((request, entities, self.index.candidates(&node.tags)?)));
        let (request, entities, candidates) = match built {
            Ok(x) => x,
            Err(e) => {
                return AutoStage {
                    permits: vec![],
                    forbids: vec![],
                    errored_forbids: vec![],
                    errors: vec![e.to_string()],
                    forbid_unsure: true,
                }
            }
        };
        let response = Authorizer::new().is_authorized(&request, &candidates, &entities);
        let reasons: Vec<String> = response.diagnostics().reason().map(id_text).collect();
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        // A forbid that errors might have matched: it must not let a permit through, and it is
        // named with the forbids. A statement the set does not know counts as a forbid.
        let errored_forbids: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                id_text(e.policy_id())
            })
            .filter(|id| self.statements.get(id).is_none_or(|s| s.effect == cedar_policy::Effect::Forbid))
            .collect();
        let forbid_unsure = !errored_forbids.is_empty();
        let (permits, forbids) = match response.decision() {
            CedarDecision::Allow if !forbid_unsure => (reasons, vec![]),
            CedarDecision::Allow => (vec![], vec![]),
            CedarDecision::Deny => (vec![], reasons),
        };
        AutoStage { permits, forbids, errored_forbids, errors, forbid_unsure }
    }

    /// The tag-specific manual policies that target the node, and the all-nodes one that applies
    /// to its account (one limited to the account beats one for every account).
    fn manual_candidates(&self, node: &NodeInfo) -> (Vec<&ManualPolicy>, Option<&ManualPolicy>) {
        let tag_specific = self
            .manual
            .iter()
            .filter(|p| {
                matches!(p.targets, Targets::Tags(_))
                    && p.covers_account(&node.location.account)
                    && p.matches_tags(&node.tags)
            })
            .collect();
        let all_nodes = self
            .manual
            .iter()
            .filter(|p| p.targets == Targets::AllNodes && p.covers_account(&node.location.account))
            .min_by_key(|p| p.accounts.is_empty());
        (tag_specific, all_nodes)
    }

    /// A break-glass request: granted at once to a member of `break-glass.yaml`, for at most its
    /// maximum, unless a Cedar `forbid` matches because `context.breakGlass` is true (one that
    /// matches either way is a deny-access policy, which only removes auto-approval). The
    /// decision carries the plan of the manual policy that targets the node (none when no manual
    /// policy does: administrators review then): whom to tell now, and who reviews it.
    pub fn decide_break_glass(
        &self,
        principal: &ResolvedPrincipal,
        member: bool,
        node: &NodeInfo,
        requested: Option<DurationMinutes>,
        now: DateTime<Utc>,
    ) -> Decision {
        let refuse = |code: &str, message: String, ids: Vec<String>| Decision {
            outcome: RequestStatus::Failed,
            rule: DecisionRule::BreakGlass,
            deciding_policy_ids: ids,
            deny_policy_ids: vec![],
            failure_code: Some(code.to_owned()),
            message,
            max_duration_minutes: None,
            approval_plan: None,
            node_tags: node.tags.clone(),
            node_location: Some(node.location.clone()),
            decided_at: now,
        };
        let Some(settings) = self.break_glass.as_ref() else {
            return refuse(
                "BreakGlassNotConfigured",
                "break-glass is not configured (no break-glass.yaml)".into(),
                vec![],
            );
        };
        if !member {
            return refuse(
                "NotInBreakGlassGroup",
                "you are not a member of the break-glass group (break-glass.yaml): ask for access the usual way".into(),
                vec![],
            );
        }
        let normal = self.stage(principal, node, now, false);
        let glass = self.stage(principal, node, now, true);
        let forbidding: Vec<String> = glass.forbids.iter().filter(|id| !normal.forbids.contains(id)).cloned().collect();
        if !forbidding.is_empty() {
            return refuse(
                "BreakGlassForbidden",
                format!("break-glass is forbidden for this node by {}", forbidding.join(", ")),
                forbidding,
            );
        }
        if glass.forbid_unsure {
            // A forbid that could not be evaluated might have forbidden it: fail closed. (A
            // permit that errors does not apply, and break-glass needs no permit.)
            return refuse(
                "BreakGlassForbidden",
                format!(
                    "a policy could not be evaluated for break-glass (refused for safety): {}",
                    glass.errors.join("; ")
                ),
                vec![],
            );
        }
        let max = settings.max_duration_minutes;
        let asked = requested.map_or(max, DurationMinutes::get);
        if asked > max {
            return Decision {
                max_duration_minutes: Some(max),
                ..refuse(
                    "DurationExceedsMaximum",
                    format!("break-glass access lasts at most {max} minutes; ask for {max} minutes or less"),
                    vec![],
                )
            };
        }
        let (tag_specific, all_nodes) = self.manual_candidates(node);
        // With two tag-specific policies (a conflict for a normal request), the first one's
        // approvers are told: break-glass must not wait for the conflict to be fixed.
        let policy = tag_specific.first().copied().or(all_nodes);
        Decision {
            outcome: RequestStatus::Approved,
            rule: DecisionRule::BreakGlass,
            deciding_policy_ids: policy.iter().map(|p| p.id()).collect(),
            deny_policy_ids: normal.deny_ids(),
            failure_code: None,
            message: format!(
                "break-glass: granted at once for {asked} minutes; the node's approvers are told and must review it within {} minutes",
                settings.review_within_minutes
            ),
            max_duration_minutes: Some(max),
            approval_plan: policy.map(ManualPolicy::plan),
            node_tags: node.tags.clone(),
            node_location: Some(node.location.clone()),
            decided_at: now,
        }
    }

    /// Plain Cedar over every statement of the set, without the index: the baseline `make bench`
    /// measures the engine against (same request and entities as `decide`).
    pub fn whole_set(&self) -> Result<WholeSet<'_>, EngineError> {
        Ok(WholeSet { set: self, whole: self.index.all()? })
    }

    /// Whether deciding for a node with these tags looks at the requester at all: when no
    /// statement that can apply to it does, the decision is the same for every requester, and
    /// the evaluator skips resolving them (two IAM calls).
    pub fn needs_principal(&self, node_tags: &BTreeMap<String, String>) -> bool {
        self.index.needs_principal(node_tags)
    }

    /// Decides a request. Pure: the same inputs always give the same decision.
    pub fn decide(
        &self,
        principal: &ResolvedPrincipal,
        node: &NodeInfo,
        duration: DurationMinutes,
        now: DateTime<Utc>,
    ) -> Decision {
        self.decide_for(principal, node, Some(duration), now)
    }

    /// The shortest window of the matching auto-approval permits, if any matched; none (no
    /// auto-approval) when a matching permit is not a statement of the set, whose window is then
    /// unknown.
    fn auto_window(&self, auto: &AutoStage) -> Option<u32> {
        let windows: Option<Vec<u32>> = auto
            .permits
            .iter()
            .map(|id| self.statements.get(id).map(|s| s.window_minutes.unwrap_or(DEFAULT_AUTO_APPROVAL_WINDOW_MINUTES)))
            .collect();
        windows?.into_iter().min()
    }

    /// The auto-approval window when an auto-approval permit matched and it allows `requested`.
    fn auto_window_within(&self, auto: &AutoStage, requested: Option<DurationMinutes>) -> Option<u32> {
        let window = self.auto_window(auto)?;
        (requested.map_or(window, DurationMinutes::get) <= window).then_some(window)
    }

    /// `decide`, for a request that may ask for no duration (`None`): it is never refused for
    /// its length, and gets the auto-approval window or the manual policy's maximum
    /// (`Decision::max_duration_minutes`).
    pub fn decide_for(
        &self,
        principal: &ResolvedPrincipal,
        node: &NodeInfo,
        requested: Option<DurationMinutes>,
        now: DateTime<Utc>,
    ) -> Decision {
        self.decide_inner(principal, node, requested, false, now)
    }

    /// An extension, decided for the new `total`: auto-approved when an auto-approval window
    /// allows the total, otherwise (even where an auto-approval permit matched but its window is
    /// too short) by the manual policy that targets the node, as a new request would be.
    pub fn decide_extension(
        &self,
        principal: &ResolvedPrincipal,
        node: &NodeInfo,
        total: DurationMinutes,
        now: DateTime<Utc>,
    ) -> Decision {
        self.decide_inner(principal, node, Some(total), true, now)
    }

    fn decide_inner(
        &self,
        principal: &ResolvedPrincipal,
        node: &NodeInfo,
        requested: Option<DurationMinutes>,
        beyond_window_goes_manual: bool,
        now: DateTime<Utc>,
    ) -> Decision {
        let auto = self.auto_stage(principal, node, now);
        let mut notes: Vec<String> = auto
            .errors
            .iter()
            .map(|e| format!("policy evaluation error (auto-approval skipped for safety where it mattered): {e}"))
            .collect();
        if let Some(window) = self.auto_window(&auto) {
            let asked = requested.map_or(window, DurationMinutes::get);
            if asked > window && beyond_window_goes_manual {
                notes.push(format!(
                    "auto-approval allows at most {window} minutes in all, {asked} were asked for: manual approval decides"
                ));
            } else if asked > window {
                return Decision {
                    outcome: RequestStatus::Failed,
                    rule: DecisionRule::DurationExceedsMaximum,
                    deciding_policy_ids: auto.permits,
                    deny_policy_ids: vec![],
                    failure_code: Some("DurationExceedsMaximum".into()),
                    message: format!(
                        "requested {asked} minutes, but auto-approval allows at most {window} minutes; ask for {window} minutes or less"
                    ),
                    max_duration_minutes: Some(window),
                    approval_plan: None,
                    node_tags: node.tags.clone(),
                node_location: Some(node.location.clone()),
                    decided_at: now,
                };
            }
        }
        if let Some(window) = self.auto_window_within(&auto, requested) {
            let asked = requested.map_or(window, DurationMinutes::get);
            notes.insert(
                0,
                match requested {
                    Some(_) => format!("auto-approved for {asked} minutes"),
                    None => {
                        format!("auto-approved for {asked} minutes (the policy's window: no duration was asked for)")
                    }
                },
            );
            return Decision {
                outcome: RequestStatus::Approved,
                rule: DecisionRule::AutoApproval,
                deciding_policy_ids: auto.permits,
                deny_policy_ids: vec![],
                failure_code: None,
                message: notes.join("; "),
                max_duration_minutes: Some(window),
                approval_plan: None,
                node_tags: node.tags.clone(),
                node_location: Some(node.location.clone()),
                decided_at: now,
            };
        }
        let deny_ids = auto.deny_ids();
        if !deny_ids.is_empty() {
            notes.push(format!("deny-access policies removed auto-approval: {}", deny_ids.join(", ")));
        }

        let (tag_specific, all_nodes) = self.manual_candidates(node);
        let failed = |rule: DecisionRule, code: &str, ids: Vec<String>, message: String, max: Option<u32>| Decision {
            outcome: RequestStatus::Failed,
            rule,
            deciding_policy_ids: ids,
            deny_policy_ids: deny_ids,
            failure_code: Some(code.to_owned()),
            message,
            max_duration_minutes: max,
            approval_plan: None,
            node_tags: node.tags.clone(),
            node_location: Some(node.location.clone()),
            decided_at: now,
        };
        let (policy, rule) = match (tag_specific.as_slice(), all_nodes) {
            ([one], _) => (*one, DecisionRule::ManualTagSpecific),
            ([], Some(all)) => (all, DecisionRule::ManualAllNodes),
            ([], None) => {
                notes.insert(0, format!("no auto-approval or manual-approval policy applies to node {}", node.node_id));
                return failed(DecisionRule::NoApplicablePolicy, "NoApplicablePolicy", vec![], notes.join("; "), None);
            }
            (many, _) => {
                let ids: Vec<String> = many.iter().map(|p| p.id()).collect();
                notes.insert(
                    0,
                    format!(
                        "policy conflict: {} manual-approval policies target this node's tags ({})",
                        ids.len(),
                        ids.join(", ")
                    ),
                );
                return failed(DecisionRule::PolicyConflict, "PolicyConflict", ids, notes.join("; "), None);
            }
        };
        if let Some(duration) = requested.filter(|d| d.get() > policy.max_duration_minutes) {
            let max = policy.max_duration_minutes;
            return failed(
                DecisionRule::DurationExceedsMaximum,
                "DurationExceedsMaximum",
                vec![policy.id()],
                format!(
                    "requested {} minutes, but manual-approval policy '{}' allows at most {max} minutes; ask for {max} minutes or less",
                    duration.get(),
                    policy.name
                ),
                Some(max),
            );
        }
        notes.insert(0, format!("waiting for approval under manual-approval policy '{}'", policy.name));
        Decision {
            outcome: RequestStatus::Pending,
            rule,
            deciding_policy_ids: vec![policy.id()],
            deny_policy_ids: auto.deny_ids(),
            failure_code: None,
            message: notes.join("; "),
            max_duration_minutes: Some(policy.max_duration_minutes),
            approval_plan: Some(policy.plan()),
            node_tags: node.tags.clone(),
            node_location: Some(node.location.clone()),
            decided_at: now,
        }
    }
}

/// See `PolicySet::whole_set`.
pub struct WholeSet<'a> {
    set: &'a PolicySet,
    whole: cedar_policy::PolicySet,
}

impl WholeSet<'_> {
    /// Cedar's decision over every statement: true when a permit holds and no forbid does.
    pub fn is_allowed(
        &self,
        principal: &ResolvedPrincipal,
        node: &NodeInfo,
        now: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        let (request, entities) = cedar_request(self.set, principal, node, now, false)?;
        let response = Authorizer::new().is_authorized(&request, &self.whole, &entities);
        Ok(response.decision() == CedarDecision::Allow)
    }
}
