//! The one DynamoDB table. All item mapping lives here.
//!
//! | item              | pk                     | sk                  | gsi1 (by-requester)              | gsi2 (by-approver)               |
//! |-------------------|------------------------|---------------------|----------------------------------|----------------------------------|
//! | request           | `REQ#<id>`             | `META`              | `REQUESTER#<arn>` / `<created>#<id>` |                              |
//! | audit record      | `REQ#<id>`             | `AUDIT#<version>`   |                                  |                                  |
//! | approver entry    | `REQ#<id>`             | `APPROVER#<key>`    |                                  | `APPROVER#<key>` / `<created>#<id>` |
//! | decided entry     | `REQ#<id>`             | `DECIDED#<person>`  |                                  | `DECIDED#<person>` / `<at>#<id>` |
//! | idempotency key   | `IDEM#<sha256>`        | `IDEM`              |                                  |                                  |
//!
//! Approver entries exist only while a request is `Pending`, so the by-approver index is sparse.
//! `expiresAt` (epoch seconds, the table's TTL attribute) ends what is kept: audit records
//! `retention` after their change, a request `retention` after it reaches a final status (never
//! while it can still change), idempotency keys after 24 hours.
//! So is the by-deadline index (gsi3, `<partition>` / `<time>#<id>`): `SUBMITTED` by creation
//! while the evaluation has not decided, `PENDING` by approval deadline, `AWAITING_GRANT` by
//! approval time, `GRANTED` by access deadline, `ENDED` by the time access ended: what the
//! sweeper reads.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, Put, ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::adapters::stream::{CHANGE_ATTRIBUTE, OUTBOX_ATTRIBUTE, OUTBOX_EVENTS};
use crate::adapters::{classify, Order};
use crate::domain::events::ChangeRecord;
use crate::domain::grant::GrantMode;
use crate::domain::ids::RequestId;
use crate::domain::principal::CallerArn;
use crate::domain::request::{AccessRequest, AuditRecord, Decision};
use crate::domain::status::RequestStatus;
use crate::ports::{
    CreateOutcome, IdempotencyRecord, ListPosition, ListQuery, Page, PortError, RequestStore, Transition,
    TransitionError,
};

pub const BY_REQUESTER_INDEX: &str = "by-requester";
pub const BY_APPROVER_INDEX: &str = "by-approver";
pub const BY_DEADLINE_INDEX: &str = "by-deadline";
const PENDING_PARTITION: &str = "PENDING";
/// Approved requests with an attached grant, by deadline (the reconciliation sweep reads it).
const GRANTED_PARTITION: &str = "GRANTED";
/// Approved requests whose grant is not recorded yet, by approval time (the sweep starts their
/// lifecycle again if it never ran).
const AWAITING_GRANT_PARTITION: &str = "AWAITING_GRANT";
/// Requests that left `Approved` (revoked, expired or failed), by when: the sweep makes sure
/// nothing of the recent ones remains (it reads only a recent range; TTL ends the rest).
const ENDED_PARTITION: &str = "ENDED";
/// Break-glass grants whose review is open, by due time (marker items, `sk` = `REVIEW`).
const REVIEW_PARTITION: &str = "REVIEW";
/// Requests waiting for their evaluation, by creation time (the sweep fails those stuck).
const SUBMITTED_PARTITION: &str = "SUBMITTED";

type Item = HashMap<String, AttributeValue>;

/// The TTL attribute (`TimeToLiveSpecification` in template.yaml).
pub const EXPIRES_AT_ATTRIBUTE: &str = "expiresAt";
/// How long an idempotency key is honoured.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long records are kept (`JIT_RECORD_RETENTION_DAYS`).
    retention: chrono::Duration,
}

/// The TTL value: epoch seconds.
fn expires(at: &DateTime<Utc>, after: chrono::Duration) -> AttributeValue {
    AttributeValue::N((*at + after).timestamp().to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: u32) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}
fn request_pk(id: &RequestId) -> String {
    format!("REQ#{id}")
}
fn requester_pk(arn: &CallerArn) -> String {
    format!("REQUESTER#{arn}")
}
fn created_sk(created: &DateTime<Utc>, id: &RequestId) -> String {
    format!("{}#{id}", ts(created))
}
fn idempotency_pk(record: &IdempotencyRecord) -> String {
    // Hashing bounds the key size; the caller is part of it so keys never collide across callers.
    format!("IDEM#{}", hex::encode(Sha256::digest(format!("{}\n{}", record.caller, record.key))))
}
fn bad(what: &str) -> PortError {
    PortError::Permanent(format!("stored item is malformed: {what}"))
}
fn build_err(e: impl std::fmt::Display) -> PortError {
    PortError::Permanent(format!("building a DynamoDB call: {e}"))
}

fn get_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, PortError> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| bad(k))
}
fn get_n(item: &Item, k: &str) -> Result<u32, PortError> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| bad(k))
}
fn get_time(item: &Item, k: &str) -> Result<DateTime<Utc>, PortError> {
    DateTime::parse_from_rfc3339(get_s(item, k)?).map(|t| t.with_timezone(&Utc)).map_err(|_| bad(k))
}

fn request_to_item(r: &AccessRequest) -> Result<Item, PortError> {
    let mut item = Item::from([
        ("pk".into(), s(request_pk(&r.request_id))),
        ("sk".into(), s("META")),
        ("type".into(), s("request")),
        ("requestId".into(), s(r.request_id.as_str())),
        ("requester".into(), s(r.requester.as_str())),
        ("nodeId".into(), s(r.node_id.as_str())),
        ("reason".into(), s(r.reason.as_str())),
        ("durationMinutes".into(), n(r.duration_minutes.get())),
        ("durationFromPolicy".into(), AttributeValue::Bool(r.duration_from_policy)),
        ("status".into(), s(r.status.as_str())),
        ("createdAt".into(), s(ts(&r.created_at))),
        ("updatedAt".into(), s(ts(&r.updated_at))),
        ("version".into(), n(r.version)),
        ("gsi1pk".into(), s(requester_pk(&r.requester))),
        ("gsi1sk".into(), s(created_sk(&r.created_at, &r.request_id))),
    ]);
    if r.status == RequestStatus::Submitted {
        item.insert("gsi3pk".into(), s(SUBMITTED_PARTITION));
        item.insert("gsi3sk".into(), s(created_sk(&r.created_at, &r.request_id)));
    }
    if let Some(d) = &r.decision {
        item.insert("decision".into(), s(decision_json(d)?));
    }
    if let Some(p) = &r.progress {
        item.insert("approval".into(), s(to_json(p)?));
        item.insert("pendingUntil".into(), s(ts(&p.pending_until)));
    }
    if let Some(at) = &r.approved_at {
        item.insert("approvedAt".into(), s(ts(at)));
    }
    if let Some(g) = &r.grant {
        item.insert("grant".into(), s(to_json(g)?));
    }
    item.insert("grantMode".into(), s(r.grant_mode.as_str()));
    if let Some(seal) = &r.approval_seal {
        item.insert("approvalSeal".into(), s(seal));
    }
    if let Some(c) = &r.credentials {
        item.insert("credentials".into(), s(to_json(c)?));
    }
    if let Some(at) = &r.starts_at {
        item.insert("startsAt".into(), s(ts(at)));
    }
    if let Some(of) = &r.extends {
        item.insert("extends".into(), s(of.as_str()));
    }
    if r.break_glass {
        item.insert("breakGlass".into(), AttributeValue::Bool(true));
    }
    if let Some(review) = &r.review {
        item.insert("review".into(), s(to_json(review)?));
    }
    if let Some(at) = &r.revoke_held_at {
        item.insert(REVOKE_HELD_AT.into(), s(ts(at)));
    }
    Ok(item)
}

/// Set on a request by `RequestStore::hold_for_revoke`; an issuance's write requires it absent.
const REVOKE_HELD_AT: &str = "revokeHeldAt";

fn decision_json(d: &Decision) -> Result<String, PortError> {
    to_json(d)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| PortError::Permanent(format!("serializing for DynamoDB: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(item: &Item, k: &str) -> Result<Option<T>, PortError> {
    match item.get(k) {
        None => Ok(None),
        Some(v) => Ok(Some(serde_json::from_str(v.as_s().map_err(|_| bad(k))?).map_err(|_| bad(k))?)),
    }
}

fn item_to_request(item: &Item) -> Result<AccessRequest, PortError> {
    Ok(AccessRequest {
        request_id: RequestId::try_from(get_s(item, "requestId")?.to_owned()).map_err(|_| bad("requestId"))?,
        requester: CallerArn::try_from(get_s(item, "requester")?.to_owned()).map_err(|_| bad("requester"))?,
        node_id: get_s(item, "nodeId")?.to_owned().try_into().map_err(|_| bad("nodeId"))?,
        reason: get_s(item, "reason")?.to_owned().try_into().map_err(|_| bad("reason"))?,
        duration_minutes: get_n(item, "durationMinutes")?.try_into().map_err(|_| bad("durationMinutes"))?,
        duration_from_policy: item.get("durationFromPolicy").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        status: get_s(item, "status")?.parse().map_err(|_| bad("status"))?,
        created_at: get_time(item, "createdAt")?,
        updated_at: get_time(item, "updatedAt")?,
        version: get_n(item, "version")?,
        decision: from_json(item, "decision")?,
        progress: from_json(item, "approval")?,
        approved_at: item.get("approvedAt").map(|_| get_time(item, "approvedAt")).transpose()?,
        grant: from_json(item, "grant")?,
        grant_mode: match item.get("grantMode") {
            None => GrantMode::stored_default(),
            Some(_) => get_s(item, "grantMode")?.parse().map_err(|_| bad("grantMode"))?,
        },
        credentials: from_json(item, "credentials")?,
        approval_seal: item.get("approvalSeal").and_then(|v| v.as_s().ok()).cloned(),
        starts_at: item.get("startsAt").map(|_| get_time(item, "startsAt")).transpose()?,
        extends: item
            .get("extends")
            .map(|_| RequestId::try_from(get_s(item, "extends")?.to_owned()).map_err(|_| bad("extends")))
            .transpose()?,
        break_glass: item.get("breakGlass").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        review: from_json(item, "review")?,
        revoke_held_at: item.get(REVOKE_HELD_AT).map(|_| get_time(item, REVOKE_HELD_AT)).transpose()?,
    })
}

/// The audit record, with the change the table's stream turns into events (`adapters::stream`).
fn audit_to_item(a: &AuditRecord, change: &ChangeRecord, retention: chrono::Duration) -> Result<Item, PortError> {
    let mut item = Item::from([
        (EXPIRES_AT_ATTRIBUTE.into(), expires(&a.at, retention)),
        ("pk".into(), s(request_pk(&a.request_id))),
        ("sk".into(), s(format!("AUDIT#{:06}", a.version))),
        ("type".into(), s("audit")),
        ("requestId".into(), s(a.request_id.as_str())),
        ("version".into(), n(a.version)),
        ("to".into(), s(a.to.as_str())),
        ("actor".into(), s(a.actor.clone())),
        ("at".into(), s(ts(&a.at))),
        ("reason".into(), s(a.reason.clone())),
    ]);
    if let Some(from) = a.from {
        item.insert("from".into(), s(from.as_str()));
    }
    if let Some(entry) = &a.approval {
        item.insert("approval".into(), s(to_json(entry)?));
    }
    if let Some(level) = a.level_completed {
        item.insert("levelCompleted".into(), n(u32::from(level)));
    }
    if let Some(issue) = &a.credentials {
        item.insert("credentials".into(), s(to_json(issue)?));
    }
    if let Some(nudge) = &a.nudge {
        item.insert("nudge".into(), s(to_json(nudge)?));
    }
    if let Some(extension) = &a.extension {
        item.insert("extension".into(), s(to_json(extension)?));
    }
    if let Some(review) = &a.review {
        item.insert("review".into(), s(to_json(review)?));
    }
    if !change.events().is_empty() {
        item.insert(OUTBOX_ATTRIBUTE.into(), s(OUTBOX_EVENTS));
    }
    item.insert(CHANGE_ATTRIBUTE.into(), s(to_json(change)?));
    Ok(item)
}

fn item_to_audit(item: &Item) -> Result<AuditRecord, PortError> {
    Ok(AuditRecord {
        request_id: RequestId::try_from(get_s(item, "requestId")?.to_owned()).map_err(|_| bad("requestId"))?,
        version: get_n(item, "version")?,
        from: item
            .get("from")
            .and_then(|v| v.as_s().ok())
            .map(|v| v.parse::<RequestStatus>())
            .transpose()
            .map_err(|_| bad("from"))?,
        to: get_s(item, "to")?.parse().map_err(|_| bad("to"))?,
        actor: get_s(item, "actor")?.to_owned(),
        at: get_time(item, "at")?,
        reason: get_s(item, "reason")?.to_owned(),
        approval: from_json(item, "approval")?,
        level_completed: item
            .get("levelCompleted")
            .map(|_| get_n(item, "levelCompleted"))
            .transpose()?
            .map(|l| u8::try_from(l).map_err(|_| bad("levelCompleted")))
            .transpose()?,
        credentials: from_json(item, "credentials")?,
        nudge: from_json(item, "nudge")?,
        extension: from_json(item, "extension")?,
        review: from_json(item, "review")?,
    })
}

impl DynamoStore {
    /// A store keeping records for `DEFAULT_RECORD_RETENTION_DAYS` (see `with_retention_days`).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention: chrono::Duration::days(i64::from(crate::config::DEFAULT_RECORD_RETENTION_DAYS)),
        }
    }

    /// Keeps audit records and ended requests `days` days.
    #[must_use]
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention = chrono::Duration::days(i64::from(days));
        self
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, PortError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn get_item(&self, pk: String, sk: &str) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        Ok(out.item)
    }

    async fn past_deadline(
        &self,
        partition: &str,
        now: DateTime<Utc>,
        limit: u32,
        order: Order,
    ) -> Result<Vec<RequestId>, PortError> {
        // `~` sorts after every character of `<deadline>#<id>`, so `<now>#~` bounds all
        // deadlines at or before `now`.
        self.by_time(partition, "gsi3sk <= :bound", format!("{}#~", ts(&now)), limit, order).await
    }

    /// Ids in one partition of the by-deadline index whose sort key meets `condition` on
    /// `:bound`, in `order`, following pages up to `limit`.
    async fn by_time(
        &self,
        partition: &str,
        condition: &str,
        bound: String,
        limit: u32,
        order: Order,
    ) -> Result<Vec<RequestId>, PortError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_DEADLINE_INDEX)
                .scan_index_forward(order == Order::OldestFirst)
                .key_condition_expression(format!("gsi3pk = :partition AND {condition}"))
                .expression_attribute_values(":partition", s(partition))
                .expression_attribute_values(":bound", s(bound.clone()))
                .limit(i32::try_from(limit.saturating_sub(u32::try_from(ids.len()).unwrap_or(u32::MAX))).unwrap_or(100))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            for i in out.items() {
                ids.push(RequestId::try_from(get_s(i, "requestId")?.to_owned()).map_err(|_| bad("requestId"))?);
            }
            match out.last_evaluated_key {
                Some(k) if ids.len() < limit as usize => start = Some(k),
                _ => return Ok(ids),
            }
        }
    }

    /// What an earlier create with the same key did; `None` when there was none, or its key is
    /// past its 24 hours (TTL deletes lazily, so an expired item may still be read).
    /// The request ids of one by-approver partition (pending requests of an approver key, or
    /// decisions of a person), newest first.
    async fn by_approver_index(&self, partition: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_APPROVER_INDEX)
            .key_condition_expression("gsi2pk = :pk")
            .expression_attribute_values(":pk", s(partition))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(100))
            .send()
            .await
            .map_err(|e| classify("Query", &e))?;
        out.items()
            .iter()
            .map(|i| RequestId::try_from(get_s(i, "requestId")?.to_owned()).map_err(|_| bad("requestId")))
            .collect()
    }

    async fn replay_key(
        &self,
        record: &IdempotencyRecord,
        now: &DateTime<Utc>,
    ) -> Result<Option<CreateOutcome>, PortError> {
        let Some(item) = self.get_item(idempotency_pk(record), "IDEM").await? else {
            return Ok(None);
        };
        let expired = item
            .get(EXPIRES_AT_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|at| at <= now.timestamp());
        if expired {
            return Ok(None);
        }
        if get_s(&item, "bodyHash")? != record.body_hash {
            return Ok(Some(CreateOutcome::KeyReused));
        }
        let id = RequestId::try_from(get_s(&item, "requestId")?.to_owned()).map_err(|_| bad("requestId"))?;
        let request = self.get(&id).await?.ok_or_else(|| bad("idempotency key without its request"))?;
        Ok(Some(CreateOutcome::Replayed(Box::new(request))))
    }
}

impl DynamoStore {
    /// The request's update: conditioned on the stored request being the change's basis (status,
    /// version, and its own fields and creation time, which key the indexes: a caller may decide
    /// on a request it did not read, as evaluation does with the Submitted event's copy), and
    /// while it is pending on the approval deadline. Sets the new status and the sparse index
    /// keys the change moves the request in or out of.
    fn update_of(&self, t: &Transition) -> Result<Update, PortError> {
        let basis = &t.basis;
        let id = t.request_id();
        let mut condition =
            "#status = :from AND #version = :expected AND #requester = :requester AND #node = :node AND #duration = :duration AND #reason = :reason AND createdAt = :created".to_owned();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(request_pk(id)))
            .key("sk", s("META"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#requester", "requester")
            .expression_attribute_names("#node", "nodeId")
            .expression_attribute_names("#duration", "durationMinutes")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_values(":requester", s(basis.requester.as_str()))
            .expression_attribute_values(":node", s(basis.node_id.as_str()))
            .expression_attribute_values(":duration", n(basis.duration_minutes.get()))
            .expression_attribute_values(":reason", s(basis.reason.as_str()))
            .expression_attribute_values(":created", s(ts(&basis.created_at)))
            .expression_attribute_values(":from", s(t.from().as_str()))
            .expression_attribute_values(":expected", n(t.expected_version()))
            .expression_attribute_values(":to", s(t.to.as_str()))
            .expression_attribute_values(":next", n(t.expected_version() + 1))
            .expression_attribute_values(":at", s(ts(&t.at)));
        let from = t.from();
        if t.credentials.is_some() {
            // A revoke holding the request wins against every later issuance.
            condition.push_str(" AND attribute_not_exists(revokeHeldAt)");
        }
        if from == RequestStatus::Pending {
            // The deadline is enforced here, in the write, not by whoever happens to sweep.
            condition.push_str(if t.to == RequestStatus::Expired {
                " AND pendingUntil <= :at"
            } else {
                " AND pendingUntil > :at"
            });
        }
        let mut set = "SET #status = :to, #version = :next, updatedAt = :at".to_owned();
        if let Some(duration) = t.duration {
            set.push_str(", #duration = :decided_duration");
            update = update.expression_attribute_values(":decided_duration", n(duration.get()));
        }
        if let Some(d) = &t.decision {
            set.push_str(", decision = :decision");
            update = update.expression_attribute_values(":decision", s(decision_json(d)?));
        }
        if let Some(p) = &t.progress {
            set.push_str(", approval = :approval");
            update = update.expression_attribute_values(":approval", s(to_json(p)?));
            if from != RequestStatus::Pending && t.to == RequestStatus::Pending {
                set.push_str(", pendingUntil = :until, gsi3pk = :pending, gsi3sk = :deadline");
                update = update
                    .expression_attribute_values(":until", s(ts(&p.pending_until)))
                    .expression_attribute_values(":pending", s(PENDING_PARTITION))
                    .expression_attribute_values(":deadline", s(created_sk(&p.pending_until, id)));
            }
        }
        let becomes_approved = t.to == RequestStatus::Approved && from != RequestStatus::Approved;
        if becomes_approved {
            // A scheduled approval awaits its grant from its start: the sweep, which reads the
            // oldest of this partition up to now minus a grace, never sees it before then.
            let awaits_from = t.basis.starts_at.map_or(t.at, |s| s.max(t.at));
            set.push_str(", approvedAt = :at, gsi3pk = :awaiting, gsi3sk = :approved_sk");
            update = update
                .expression_attribute_values(":awaiting", s(AWAITING_GRANT_PARTITION))
                .expression_attribute_values(":approved_sk", s(created_sk(&awaits_from, id)));
        }
        if let Some(g) = &t.grant {
            set.push_str(", #grant = :grant");
            update = update
                .expression_attribute_names("#grant", "grant")
                .expression_attribute_values(":grant", s(to_json(g)?));
            if t.attaches_grant() {
                set.push_str(", gsi3pk = :granted, gsi3sk = :grant_deadline");
                update = update
                    .expression_attribute_values(":granted", s(GRANTED_PARTITION))
                    .expression_attribute_values(":grant_deadline", s(created_sk(&g.deadline, id)));
            }
        }
        if let Some(seal) = &t.approval_seal {
            set.push_str(", approvalSeal = :seal");
            update = update.expression_attribute_values(":seal", s(seal));
        }
        if let Some(review) = &t.review {
            set.push_str(", review = :review");
            update = update.expression_attribute_values(":review", s(to_json(review)?));
        }
        if t.credentials.is_some() {
            set.push_str(", credentials = :credentials");
            update = update.expression_attribute_values(":credentials", s(to_json(&t.after().credentials)?));
        }
        if t.to.is_terminal() {
            set.push_str(", #expires = :expires");
            update = update
                .expression_attribute_names("#expires", EXPIRES_AT_ATTRIBUTE)
                .expression_attribute_values(":expires", expires(&t.at, self.retention));
        }
        let leaves_pending = from == RequestStatus::Pending && t.to != RequestStatus::Pending;
        let leaves_submitted = from == RequestStatus::Submitted && t.to.is_terminal();
        let leaves_approved = from == RequestStatus::Approved && t.to != RequestStatus::Approved;
        if leaves_approved {
            set.push_str(", gsi3pk = :ended, gsi3sk = :ended_sk");
            update = update
                .expression_attribute_values(":ended", s(ENDED_PARTITION))
                .expression_attribute_values(":ended_sk", s(created_sk(&t.at, id)));
        } else if (leaves_pending && !becomes_approved) || leaves_submitted {
            // Approved-from-Pending moves to the awaiting-grant partition (set above) instead.
            set.push_str(" REMOVE gsi3pk, gsi3sk");
        }
        update.condition_expression(condition).update_expression(set).build().map_err(build_err)
    }

    /// The approver-index entries a change adds (entering `Pending`) or removes (leaving it).
    fn approver_entries(&self, t: &Transition) -> Result<Vec<TransactWriteItem>, PortError> {
        let keys_of = |d: &Option<Decision>| -> BTreeSet<String> {
            d.iter()
                .filter_map(|d| d.approval_plan.as_ref())
                .flat_map(|p| p.all_approvers().map(|a| a.index_key()))
                .collect()
        };
        let id = t.request_id();
        let mut writes = Vec::new();
        // An open break-glass review is a marker item in the by-deadline index, due at its due
        // time (the sweeper raises the unreviewed alarm); deciding the review deletes it.
        match &t.review {
            Some(review) if review.is_open() => {
                let item = Item::from([
                    ("pk".into(), s(request_pk(id))),
                    ("sk".into(), s("REVIEW")),
                    ("type".into(), s("review")),
                    ("requestId".into(), s(id.as_str())),
                    ("gsi3pk".into(), s(REVIEW_PARTITION)),
                    ("gsi3sk".into(), s(created_sk(&review.due, id))),
                ]);
                writes.push(self.put(item, "attribute_not_exists(pk)")?);
            }
            Some(_) => {
                let delete = aws_sdk_dynamodb::types::Delete::builder()
                    .table_name(&self.table)
                    .key("pk", s(request_pk(id)))
                    .key("sk", s("REVIEW"))
                    .build()
                    .map_err(build_err)?;
                writes.push(TransactWriteItem::builder().delete(delete).build());
            }
            None => {}
        }
        // Who decided, for "the requests I decided": kept as long as the audit record.
        if let Some(entry) = &t.approval {
            let person = entry.counted_as();
            let item = Item::from([
                ("pk".into(), s(request_pk(id))),
                ("sk".into(), s(format!("DECIDED#{person}"))),
                ("type".into(), s("decided")),
                ("requestId".into(), s(id.as_str())),
                ("gsi2pk".into(), s(format!("DECIDED#{person}"))),
                ("gsi2sk".into(), s(created_sk(&entry.at, id))),
                (EXPIRES_AT_ATTRIBUTE.into(), expires(&t.at, self.retention)),
            ]);
            let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(build_err)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        if t.is_in_place() {
            return Ok(writes);
        }
        if t.to == RequestStatus::Pending {
            for key in keys_of(&t.decision) {
                let item = Item::from([
                    ("pk".into(), s(request_pk(id))),
                    ("sk".into(), s(format!("APPROVER#{key}"))),
                    ("type".into(), s("approver")),
                    ("requestId".into(), s(id.as_str())),
                    ("gsi2pk".into(), s(format!("APPROVER#{key}"))),
                    ("gsi2sk".into(), s(created_sk(&t.basis.created_at, id))),
                ]);
                writes.push(self.put(item, "attribute_not_exists(pk)")?);
            }
        }
        if t.from() == RequestStatus::Pending {
            for key in keys_of(&t.basis.decision) {
                let delete = aws_sdk_dynamodb::types::Delete::builder()
                    .table_name(&self.table)
                    .key("pk", s(request_pk(id)))
                    .key("sk", s(format!("APPROVER#{key}")))
                    .build()
                    .map_err(build_err)?;
                writes.push(TransactWriteItem::builder().delete(delete).build());
            }
        }
        Ok(writes)
    }
}

/// Creates the table with its indexes and its stream (the local stack and tests; `template.yaml`
/// in AWS); returns the stream's ARN.
pub async fn create_table(client: &Client, table: &str) -> Result<String, PortError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_err)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(build_err)
    };
    let index = |name: &str, pk: &str, sk: &str| -> Result<GlobalSecondaryIndex, PortError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_err)
    };
    let out = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            attr("pk")?,
            attr("sk")?,
            attr("gsi1pk")?,
            attr("gsi1sk")?,
            attr("gsi2pk")?,
            attr("gsi2sk")?,
            attr("gsi3pk")?,
            attr("gsi3sk")?,
        ]))
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index(BY_REQUESTER_INDEX, "gsi1pk", "gsi1sk")?)
        .global_secondary_indexes(index(BY_APPROVER_INDEX, "gsi2pk", "gsi2sk")?)
        .global_secondary_indexes(index(BY_DEADLINE_INDEX, "gsi3pk", "gsi3sk")?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(build_err)?,
        )
        .send()
        .await
        .map_err(|e| classify("CreateTable", &e))?;
    let stream = out
        .table_description
        .and_then(|d| d.latest_stream_arn)
        .ok_or_else(|| PortError::Permanent(format!("table {table} was created without a stream")))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES_AT_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(build_err)?,
        )
        .send()
        .await
        .map_err(|e| classify("UpdateTimeToLive", &e))?;
    Ok(stream)
}

fn is_condition_failure(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> Option<bool> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            let reasons = e.cancellation_reasons();
            // With no reasons reported, assume a failed condition: the caller re-reads and decides.
            // A concurrent transaction on one of the items (TransactionConflict) is the same for the
            // caller: what it decided on may have moved, so it reads again and decides again.
            Some(
                reasons.is_empty()
                    || reasons
                        .iter()
                        .any(|r| matches!(r.code(), Some("ConditionalCheckFailed" | "TransactionConflict"))),
            )
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl RequestStore for DynamoStore {
    async fn create(
        &self,
        request: &AccessRequest,
        audit: &AuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, PortError> {
        let change = ChangeRecord::of(audit, request.clone());
        let mut writes = vec![
            self.put(request_to_item(request)?, "attribute_not_exists(pk)")?,
            self.put(audit_to_item(audit, &change, self.retention)?, "attribute_not_exists(pk)")?,
        ];
        if let Some(record) = idempotency {
            let item = Item::from([
                ("pk".into(), s(idempotency_pk(record))),
                ("sk".into(), s("IDEM")),
                ("type".into(), s("idempotency")),
                ("requestId".into(), s(request.request_id.as_str())),
                ("bodyHash".into(), s(record.body_hash.clone())),
                ("createdAt".into(), s(ts(&request.created_at))),
                (
                    EXPIRES_AT_ATTRIBUTE.into(),
                    expires(&request.created_at, chrono::Duration::hours(IDEMPOTENCY_TTL_HOURS)),
                ),
            ]);
            // A key past its 24 hours may be taken again (TTL deletes lazily).
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR #expires <= :now")
                .expression_attribute_names("#expires", EXPIRES_AT_ATTRIBUTE)
                .expression_attribute_values(":now", AttributeValue::N(request.created_at.timestamp().to_string()))
                .build()
                .map_err(build_err)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        // Concurrent creates with one key: one transaction wins; the others are cancelled and
        // then find the winner's key. A cancel that finds no key was a transient conflict.
        let mut delay = Duration::from_millis(20);
        for _ in 0..6 {
            match self.client.transact_write_items().set_transact_items(Some(writes.clone())).send().await {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(e) => {
                    let Some(record) = idempotency else {
                        return Err(classify("TransactWriteItems", &e));
                    };
                    if is_condition_failure(&e).is_none()
                        && !matches!(classify("TransactWriteItems", &e), PortError::Transient(_))
                    {
                        return Err(classify("TransactWriteItems", &e));
                    }
                    if let Some(outcome) = self.replay_key(record, &request.created_at).await? {
                        return Ok(outcome);
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        Err(PortError::Transient("TransactWriteItems: kept conflicting with a concurrent write".into()))
    }

    async fn replay(&self, record: &IdempotencyRecord, now: DateTime<Utc>) -> Result<Option<CreateOutcome>, PortError> {
        self.replay_key(record, &now).await
    }

    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, PortError> {
        self.get_item(request_pk(id), "META").await?.as_ref().map(item_to_request).transpose()
    }

    async fn list_by_requester(&self, requester: &CallerArn, query: &ListQuery) -> Result<Page, PortError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_REQUESTER_INDEX)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(requester_pk(requester)))
            .scan_index_forward(false)
            .limit(i32::try_from(query.limit).unwrap_or(100));
        if let Some(status) = query.status {
            q = q
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        if let Some(after) = &query.after {
            q = q
                .exclusive_start_key("pk", s(request_pk(&after.request_id)))
                .exclusive_start_key("sk", s("META"))
                .exclusive_start_key("gsi1pk", s(requester_pk(requester)))
                .exclusive_start_key("gsi1sk", s(created_sk(&after.created_at, &after.request_id)));
        }
        let out = q.send().await.map_err(|e| classify("Query", &e))?;
        let items = out.items().iter().map(item_to_request).collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key() {
            None => None,
            Some(key) => {
                let sk = get_s(key, "gsi1sk")?;
                let (at, id) = sk.split_once('#').ok_or_else(|| bad("gsi1sk"))?;
                Some(ListPosition {
                    created_at: DateTime::parse_from_rfc3339(at).map_err(|_| bad("gsi1sk"))?.with_timezone(&Utc),
                    request_id: RequestId::try_from(id.to_owned()).map_err(|_| bad("gsi1sk"))?,
                })
            }
        };
        Ok(Page { items, next })
    }

    async fn list_pending_by_approver(&self, approver_key: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.by_approver_index(&format!("APPROVER#{approver_key}"), limit).await
    }

    async fn list_decided_by(&self, counted_as: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.by_approver_index(&format!("DECIDED#{counted_as}"), limit).await
    }

    async fn hold_for_revoke(&self, id: &RequestId, at: DateTime<Utc>) -> Result<bool, PortError> {
        let held = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(request_pk(id)))
            .key("sk", s("META"))
            .condition_expression("#status = :approved")
            .update_expression("SET #held = if_not_exists(#held, :at)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#held", REVOKE_HELD_AT)
            .expression_attribute_values(":approved", s(RequestStatus::Approved.as_str()))
            .expression_attribute_values(":at", s(ts(&at)))
            .send()
            .await;
        match held {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }

    async fn transition(&self, t: &Transition) -> Result<AccessRequest, TransitionError> {
        t.check()?;
        let mut writes = Vec::new();
        for change in std::iter::once(t).chain(t.companion.as_deref()) {
            let audit = change.audit();
            writes.push(TransactWriteItem::builder().update(self.update_of(change)?).build());
            writes.push(self.put(
                audit_to_item(&audit, &ChangeRecord::of(&audit, change.after()), self.retention)?,
                "attribute_not_exists(pk)",
            )?);
            writes.extend(self.approver_entries(change)?);
        }
        let after = t.after();
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(after),
            Err(e) if is_condition_failure(&e) == Some(true) => Err(TransitionError::Conflict),
            Err(e) => Err(TransitionError::Port(classify("TransactWriteItems", &e))),
        }
    }

    async fn list_pending_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.past_deadline(PENDING_PARTITION, now, limit, Order::OldestFirst).await
    }

    async fn list_grants_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.past_deadline(GRANTED_PARTITION, now, limit, Order::NewestFirst).await
    }

    async fn list_awaiting_grant(
        &self,
        approved_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        self.past_deadline(AWAITING_GRANT_PARTITION, approved_before, limit, Order::NewestFirst).await
    }

    async fn list_reviews_past_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.past_deadline(REVIEW_PARTITION, now, limit, Order::OldestFirst).await
    }

    async fn list_ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.by_time(ENDED_PARTITION, "gsi3sk >= :bound", ts(&since), limit, Order::NewestFirst).await
    }

    async fn list_submitted_before(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        self.past_deadline(SUBMITTED_PARTITION, created_before, limit, Order::NewestFirst).await
    }

    async fn audit_trail(&self, id: &RequestId) -> Result<Vec<AuditRecord>, PortError> {
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
                .expression_attribute_values(":pk", s(request_pk(id)))
                .expression_attribute_values(":audit", s("AUDIT#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Query", &e))?;
            for item in out.items() {
                records.push(item_to_audit(item)?);
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(records),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! What the emulator cannot show: DynamoDB's answers when a concurrent transaction holds an
    //! item (moto does not simulate transaction conflicts), as DynamoDB sends them.
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::retry::RetryConfig;

    use super::*;

    /// An awsJson 1.0 error as DynamoDB sends it.
    fn error_response(body: &'static str) -> HttpResponse {
        crate::adapters::aws_answer(400, "application/x-amz-json-1.0", body)
    }

    /// SDK retries are off so each case sees exactly one answer per call.
    fn store(rules: &[&Rule]) -> DynamoStore {
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules.iter().copied(), |c| c
            .retry_config(RetryConfig::disabled()));
        DynamoStore::new(client, "requests")
    }

    fn approved() -> AccessRequest {
        serde_json::from_value(serde_json::json!({
            "requestId": "req-0123456789abcdef0123456789abcdef",
            "requester": "arn:aws:iam::123456789012:user/alice",
            "nodeId": "i-0123456789abcdef0",
            "reason": "deploy",
            "durationMinutes": 30,
            "status": "Approved",
            "createdAt": "2026-12-04T10:00:00Z",
            "updatedAt": "2026-12-04T10:00:01Z",
            "version": 2,
            "grantMode": "credentials"
        }))
        .unwrap()
    }

    fn cancelled_because(reason: &'static str) -> Rule {
        let body = match reason {
            "TransactionConflict" => {
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"},{"Code":"None"}]}"#
            }
            _ => {
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ValidationError, None]","CancellationReasons":[{"Code":"ValidationError","Message":"Item size has exceeded the maximum allowed size"},{"Code":"None"}]}"#
            }
        };
        mock!(aws_sdk_dynamodb::Client::transact_write_items).then_http_response(move || error_response(body))
    }

    #[tokio::test]
    async fn a_write_cancelled_by_a_concurrent_transaction_is_a_conflict_to_decide_again() {
        let rule = cancelled_because("TransactionConflict");
        let revoke = Transition::status_change(&approved(), RequestStatus::Revoked, "admin", "revoked", Utc::now());
        let err = store(&[&rule]).transition(&revoke).await.unwrap_err();
        assert_eq!(err, TransitionError::Conflict);
    }

    #[tokio::test]
    async fn a_write_cancelled_for_another_reason_is_no_conflict() {
        let rule = cancelled_because("ValidationError");
        let revoke = Transition::status_change(&approved(), RequestStatus::Revoked, "admin", "revoked", Utc::now());
        let err = store(&[&rule]).transition(&revoke).await.unwrap_err();
        assert!(
            matches!(&err, TransitionError::Port(PortError::Permanent(m)) if m.contains("TransactWriteItems")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_hold_is_refused_on_a_request_no_longer_approved_and_retried_while_a_transaction_holds_it() {
        let id = approved().request_id;
        let not_approved = mock!(aws_sdk_dynamodb::Client::update_item).then_http_response(|| {
            error_response(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#,
            )
        });
        assert!(!store(&[&not_approved]).hold_for_revoke(&id, Utc::now()).await.unwrap());
        let in_transaction = mock!(aws_sdk_dynamodb::Client::update_item).then_http_response(|| {
            error_response(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#,
            )
        });
        let err = store(&[&in_transaction]).hold_for_revoke(&id, Utc::now()).await.unwrap_err();
        assert!(matches!(&err, PortError::Transient(m) if m.contains("UpdateItem")), "{err:?}");
    }
}
