//! How the operator commands print what the API answered: aligned tables for people, the API's
//! own JSON for programs (`--output json`).

use chrono::{DateTime, Utc};
use serde_json::Value;

/// `--output`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns for reading.
    #[default]
    Table,
    /// The API's JSON, pretty-printed, for programs.
    Json,
}

/// Rows under a header, each column as wide as its widest cell.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| one_line(&c)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            out.trim_end().to_owned()
        };
        let mut text = line(&self.header);
        text.push('\n');
        for row in &self.rows {
            text.push_str(&line(row));
            text.push('\n');
        }
        text
    }
}

/// Label / value lines, the labels aligned.
pub fn pairs(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    rows.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k:<width$}  {}\n", one_line(v))).collect()
}

/// A cell on one line, without control characters (reasons and comments may hold line breaks).
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// At most `max` characters, an ellipsis marking the cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// An RFC 3339 instant as `2026-05-01 10:30:00Z`; anything else as given.
pub fn when(raw: &str) -> String {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|_| raw.to_owned())
}

/// A principal ARN as a person reads it: `user/alice` → `alice`, an assumed role's session as
/// `role/session`; a person key (`iam-user#alice`) as its name.
pub fn who(raw: &str) -> String {
    if let Some((_, name)) = raw.split_once('#') {
        return name.to_owned();
    }
    let resource = raw.splitn(6, ':').nth(5).unwrap_or(raw);
    match resource.split_once('/') {
        Some(("user", path)) => path.rsplit('/').next().unwrap_or(path).to_owned(),
        Some(("assumed-role", rest)) => rest.to_owned(),
        _ => resource.to_owned(),
    }
}

pub fn minutes(v: &Value) -> String {
    match v.as_u64() {
        Some(m) if m % 60 == 0 && m >= 60 => format!("{}h", m / 60),
        Some(m) => format!("{m}m"),
        None => String::new(),
    }
}

/// The node as the decision saw it: `i-… (web-dev)`.
pub fn node(request: &Value) -> String {
    let id = str_of(request, "nodeId");
    match request["decision"]["nodeTags"]["Name"].as_str() {
        Some(name) => format!("{id} ({name})"),
        None => id.to_owned(),
    }
}

/// How many levels the approval plan has, if it has one.
pub fn levels(request: &Value) -> Option<usize> {
    request["decision"]["approvalPlan"]["levels"].as_array().map(Vec::len)
}

/// `level 2 of 2`, for a request waiting on approvers.
pub fn level_text(request: &Value) -> Option<String> {
    let current = request["approval"]["currentLevel"].as_u64()?;
    Some(match levels(request) {
        Some(total) => format!("level {current} of {total}"),
        None => format!("level {current}"),
    })
}

/// The people who approved so far, `approver-a (level 1), carol (level 2)`.
pub fn approved_by(request: &Value) -> Vec<String> {
    request["approval"]["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["verdict"] == "Approve")
                .map(|e| format!("{} (level {})", who(str_of(e, "approver")), e["level"]))
                .collect()
        })
        .unwrap_or_default()
}

/// One request, label by label.
pub fn request_view(r: &Value) -> String {
    let mut status = str_of(r, "status").to_owned();
    if let Some(held) = r["revokeHeldAt"].as_str().filter(|_| status == "Approved") {
        // A revoke is landing (or failed after holding it): no more credentials are issued.
        status.push_str(&format!(", being revoked since {}: no more credentials", when(held)));
    }
    if status == "Pending" {
        if let Some(level) = level_text(r) {
            status.push_str(&format!(", {level}"));
        }
        if let Some(until) = r["approval"]["pendingUntil"].as_str() {
            status.push_str(&format!(", expires {}", when(until)));
        }
    }
    let decision = &r["decision"];
    let mut decided = String::new();
    if decision.is_object() {
        decided = str_of(decision, "rule").to_owned();
        let policies: Vec<&str> = decision["decidingPolicyIds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !policies.is_empty() {
            decided.push_str(&format!(" by {}", policies.join(", ")));
        }
        let message = str_of(decision, "message");
        if !message.is_empty() {
            decided.push_str(&format!(": {message}"));
        }
    }
    let grant = &r["grant"];
    let access = if grant.is_object() {
        let mut text = format!("until {}", when(str_of(grant, "deadline")));
        if let Some(ended) = grant["detachedAt"].as_str() {
            text.push_str(&format!(", ended {}", when(ended)));
        }
        text
    } else {
        String::new()
    };
    let credentials = &r["credentials"];
    let issued = if credentials.is_object() {
        format!("{} issued, valid until {}", credentials["issued"], when(str_of(credentials, "validUntil")))
    } else {
        String::new()
    };
    let mut text = pairs(&[
        ("request", str_of(r, "requestId").to_owned()),
        ("status", status),
        ("node", node(r)),
        ("requester", str_of(r, "requester").to_owned()),
        ("reason", str_of(r, "reason").to_owned()),
        ("duration", minutes(&r["durationMinutes"])),
        ("created", when(str_of(r, "createdAt"))),
        ("decision", decided),
        ("grant mode", str_of(r, "grantMode").to_owned()),
        ("starts", r["startsAt"].as_str().map(when).unwrap_or_default()),
        ("extends", str_of(r, "extends").to_owned()),
        ("access", access),
        ("extended", extended(&r["grant"]["extensions"])),
        ("credentials", issued),
        ("break-glass", break_glass(r)),
    ]);
    if let Some(entries) = r["approval"]["entries"].as_array().filter(|e| !e.is_empty()) {
        let mut table = Table::new(&["  LEVEL", "VERDICT", "BY", "AS", "VIA", "AT", "COMMENT"]);
        for e in entries {
            table.row(vec![
                format!("  {}", e["level"]),
                str_of(e, "verdict").to_owned(),
                who(str_of(e, "approver")),
                str_of(e, "matched").to_owned(),
                str_of(e, "channel").to_owned(),
                when(str_of(e, "at")),
                str_of(e, "comment").to_owned(),
            ]);
        }
        text.push_str("approvals\n");
        text.push_str(&table.render());
    }
    text
}

/// Applied extensions: `+30 min (req-…)`, oldest first.
fn extended(extensions: &Value) -> String {
    let list: Vec<String> = extensions
        .as_array()
        .map(|a| a.iter().map(|x| format!("+{} min ({})", x["minutes"], str_of(x, "requestId"))).collect())
        .unwrap_or_default();
    list.join(", ")
}

/// A break-glass request's review: open (due when), or who decided how.
fn break_glass(r: &Value) -> String {
    if r["breakGlass"] != Value::Bool(true) {
        return String::new();
    }
    let review = &r["review"];
    match review["verdict"].as_str() {
        None if review.is_object() => format!("yes; review open, due {}", when(str_of(review, "due"))),
        None => "yes".to_owned(),
        Some(verdict) => format!(
            "yes; review: {verdict} by {} {}{}",
            who(str_of(review, "by")),
            when(str_of(review, "at")),
            review["comment"].as_str().map(|c| format!(": {c}")).unwrap_or_default()
        ),
    }
}

/// Requests, one a line.
pub fn request_table(items: &[Value]) -> String {
    let mut table = Table::new(&["ID", "STATUS", "NODE", "DURATION", "CREATED", "REASON"]);
    for r in items {
        let mut status = str_of(r, "status").to_owned();
        if let (true, Some(level)) = (status == "Pending", level_text(r)) {
            status.push_str(&format!(" ({level})"));
        }
        table.row(vec![
            str_of(r, "requestId").to_owned(),
            status,
            node(r),
            minutes(&r["durationMinutes"]),
            when(str_of(r, "createdAt")),
            shorten(str_of(r, "reason"), 48),
        ]);
    }
    if table.is_empty() {
        "no requests\n".to_owned()
    } else {
        table.render()
    }
}

/// Requests waiting on (or decided by) an approver.
pub fn approvals_table(items: &[Value], decided: bool) -> String {
    let mut table = Table::new(&["ID", "STATUS", "REQUESTER", "NODE", "DURATION", "CREATED", "REASON"]);
    for r in items {
        let status = match (str_of(r, "status"), level_text(r)) {
            ("Pending", Some(level)) => format!("Pending ({level})"),
            (s, _) => s.to_owned(),
        };
        table.row(vec![
            str_of(r, "requestId").to_owned(),
            status,
            who(str_of(r, "requester")),
            node(r),
            minutes(&r["durationMinutes"]),
            when(str_of(r, "createdAt")),
            shorten(str_of(r, "reason"), 48),
        ]);
    }
    match (table.is_empty(), decided) {
        (true, false) => "nothing waits on you\n".to_owned(),
        (true, true) => "you decided no requests yet\n".to_owned(),
        _ => table.render(),
    }
}

/// A request's audit trail, oldest first.
pub fn audit_table(items: &[Value]) -> String {
    let mut table = Table::new(&["VERSION", "AT", "CHANGE", "ACTOR", "REASON"]);
    for a in items {
        let change = match (a["from"].as_str(), str_of(a, "to")) {
            (Some(from), to) if from == to => {
                let what = if a["credentials"].is_object() {
                    "credentials issued"
                } else if a["approval"].is_object() {
                    "approval recorded"
                } else {
                    "changed"
                };
                format!("{to} ({what})")
            }
            (Some(from), to) => format!("{from} → {to}"),
            (None, to) => to.to_owned(),
        };
        table.row(vec![
            a["version"].to_string(),
            when(str_of(a, "at")),
            change,
            who(str_of(a, "actor")),
            shorten(str_of(a, "reason"), 60),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_line_up_whatever_the_cell_widths() {
        let mut t = Table::new(&["ID", "STATUS", "REASON"]);
        t.row(vec!["a".into(), "Approved".into(), "x".into()]);
        t.row(vec!["long-id".into(), "Pending".into(), "line\nbreak".into()]);
        assert_eq!(t.render(), "ID       STATUS    REASON\na        Approved  x\nlong-id  Pending   line break\n");
    }

    #[test]
    fn principals_read_as_names() {
        assert_eq!(who("arn:aws:iam::123456789012:user/ops/alice"), "alice");
        assert_eq!(who("arn:aws:sts::123456789012:assumed-role/OnCall/bob"), "OnCall/bob");
        assert_eq!(who("iam-user#approver-a"), "approver-a");
        assert_eq!(who("system:evaluate"), "system:evaluate");
    }

    #[test]
    fn a_pending_request_shows_its_level_and_who_approved() {
        let r = json!({
            "requestId": "req-1", "status": "Pending", "nodeId": "i-0fedcba9876543210",
            "decision": {"rule": "ManualTagSpecific", "nodeTags": {"Name": "payments-prod"},
                         "approvalPlan": {"levels": [{}, {}]}},
            "approval": {"currentLevel": 2, "entries": [
                {"level": 1, "verdict": "Approve", "approver": "iam-user#approver-a", "matched": "iam-group#DevOps"}]}
        });
        assert_eq!(level_text(&r).as_deref(), Some("level 2 of 2"));
        assert_eq!(approved_by(&r), vec!["approver-a (level 1)"]);
        let view = request_view(&r);
        assert!(view.contains("Pending, level 2 of 2"), "{view}");
        assert!(view.contains("i-0fedcba9876543210 (payments-prod)"), "{view}");
        assert!(request_table(&[r]).contains("Pending (level 2 of 2)"));
    }

    #[test]
    fn an_approved_request_held_for_its_revoke_says_so_and_a_revoked_one_does_not() {
        let held = json!({"requestId": "req-1", "status": "Approved", "revokeHeldAt": "2026-12-04T10:00:00Z"});
        assert!(
            request_view(&held).contains("Approved, being revoked since 2026-12-04 10:00:00Z"),
            "{}",
            request_view(&held)
        );
        let revoked = json!({"requestId": "req-1", "status": "Revoked", "revokeHeldAt": "2026-12-04T10:00:00Z"});
        assert!(!request_view(&revoked).contains("being revoked"));
    }

    #[test]
    fn durations_and_times_read_naturally() {
        assert_eq!(
            (minutes(&json!(120)), minutes(&json!(90)), minutes(&json!(null))),
            ("2h".into(), "90m".into(), String::new())
        );
        assert_eq!(when("2026-05-01T10:30:00.123+02:00"), "2026-05-01 08:30:00Z");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
