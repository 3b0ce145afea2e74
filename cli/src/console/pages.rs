//! The console's pages, rendered on the server from the API's JSON. Everything that came from the
//! API or from the browser goes through `esc` (or `attr`), so it is shown as text and never parsed
//! as markup; there is no script at all, and the only stylesheet is the console's own.
//!
//! Accessibility: one `h1` per page, landmarks (`header`, `nav`, `main`, `footer`), a skip link,
//! a label on every input, `role="status"` / `role="alert"` for outcomes, statuses written as
//! words (the colour only repeats them), tables with captions and header cells.

use chrono::{DateTime, SecondsFormat, Utc};
use jit_shared::http::decide_page::escape as esc;

use crate::ops::connect::shell_quote;
use serde_json::Value;

/// The statuses a request can have, in the order the filter lists them.
pub const STATUSES: [&str; 8] =
    ["Submitted", "Pending", "Approved", "Rejected", "Cancelled", "Expired", "Revoked", "Failed"];

/// Which navigation entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Nav {
    Requests,
    NewRequest,
    Approvals,
    None,
}

/// What every page shows around its content.
pub struct Frame<'a> {
    pub profile: &'a str,
    pub api_url: &'a str,
    /// The per-run form token, put in every form.
    pub csrf: &'a str,
    /// The stack's session document, for attach-mode start-session commands.
    pub document_name: &'a str,
}

/// A message shown at the top of a page: `role="status"` for outcomes, `role="alert"` for errors.
pub enum Notice {
    Done(String),
    Error(String),
}

fn notice_html(notice: Option<&Notice>) -> String {
    match notice {
        Some(Notice::Done(text)) => format!("<p class=\"notice done\" role=\"status\">{}</p>\n", esc(text)),
        Some(Notice::Error(text)) => {
            format!("<div class=\"notice error\" role=\"alert\"><h2>Not done</h2><p>{}</p></div>\n", esc(text))
        }
        None => String::new(),
    }
}

/// The whole page around `main`.
pub fn layout(frame: &Frame<'_>, nav: Nav, title: &str, main: &str) -> String {
    let link = |target: Nav, href: &str, label: &str| {
        let current = if nav == target { " aria-current=\"page\"" } else { "" };
        format!("<li><a href=\"{href}\"{current}>{label}</a></li>")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{} · jit console</title>\
         <link rel=\"stylesheet\" href=\"/static/console.css\"></head>\n<body>\n\
         <a class=\"skip\" href=\"#main\">Skip to main content</a>\n\
         <header><div class=\"bar\"><p class=\"brand\">jit-node-access console</p>\n\
         <nav aria-label=\"Main\"><ul>{}{}{}</ul></nav>\n\
         <p class=\"who\">Profile <strong>{}</strong></p></div></header>\n\
         <main id=\"main\" tabindex=\"-1\">\n{main}</main>\n\
         <footer><p>Served on 127.0.0.1 by <code>jit console</code>; it calls <code>{}</code> signed with \
         the profile's own credentials and keeps nothing.</p></footer>\n</body></html>\n",
        esc(title),
        link(Nav::Requests, "/", "My requests"),
        link(Nav::NewRequest, "/requests/new", "New request"),
        link(Nav::Approvals, "/approvals", "Approvals"),
        esc(frame.profile),
        esc(frame.api_url),
    )
}

/// Text of a JSON string or number; empty otherwise.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// A timestamp as `<time>`, in UTC to the second; anything unparsable as plain text.
fn when(v: &Value) -> String {
    let raw = text(v);
    match DateTime::parse_from_rfc3339(&raw) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            format!(
                "<time datetime=\"{}\">{}</time>",
                t.to_rfc3339_opts(SecondsFormat::Secs, true),
                t.format("%Y-%m-%d %H:%M:%S UTC")
            )
        }
        Err(_) if raw.is_empty() => "–".to_owned(),
        Err(_) => esc(&raw),
    }
}

/// The status as a word in a badge; the colour (from the class) only repeats it.
pub fn badge(status: &str) -> String {
    let class = STATUSES.iter().find(|s| **s == status).map_or("other".to_owned(), |s| s.to_ascii_lowercase());
    format!("<span class=\"status status-{class}\">{}</span>", esc(if status.is_empty() { "Unknown" } else { status }))
}

/// A principal ARN made readable: `user/operator`, `assumed-role/Role/session`, `system: evaluator`.
pub fn who(actor: &str) -> String {
    if let Some(component) = actor.strip_prefix("system:") {
        return format!("system: {component}");
    }
    if actor.starts_with("arn:") {
        if let Some((_, resource)) = actor.split_once(":user/").map(|(a, r)| (a, format!("user/{r}"))) {
            return resource;
        }
        if let Some(rest) = actor.split_once(":assumed-role/").map(|(_, r)| r) {
            return format!("assumed-role/{rest}");
        }
    }
    actor.to_owned()
}

/// The node's `Name` tag, if the decision recorded one.
fn node_name(request: &Value) -> Option<String> {
    request["decision"]["nodeTags"]["Name"].as_str().map(str::to_owned)
}

fn node_cell(request: &Value) -> String {
    let id = esc(&text(&request["nodeId"]));
    match node_name(request) {
        Some(name) => format!("<span class=\"node-name\">{}</span> <code>{id}</code>", esc(&name)),
        None => format!("<code>{id}</code>"),
    }
}

fn tags_text(request: &Value) -> String {
    match request["decision"]["nodeTags"].as_object() {
        Some(tags) if !tags.is_empty() => {
            tags.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(", ")
        }
        _ => "(not known yet)".to_owned(),
    }
}

fn minutes(v: &Value) -> String {
    match v.as_u64() {
        Some(1) => "1 minute".to_owned(),
        Some(n) => format!("{n} minutes"),
        None => "–".to_owned(),
    }
}

/// "Extension of <the original, linked> by N minutes".
fn extension_text(of: &str, extra: &Value) -> String {
    format!("Extension of <a href=\"/requests/{}\"><code>{}</code></a> by {}", url_encode(of), esc(of), minutes(extra))
}

fn time_of(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
}

/// A scheduled `Approved` request whose access has not started yet (nothing granted).
pub fn scheduled_not_started(r: &Value, now: DateTime<Utc>) -> bool {
    r["status"] == "Approved" && r["grant"].is_null() && time_of(&r["startsAt"]).is_some_and(|s| now < s)
}

/// What the API extends: an `Approved` request (not itself an extension) whose grant is recorded
/// and live, whose access has started and not ended.
pub fn extendable(r: &Value, now: DateTime<Utc>) -> bool {
    let g = &r["grant"];
    r["status"] == "Approved"
        && r["extends"].is_null()
        && g.is_object()
        && g["detachedAt"].is_null()
        && time_of(&r["startsAt"]).is_none_or(|s| s <= now)
        && time_of(&g["deadline"]).is_some_and(|d| now < d)
}

/// Where a break-glass request's review stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewState {
    /// Refused break-glass (or one not decided yet): nothing to review.
    None,
    Open,
    /// Open past its due time: the unreviewed alarm is raised until someone reviews it.
    Overdue,
    Acknowledged,
    Flagged,
}

impl ReviewState {
    fn word(self) -> &'static str {
        match self {
            Self::None => "no review",
            Self::Open => "review open",
            Self::Overdue => "review overdue",
            Self::Acknowledged => "acknowledged",
            Self::Flagged => "flagged",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Open => "open",
            Self::Overdue => "overdue",
            Self::Acknowledged => "acknowledged",
            Self::Flagged => "flagged",
        }
    }
}

pub fn is_break_glass(r: &Value) -> bool {
    r["breakGlass"] == Value::Bool(true)
}

/// The review of a break-glass request (`review`: `due`, then `verdict`, `by`, `at`, `comment`).
pub fn review_state(r: &Value, now: DateTime<Utc>) -> ReviewState {
    let review = &r["review"];
    if !is_break_glass(r) || !review.is_object() {
        return ReviewState::None;
    }
    match review["verdict"].as_str() {
        Some("flag") => ReviewState::Flagged,
        Some(_) => ReviewState::Acknowledged,
        None if time_of(&review["due"]).is_some_and(|due| now >= due) => ReviewState::Overdue,
        None => ReviewState::Open,
    }
}

/// Whether someone may still review the request (the API decides who).
pub fn review_open(r: &Value, now: DateTime<Utc>) -> bool {
    matches!(review_state(r, now), ReviewState::Open | ReviewState::Overdue)
}

/// The mark of a break-glass request in lists: the word, then where its review stands.
fn glass_mark(r: &Value, now: DateTime<Utc>) -> String {
    if !is_break_glass(r) {
        return String::new();
    }
    let state = review_state(r, now);
    let review = if state == ReviewState::None { String::new() } else { format!(": {}", state.word()) };
    format!(" <span class=\"glass glass-{}\">Break-glass{review}</span>", state.class())
}

fn row(name: &str, value_html: &str) -> String {
    format!("<tr><th scope=\"row\">{}</th><td>{value_html}</td></tr>\n", esc(name))
}

fn csrf_field(frame: &Frame<'_>) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(frame.csrf))
}

/// `application/x-www-form-urlencoded` / query-string encoding of one value.
pub fn url_encode(value: &str) -> String {
    jit_shared::http::percent_encode(value)
}

/// "My requests": the caller's requests, newest first, with a status filter and paging.
pub fn requests(
    frame: &Frame<'_>,
    list: &Value,
    status: Option<&str>,
    notice: Option<&Notice>,
    now: DateTime<Utc>,
) -> String {
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let options: String = std::iter::once(("", "Any status"))
        .chain(STATUSES.iter().map(|s| (*s, *s)))
        .map(|(value, label)| {
            let selected = if status.unwrap_or("") == value { " selected" } else { "" };
            format!("<option value=\"{value}\"{selected}>{label}</option>")
        })
        .collect();
    let mut main = format!(
        "<h1>My requests</h1>\n{}<p><a class=\"button\" href=\"/requests/new\">New request</a></p>\n\
         <form class=\"filter\" method=\"get\" action=\"/\"><label for=\"status\">Status</label> \
         <select id=\"status\" name=\"status\">{options}</select> <button type=\"submit\">Show</button></form>\n",
        notice_html(notice)
    );
    if items.is_empty() {
        main.push_str(if status.is_some() {
            "<p>No requests with this status.</p>\n"
        } else {
            "<p>You have made no requests yet. <a href=\"/requests/new\">Ask for access to a node</a>.</p>\n"
        });
    } else {
        main.push_str(
            "<table class=\"list\"><caption>Your requests, newest first</caption>\n<thead><tr><th scope=\"col\">Request</th>\
             <th scope=\"col\">Node</th><th scope=\"col\">Status</th><th scope=\"col\">Reason</th>\
             <th scope=\"col\">Duration</th><th scope=\"col\">Created</th></tr></thead>\n<tbody>\n",
        );
        for r in items {
            let id = text(&r["requestId"]);
            main.push_str(&format!(
                "<tr><td><a href=\"/requests/{}\"><code>{}</code></a></td><td>{}</td><td>{}{}</td><td class=\"reason\">{}</td><td>{}</td><td>{}</td></tr>\n",
                url_encode(&id),
                esc(&id),
                node_cell(r),
                badge(&text(&r["status"])),
                glass_mark(r, now),
                esc(&text(&r["reason"])),
                minutes(&r["durationMinutes"]),
                when(&r["createdAt"]),
            ));
        }
        main.push_str("</tbody></table>\n");
    }
    if let Some(next) = list["nextToken"].as_str() {
        let filter = status.map(|s| format!("status={}&", url_encode(s))).unwrap_or_default();
        main.push_str(&format!("<p><a href=\"/?{filter}next={}\">Older requests</a></p>\n", url_encode(next)));
    }
    layout(frame, Nav::Requests, "My requests", &main)
}

/// What the new-request form holds (kept when the API refuses it, so nothing is typed twice).
#[derive(Default, Debug, Clone)]
pub struct RequestForm {
    pub node_id: String,
    pub reason: String,
    pub duration: String,
    /// Scheduled access (`startsAt`): empty for access as soon as it is approved.
    pub starts_at: String,
    /// Sent as `Idempotency-Key`: pressing Submit twice makes one request.
    pub idempotency_key: String,
    /// `breakGlass: true`: an emergency, granted at once to members of the break-glass group.
    pub break_glass: bool,
}

/// The new-request form; `error` names the field the API (or the console) refused, if any.
pub fn new_request(
    frame: &Frame<'_>,
    form: &RequestForm,
    error: Option<(&str, &str)>,
    recent_nodes: &[String],
) -> String {
    let invalid = |field: &str| match error {
        Some((f, _)) if f == field => format!(" aria-invalid=\"true\" aria-describedby=\"{field}-hint {field}-error\""),
        _ => format!(" aria-describedby=\"{field}-hint\""),
    };
    let message = |field: &str| match error {
        Some((f, m)) if f == field => format!("<p class=\"field-error\" id=\"{field}-error\">{}</p>", esc(m)),
        _ => String::new(),
    };
    let summary = match error {
        Some((_, m)) => format!(
            "<div class=\"notice error\" role=\"alert\"><h2>The request was not submitted</h2><p>{}</p></div>\n",
            esc(m)
        ),
        None => String::new(),
    };
    let datalist = if recent_nodes.is_empty() {
        String::new()
    } else {
        let options: String = recent_nodes.iter().map(|n| format!("<option value=\"{}\">", esc(n))).collect();
        format!("<datalist id=\"recent-nodes\">{options}</datalist>")
    };
    let list_attr = if recent_nodes.is_empty() { "" } else { " list=\"recent-nodes\"" };
    let main = format!(
        "<h1>New request</h1>\n{summary}\
         <p>Ask for access to one node. Policies decide at once: auto-approved, waiting for approvers, or refused.</p>\n\
         <form method=\"post\" action=\"/requests\" class=\"stack\">{}\
         <input type=\"hidden\" name=\"idempotencyKey\" value=\"{}\">\n\
         <div class=\"field\"><label for=\"nodeId\">Node</label>\
         <p class=\"hint\" id=\"nodeId-hint\">An instance id (<code>i-…</code>), a managed node id (<code>mi-…</code>), \
         or a member account node's ARN.</p>\
         <input id=\"nodeId\" name=\"nodeId\" required maxlength=\"200\" autocomplete=\"off\" spellcheck=\"false\" \
         value=\"{}\"{}{list_attr}>{}{datalist}</div>\n\
         <div class=\"field\"><label for=\"reason\">Reason</label>\
         <p class=\"hint\" id=\"reason-hint\">What you will do and why, up to 256 characters (a ticket number helps \
         approvers).</p><textarea id=\"reason\" name=\"reason\" required maxlength=\"256\" rows=\"3\"{}>{}</textarea>{}</div>\n\
         <div class=\"field\"><label for=\"durationMinutes\">Duration in minutes</label>\
         <p class=\"hint\" id=\"durationMinutes-hint\">1 to 20,160. Leave empty for the longest the deciding \
         policy allows.</p><input id=\"durationMinutes\" name=\"durationMinutes\" type=\"number\" min=\"1\" \
         max=\"20160\" inputmode=\"numeric\" value=\"{}\"{}>{}</div>\n\
         <div class=\"field\"><label for=\"startsAt\">Starts at (optional)</label>\
         <p class=\"hint\" id=\"startsAt-hint\">Scheduled access, up to 14 days ahead: decided now, granted from \
         then on for the duration. A time with an offset (<code>2026-12-24T08:00:00Z</code>) or this computer's \
         local time (<code>2026-12-24 08:00</code>). Leave empty for access as soon as it is approved.</p>\
         <input id=\"startsAt\" name=\"startsAt\" maxlength=\"40\" autocomplete=\"off\" spellcheck=\"false\" \
         value=\"{}\"{}>{}</div>\n\
         <div class=\"field check glass-choice\"><input type=\"checkbox\" id=\"breakGlass\" name=\"breakGlass\" \
         value=\"true\"{}{}> <label for=\"breakGlass\">Break-glass (emergency)</label>\
         <p class=\"hint\" id=\"breakGlass-hint\">Only when it cannot wait, and only for members of the break-glass \
         group. Granted at once, without approval, for at most the break-glass limit (60 minutes unless \
         <code>break-glass.yaml</code> says otherwise); the node's approvers and the security contacts are told at \
         once, and one of them must review it afterwards (acknowledge or flag). Not with a start time.</p>{}</div>\n\
         <p><button type=\"submit\">Submit request</button></p>\n</form>\n",
        csrf_field(frame),
        esc(&form.idempotency_key),
        esc(&form.node_id),
        invalid("nodeId"),
        message("nodeId"),
        invalid("reason"),
        esc(&form.reason),
        message("reason"),
        esc(&form.duration),
        invalid("durationMinutes"),
        message("durationMinutes"),
        esc(&form.starts_at),
        invalid("startsAt"),
        message("startsAt"),
        if form.break_glass { " checked" } else { "" },
        invalid("breakGlass"),
        message("breakGlass"),
    );
    layout(frame, Nav::NewRequest, "New request", &main)
}

/// The comment box and the buttons of one decision form; `from` says where to go afterwards.
fn decision_form(frame: &Frame<'_>, id: &str, from: &str) -> String {
    let field = format!("comment-{id}");
    format!(
        "<form method=\"post\" action=\"/requests/{}/decide\" class=\"decide\">{}\
         <input type=\"hidden\" name=\"from\" value=\"{from}\">\
         <div class=\"field\"><label for=\"{}\">Comment (optional, up to 1,000 characters)</label>\
         <textarea id=\"{}\" name=\"comment\" maxlength=\"1000\" rows=\"2\"></textarea></div>\
         <p class=\"buttons\"><button type=\"submit\" name=\"decision\" value=\"approve\" class=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"reject\" class=\"reject\">Reject</button></p></form>\n",
        url_encode(id),
        csrf_field(frame),
        esc(&field),
        esc(&field),
    )
}

fn plan_text(level: &Value) -> String {
    let approvers: Vec<String> = level["approvers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.iter())
        .map(|(kind, name)| {
            let kind = match kind.as_str() {
                "iamUser" => "IAM user",
                "iamGroup" => "IAM group",
                "iamRole" => "IAM role",
                "identityCenterUser" => "Identity Center user",
                "identityCenterGroup" => "Identity Center group",
                other => other,
            };
            format!("{kind} {}", text(name))
        })
        .collect();
    format!("{} of: {}", text(&level["minApprovals"]), approvers.join(", "))
}

/// Level `n` of `m`, from the request's approval progress and plan.
fn level_text(request: &Value) -> String {
    let levels = request["decision"]["approvalPlan"]["levels"].as_array().map_or(0, Vec::len);
    match request["approval"]["currentLevel"].as_u64() {
        Some(n) => format!("{n} of {levels}"),
        None => "–".to_owned(),
    }
}

/// The approvals page: what waits on the caller (with the decision forms) and what they decided.
pub fn approvals(
    frame: &Frame<'_>,
    waiting: &Value,
    decided: &Value,
    reviews: &Value,
    notice: Option<&Notice>,
) -> String {
    let reviews = reviews["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let waiting = waiting["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let decided = decided["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut main = format!(
        "<h1>Approvals</h1>\n{}<h2 id=\"waiting\">Waiting on you ({})</h2>\n",
        notice_html(notice),
        waiting.len()
    );
    if waiting.is_empty() {
        main.push_str("<p>Nothing waits on you now.</p>\n");
    }
    for r in waiting {
        let id = text(&r["requestId"]);
        let entries: Vec<String> = r["approval"]["entries"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                format!(
                    "level {}: {} {}{}",
                    text(&e["level"]),
                    verdict_word(&e["verdict"]),
                    text(&e["approver"]),
                    e["comment"].as_str().map(|c| format!(": “{c}”")).unwrap_or_default()
                )
            })
            .collect();
        let mut table = String::new();
        table.push_str(&row("Requester", &esc(&text(&r["requester"]))));
        table.push_str(&row("Node", &node_cell(r)));
        table.push_str(&row("Node tags", &esc(&tags_text(r))));
        table.push_str(&row("Reason", &format!("<span class=\"reason\">{}</span>", esc(&text(&r["reason"])))));
        if let Some(of) = r["extends"].as_str() {
            table.push_str(&row("Extension", &extension_text(of, &r["durationMinutes"])));
        } else {
            table.push_str(&row("Duration", &minutes(&r["durationMinutes"])));
        }
        if !r["startsAt"].is_null() {
            table.push_str(&row("Starts at", &when(&r["startsAt"])));
        }
        table.push_str(&row("Policy", &esc(&text(&r["decision"]["approvalPlan"]["policyName"]))));
        table.push_str(&row("Level", &esc(&level_text(r))));
        table.push_str(&row(
            "Already decided",
            &esc(&if entries.is_empty() { "nobody yet".to_owned() } else { entries.join("; ") }),
        ));
        table.push_str(&row("Decide before", &when(&r["approval"]["pendingUntil"])));
        // An extension asks for more time on access already granted: say so before anything else.
        let extension = r["extends"]
            .as_str()
            .map(|of| format!("<p class=\"extension\">{}</p>\n", extension_text(of, &r["durationMinutes"])))
            .unwrap_or_default();
        main.push_str(&format!(
            "<article class=\"card\" aria-labelledby=\"h-{0}\" id=\"waiting-{0}\">\n<h3 id=\"h-{0}\">{1} \
             <a href=\"/requests/{2}\"><code>{0}</code></a></h3>\n{extension}<table class=\"facts\">{3}</table>\n{4}</article>\n",
            esc(&id),
            node_name(r).map(|n| esc(&n)).unwrap_or_else(|| "Request".to_owned()),
            url_encode(&id),
            table,
            decision_form(frame, &id, "approvals"),
        ));
    }
    main.push_str(&format!("<h2 id=\"break-glass-review\">Break-glass to review ({})</h2>\n", reviews.len()));
    if reviews.is_empty() {
        main.push_str("<p>No break-glass access waits for your review.</p>\n");
    } else {
        main.push_str(
            "<table class=\"list\"><caption>Break-glass access you may acknowledge or flag, soonest due first</caption>\n\
             <thead><tr><th scope=\"col\">Request</th><th scope=\"col\">Node</th><th scope=\"col\">Requester</th>\
             <th scope=\"col\">Review due</th><th scope=\"col\">Reason</th></tr></thead>\n<tbody>\n",
        );
        for r in reviews {
            let id = text(&r["requestId"]);
            main.push_str(&format!(
                "<tr><td><a href=\"/requests/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                url_encode(&id),
                esc(&id),
                node_cell(r),
                esc(&who(&text(&r["requester"]))),
                when(&r["review"]["due"]),
                esc(&text(&r["reason"])),
            ));
        }
        main.push_str("</tbody></table>\n");
    }
    main.push_str(
        "<p>Break-glass access is granted at once, so it never waits above. Its mail (<q>BREAK-GLASS: …</q>) names \
         the request; open it by id to acknowledge or flag it.</p>\n\
         <form method=\"get\" action=\"/requests/open\" class=\"filter\"><label for=\"open-id\">Request id</label> \
         <input id=\"open-id\" name=\"id\" required maxlength=\"100\" autocomplete=\"off\" spellcheck=\"false\" \
         placeholder=\"req-…\"> <button type=\"submit\">Open</button></form>\n",
    );
    main.push_str("<h2 id=\"decided\">Decided by you</h2>\n");
    if decided.is_empty() {
        main.push_str("<p>You have decided no requests yet.</p>\n");
    } else {
        main.push_str(
            "<table class=\"list\"><caption>Requests you approved or rejected, newest decision first</caption>\n\
             <thead><tr><th scope=\"col\">Request</th><th scope=\"col\">Node</th><th scope=\"col\">Requester</th>\
             <th scope=\"col\">Status now</th><th scope=\"col\">Updated</th></tr></thead>\n<tbody>\n",
        );
        for r in decided {
            let id = text(&r["requestId"]);
            main.push_str(&format!(
                "<tr><td><a href=\"/requests/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                url_encode(&id),
                esc(&id),
                node_cell(r),
                esc(&who(&text(&r["requester"]))),
                badge(&text(&r["status"])),
                when(&r["updatedAt"]),
            ));
        }
        main.push_str("</tbody></table>\n");
    }
    layout(frame, Nav::Approvals, "Approvals", &main)
}

fn verdict_word(v: &Value) -> &'static str {
    match v.as_str() {
        Some("Approve") => "approved by",
        Some("Reject") => "rejected by",
        _ => "decided by",
    }
}

/// One audit record as a timeline entry.
fn timeline_entry(item: &Value) -> String {
    let from = item["from"].as_str().unwrap_or("");
    let to = text(&item["to"]);
    let what = if from.is_empty() {
        format!("{} created", badge(&to))
    } else if from == to {
        let kind = if item["review"]["verdict"] == "flag" {
            "Break-glass review: flagged"
        } else if item["review"]["verdict"].is_string() {
            "Break-glass review: acknowledged"
        } else if !item["extension"].is_null() {
            "Extended"
        } else if !item["credentials"].is_null() {
            "Credentials issued"
        } else if !item["approval"].is_null() {
            "Approval recorded"
        } else {
            "Updated"
        };
        format!("{kind}; still {}", badge(&to))
    } else {
        format!("{} <span aria-hidden=\"true\">→</span><span class=\"sr-only\">to</span> {}", badge(from), badge(&to))
    };
    let mut details = Vec::new();
    if let Some(a) = item["approval"].as_object() {
        let verdict = if a.get("verdict").and_then(Value::as_str) == Some("Reject") { "Rejected" } else { "Approved" };
        let channel = a.get("channel").map(text).unwrap_or_default();
        let via = if channel == "EmailLink" { " through a mail link" } else { "" };
        details.push(format!(
            "{verdict} at level {} by <strong>{}</strong>{via}",
            esc(&a.get("level").map(text).unwrap_or_default()),
            esc(&a.get("approver").map(text).unwrap_or_default()),
        ));
        if let Some(c) = a.get("comment").and_then(Value::as_str) {
            details.push(format!("Comment: <q class=\"comment\">{}</q>", esc(c)));
        }
    }
    if let Some(level) = item["levelCompleted"].as_u64() {
        details.push(format!("Level {level} completed"));
    }
    if let Some(x) = item["extension"].as_object() {
        let of = x.get("requestId").map(text).unwrap_or_default();
        details.push(format!(
            "Access now ends at {} instead of {} (extension <a href=\"/requests/{}\"><code>{}</code></a>, {})",
            x.get("to").map(when).unwrap_or_default(),
            x.get("from").map(when).unwrap_or_default(),
            url_encode(&of),
            esc(&of),
            minutes(x.get("minutes").unwrap_or(&Value::Null)),
        ));
    }
    if let Some(key) = item["credentials"]["accessKeyId"].as_str() {
        details.push(format!("Access key <code>{}</code> (the secret is never stored)", esc(key)));
    }
    let details: String = details.iter().map(|d| format!("<p>{d}</p>")).collect();
    format!(
        "<li><p class=\"when\">{}</p><p class=\"what\">{what}</p><p class=\"by\">by {}</p>\
         <p class=\"why\">{}</p>{details}</li>\n",
        when(&item["at"]),
        esc(&who(&text(&item["actor"]))),
        esc(&text(&item["reason"])),
    )
}

/// What the detail page can offer, from what the API said about the caller.
pub struct DetailContext<'a> {
    pub request: &'a Value,
    /// `None` when the audit trail could not be read (the page says so).
    pub audit: Option<&'a Value>,
    /// The request waits on the caller's decision now (it is in their `GET /approvals`).
    pub waiting_on_me: bool,
    /// The caller made the request (only they may extend it, or withdraw a scheduled approval).
    pub mine: bool,
    /// The console's clock: whether access has started or ended.
    pub now: DateTime<Utc>,
    /// The extend form's `Idempotency-Key`, made when the page was shown.
    pub form_key: &'a str,
}

/// The request: status, facts, decision, approvals, grant, credentials, timeline and actions.
pub fn detail(frame: &Frame<'_>, ctx: &DetailContext<'_>, notice: Option<&Notice>) -> String {
    let r = ctx.request;
    let id = text(&r["requestId"]);
    let status = text(&r["status"]);
    let mut main = format!(
        "<h1>Request <code id=\"request-id\">{}</code></h1>\n\
         <p class=\"current\">Status: <strong id=\"request-status\">{}</strong></p>\n{}",
        esc(&id),
        badge(&status),
        notice_html(notice)
    );
    if let Some(of) = r["extends"].as_str() {
        main.push_str(&format!(
            "<p class=\"extension\" id=\"extends\">{}. Approved, it moves that request's deadline and then ends \
             (<code>Expired</code>, saying where it went): it grants nothing of its own.</p>\n",
            extension_text(of, &r["durationMinutes"])
        ));
    }
    if scheduled_not_started(r, ctx.now) {
        main.push_str(&format!(
            "<p class=\"scheduled\">Scheduled: access starts at {}, not before.</p>\n",
            when(&r["startsAt"])
        ));
    }
    if is_break_glass(r) {
        main.push_str(&glass_banner(r, ctx.now));
    }
    let waiting_for = match status.as_str() {
        "Submitted" => Some("The policies have not decided yet."),
        "Pending" => Some("Waiting for approvers."),
        _ => None,
    };
    if let Some(waiting_for) = waiting_for {
        main.push_str(&format!(
            "<p>{waiting_for} <a href=\"/requests/{}\">Reload</a> to see what changed.</p>\n",
            url_encode(&id)
        ));
    }

    let mut facts = String::new();
    facts.push_str(&row("Node", &node_cell(r)));
    facts.push_str(&row("Node tags", &esc(&tags_text(r))));
    facts.push_str(&row("Requester", &esc(&text(&r["requester"]))));
    facts.push_str(&row("Reason", &format!("<span class=\"reason\">{}</span>", esc(&text(&r["reason"])))));
    facts.push_str(&row("Duration", &minutes(&r["durationMinutes"])));
    if !r["startsAt"].is_null() {
        facts.push_str(&row("Starts at", &when(&r["startsAt"])));
    }
    if let Some(of) = r["extends"].as_str() {
        facts.push_str(&row(
            "Extends",
            &format!("<a href=\"/requests/{}\" id=\"extends-link\"><code>{}</code></a>", url_encode(of), esc(of)),
        ));
    }
    if is_break_glass(r) {
        facts.push_str(&row("Break-glass", &format!("yes: {}", esc(review_state(r, ctx.now).word()))));
    }
    facts.push_str(&row("Grant mode", &esc(&text(&r["grantMode"]))));
    facts.push_str(&row("Created", &when(&r["createdAt"])));
    facts.push_str(&row("Updated", &when(&r["updatedAt"])));
    if !r["approvedAt"].is_null() {
        facts.push_str(&row("Approved at", &when(&r["approvedAt"])));
    }
    main.push_str(&format!(
        "<section aria-labelledby=\"s-facts\"><h2 id=\"s-facts\">Request</h2><table class=\"facts\">{facts}</table></section>\n"
    ));

    if ctx.waiting_on_me && status == "Pending" {
        main.push_str(&format!(
            "<section aria-labelledby=\"s-decide\" class=\"card\"><h2 id=\"s-decide\">Your decision</h2>\
             <p>This request waits on you at level {}.</p>\n{}</section>\n",
            esc(&level_text(r)),
            decision_form(frame, &id, "detail")
        ));
    }
    // The API refuses the requester under any identity; the console does not offer it to them.
    if !ctx.mine && review_open(r, ctx.now) {
        main.push_str(&review_section(frame, &id));
    }
    // An extension grants nothing of its own: its access is the original's.
    if status == "Approved" && r["extends"].is_null() {
        main.push_str(&connect_section(frame, r, ctx.now));
    }
    if ctx.mine && extendable(r, ctx.now) {
        main.push_str(&extend_section(frame, r, ctx.form_key));
    }

    main.push_str(&decision_section(r));
    main.push_str(&approvals_section(r));
    main.push_str(&grant_section(r));

    main.push_str("<section aria-labelledby=\"s-timeline\"><h2 id=\"s-timeline\">Timeline</h2>\n");
    match ctx.audit {
        Some(audit) => {
            let items = audit["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            main.push_str(&format!(
                "<p>Every status change, oldest first ({} {}).</p>\n<ol class=\"timeline\" id=\"timeline\">\n",
                items.len(),
                if items.len() == 1 { "entry" } else { "entries" }
            ));
            for item in items {
                main.push_str(&timeline_entry(item));
            }
            main.push_str("</ol>\n");
        }
        None => main.push_str("<p>The audit trail could not be read.</p>\n"),
    }
    main.push_str("</section>\n");

    main.push_str(&actions_section(frame, r, ctx));
    layout(frame, Nav::None, &format!("Request {id}"), &main)
}

/// The banner of a break-glass request: what it is, and where its review stands. A flag and an
/// overdue review are the loud ones (an alarm is raised for each).
fn glass_banner(r: &Value, now: DateTime<Utc>) -> String {
    let review = &r["review"];
    let state = review_state(r, now);
    let by = || {
        format!("by <strong id=\"review-by\">{}</strong> at {}", esc(&who(&text(&review["by"]))), when(&review["at"]))
    };
    let comment = review["comment"]
        .as_str()
        .map(|c| format!("<p>Comment: <q class=\"comment\" id=\"review-comment-text\">{}</q></p>", esc(c)))
        .unwrap_or_default();
    let (heading, body) = match state {
        ReviewState::None if r["status"] == "Failed" => {
            ("refused", "<p>Asked as an emergency, and refused: the decision below says why.</p>".to_owned())
        }
        ReviewState::None => ("asked", "<p>Asked as an emergency: the policies decide it at once.</p>".to_owned()),
        ReviewState::Open => (
            "review open",
            format!(
                "<p>Granted at once in an emergency, without approval; the node's approvers and the security \
                 contacts were told. The node's approvers or an administrator must acknowledge or flag it \
                 before {}.</p>",
                when(&review["due"])
            ),
        ),
        ReviewState::Overdue => (
            "review overdue",
            format!(
                "<p><strong>Nobody reviewed it in time: it was due at {}.</strong> The unreviewed break-glass \
                 alarm stays raised until the node's approvers or an administrator acknowledge or flag it.</p>",
                when(&review["due"])
            ),
        ),
        ReviewState::Acknowledged => ("acknowledged", format!("<p>Reviewed and acknowledged {}.</p>{comment}", by())),
        ReviewState::Flagged => (
            "flagged",
            format!(
                "<p><strong>Flagged in review {}</strong>: the reviewer found something wrong, and the flagged \
                 break-glass alarm was raised for the security team.</p>{comment}",
                by()
            ),
        ),
    };
    format!(
        "<section class=\"glass-banner glass-{}\" id=\"break-glass\" aria-labelledby=\"s-glass\">\
         <h2 id=\"s-glass\"><span class=\"glass-sign\">Break-glass</span> access: \
         <span id=\"review-state\">{heading}</span></h2>\n{body}</section>\n",
        state.class(),
    )
}

/// Acknowledge or Flag, with a comment: `POST /requests/{id}/review` through the console.
fn review_section(frame: &Frame<'_>, id: &str) -> String {
    format!(
        "<section aria-labelledby=\"s-review\" class=\"card\"><h2 id=\"s-review\">Your review</h2>\n\
         <p>Acknowledge if the emergency was real and the access proportionate; flag it if something was wrong \
         (that raises an alarm for the security team). The node's approvers and administrators review, once; \
         never the requester. The API refuses anyone else.</p>\n\
         <form method=\"post\" action=\"/requests/{}/review\">{}\
         <div class=\"field\"><label for=\"review-comment\">Comment (optional, up to 1,000 characters)</label>\
         <textarea id=\"review-comment\" name=\"comment\" maxlength=\"1000\" rows=\"2\"></textarea></div>\
         <p class=\"buttons\"><button type=\"submit\" name=\"verdict\" value=\"acknowledge\" class=\"approve\">\
         Acknowledge</button> <button type=\"submit\" name=\"verdict\" value=\"flag\" class=\"reject\">Flag</button>\
         </p></form></section>\n",
        url_encode(id),
        csrf_field(frame),
    )
}

fn decision_section(r: &Value) -> String {
    let d = &r["decision"];
    if d.is_null() {
        return "<section aria-labelledby=\"s-decision\"><h2 id=\"s-decision\">Decision</h2><p>Not decided yet.</p></section>\n"
            .to_owned();
    }
    let list = |v: &Value| -> String {
        let ids: Vec<String> = v
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|p| format!("<code>{}</code>", esc(&text(p))))
            .collect();
        if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        }
    };
    let mut t = String::new();
    t.push_str(&row("Outcome", &badge(&text(&d["outcome"]))));
    t.push_str(&row("Rule", &esc(&text(&d["rule"]))));
    t.push_str(&row("Message", &esc(&text(&d["message"]))));
    t.push_str(&row("Deciding policies", &list(&d["decidingPolicyIds"])));
    if d["denyPolicyIds"].as_array().is_some_and(|a| !a.is_empty()) {
        t.push_str(&row("Deny-access policies", &list(&d["denyPolicyIds"])));
    }
    if !d["failureCode"].is_null() {
        t.push_str(&row("Failure", &esc(&text(&d["failureCode"]))));
    }
    if !d["maxDurationMinutes"].is_null() {
        t.push_str(&row("Longest allowed", &minutes(&d["maxDurationMinutes"])));
    }
    if let Some(levels) = d["approvalPlan"]["levels"].as_array() {
        let items: String = levels.iter().map(|l| format!("<li>{}</li>", esc(&plan_text(l)))).collect();
        t.push_str(&row(
            "Approval plan",
            &format!(
                "policy <code>{}</code><ol class=\"plan\">{items}</ol>",
                esc(&text(&d["approvalPlan"]["policyName"]))
            ),
        ));
    }
    if let Some(loc) = d["nodeLocation"].as_object() {
        let place = ["partition", "account", "region"]
            .iter()
            .map(|k| loc.get(*k).map(text).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" / ");
        t.push_str(&row("Decided in", &esc(&place)));
    }
    t.push_str(&row("Decided at", &when(&d["decidedAt"])));
    format!("<section aria-labelledby=\"s-decision\"><h2 id=\"s-decision\">Decision</h2><table class=\"facts\">{t}</table></section>\n")
}

fn approvals_section(r: &Value) -> String {
    let p = &r["approval"];
    if p.is_null() {
        return String::new();
    }
    let entries = p["entries"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut s = format!(
        "<section aria-labelledby=\"s-approvals\"><h2 id=\"s-approvals\">Approvals</h2>\n<p>Level {}; approvals are \
         accepted until {}.</p>\n",
        esc(&level_text(r)),
        when(&p["pendingUntil"])
    );
    if entries.is_empty() {
        s.push_str("<p>No approver has decided yet.</p>\n");
    } else {
        s.push_str(
            "<table class=\"list\"><caption>Decisions taken</caption><thead><tr><th scope=\"col\">Level</th>\
             <th scope=\"col\">Decision</th><th scope=\"col\">Approver</th><th scope=\"col\">As</th>\
             <th scope=\"col\">Channel</th><th scope=\"col\">At</th><th scope=\"col\">Comment</th></tr></thead><tbody>\n",
        );
        for e in entries {
            let verdict = if e["verdict"] == "Reject" { "Rejected" } else { "Approved" };
            s.push_str(&format!(
                "<tr><td>{}</td><td>{verdict}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"reason\">{}</td></tr>\n",
                esc(&text(&e["level"])),
                esc(&text(&e["approver"])),
                esc(&text(&e["matched"])),
                esc(&text(&e["channel"])),
                when(&e["at"]),
                esc(&text(&e["comment"])),
            ));
        }
        s.push_str("</tbody></table>\n");
    }
    s.push_str("</section>\n");
    s
}

fn grant_section(r: &Value) -> String {
    let g = &r["grant"];
    let c = &r["credentials"];
    if g.is_null() && c.is_null() {
        return String::new();
    }
    let mut t = String::new();
    if !g.is_null() {
        let target = &g["target"];
        let target_text = match target["type"].as_str() {
            Some("sessionRole") => format!("session role {}", text(&target["roleArn"])),
            Some("iamUser") => format!("IAM user {}", text(&target["name"])),
            Some("iamRoleSession") => {
                format!("IAM role {} (session {})", text(&target["role"]), text(&target["session"]))
            }
            _ => target.to_string(),
        };
        t.push_str(&row("Policy", &format!("<code>{}</code>", esc(&text(&g["policyName"])))));
        t.push_str(&row("Given to", &esc(&target_text)));
        t.push_str(&row("Granted at", &when(&g["attachedAt"])));
        t.push_str(&row("Access until", &when(&g["deadline"])));
        if !g["detachedAt"].is_null() {
            t.push_str(&row("Ended at", &when(&g["detachedAt"])));
        }
        if let Some(extensions) = g["extensions"].as_array().filter(|x| !x.is_empty()) {
            let items: String = extensions
                .iter()
                .map(|x| {
                    let of = text(&x["requestId"]);
                    format!(
                        "<li>{} more by <a href=\"/requests/{}\"><code>{}</code></a>: until {} (was {}), applied at {}</li>",
                        minutes(&x["minutes"]),
                        url_encode(&of),
                        esc(&of),
                        when(&x["to"]),
                        when(&x["from"]),
                        when(&x["at"]),
                    )
                })
                .collect();
            t.push_str(&row("Extensions", &format!("<ol class=\"extensions\" id=\"extensions\">{items}</ol>")));
        }
        if let Some(sessions) = g["terminatedSessions"].as_array().filter(|s| !s.is_empty()) {
            let list = sessions.iter().map(text).collect::<Vec<_>>().join(", ");
            t.push_str(&row("Sessions ended", &esc(&list)));
        }
    }
    if !c.is_null() {
        t.push_str(&row("Credentials issued", &esc(&text(&c["issued"]))));
        t.push_str(&row("Last access key", &format!("<code>{}</code>", esc(&text(&c["last"]["accessKeyId"])))));
        t.push_str(&row("Last issued at", &when(&c["last"]["issuedAt"])));
        t.push_str(&row("Valid until", &when(&c["validUntil"])));
    }
    format!("<section aria-labelledby=\"s-grant\"><h2 id=\"s-grant\">Grant</h2><table class=\"facts\">{t}</table></section>\n")
}

fn connect_section(frame: &Frame<'_>, r: &Value, now: DateTime<Utc>) -> String {
    let id = text(&r["requestId"]);
    let node = text(&r["nodeId"]);
    let body = if scheduled_not_started(r, now) {
        format!(
            "<p>Access starts at {}: credentials and sessions work from then on (<code>jit connect {}</code>).</p>\n",
            when(&r["startsAt"]),
            esc(&id)
        )
    } else if r["grantMode"] == "credentials" {
        format!(
            "<p>Start a session from a terminal signed in as this profile:</p>\n<pre><code>jit connect {}</code></pre>\n\
             <p>Or get short-lived credentials of the session role with the <code>aws ssm start-session</code> \
             command to use them with (as <code>jit credentials {}</code> prints them). Each press issues new \
             credentials; the console shows them once and keeps nothing.</p>\n<form method=\"post\" action=\"/requests/{}/credentials\">{}\
             <button type=\"submit\">Show credentials and the session command</button></form>\n",
            esc(&id),
            esc(&id),
            url_encode(&id),
            csrf_field(frame),
        )
    } else {
        format!(
            "<p>The grant is a policy on your own IAM principal: start the session with your usual credentials, \
             with <code>jit connect {}</code> or:</p>\n\
             <pre><code>aws ssm start-session --target {} --document-name {}</code></pre>\n",
            esc(&id),
            esc(&shell_quote(&node)),
            esc(&shell_quote(frame.document_name)),
        )
    };
    format!(
        "<section aria-labelledby=\"s-connect\" class=\"card\"><h2 id=\"s-connect\">Connect</h2>\n{body}</section>\n"
    )
}

/// The extend form: more minutes and why, decided like a request for the new total.
fn extend_section(frame: &Frame<'_>, r: &Value, form_key: &str) -> String {
    let id = text(&r["requestId"]);
    format!(
        "<section aria-labelledby=\"s-extend\" class=\"card\"><h2 id=\"s-extend\">Extend</h2>\n\
         <p>Access ends at {}. Ask for more time: the policies decide the extension for the new total \
         (auto-approved within the auto-approval window, otherwise by the approvers); approved, the deadline \
         moves, refused, nothing changes.</p>\n\
         <form method=\"post\" action=\"/requests/{}/extend\" class=\"stack\">{}\
         <input type=\"hidden\" name=\"idempotencyKey\" value=\"{}\">\n\
         <div class=\"field\"><label for=\"extend-minutes\">More minutes</label>\
         <p class=\"hint\" id=\"extend-minutes-hint\">How much longer, in minutes.</p>\
         <input id=\"extend-minutes\" name=\"durationMinutes\" type=\"number\" min=\"1\" max=\"20160\" \
         inputmode=\"numeric\" required aria-describedby=\"extend-minutes-hint\"></div>\n\
         <div class=\"field\"><label for=\"extend-reason\">Reason</label>\
         <p class=\"hint\" id=\"extend-reason-hint\">Why you need longer; approvers read it.</p>\
         <textarea id=\"extend-reason\" name=\"reason\" required maxlength=\"256\" rows=\"2\" \
         aria-describedby=\"extend-reason-hint\"></textarea></div>\n\
         <p><button type=\"submit\">Extend</button></p></form></section>\n",
        when(&r["grant"]["deadline"]),
        url_encode(&id),
        csrf_field(frame),
        esc(form_key),
    )
}

/// One action with an optional comment (withdraw, revoke).
fn action_card(frame: &Frame<'_>, id: &str, action: &str, heading: &str, who_may: &str, button: &str) -> String {
    let field = format!("{action}-comment");
    format!(
        "<section aria-labelledby=\"s-{action}\" class=\"card danger\"><h2 id=\"s-{action}\">{heading}</h2><p>{who_may}</p>\n\
         <form method=\"post\" action=\"/requests/{}/{action}\">{}\
         <div class=\"field\"><label for=\"{field}\">Comment (optional)</label>\
         <textarea id=\"{field}\" name=\"comment\" maxlength=\"1000\" rows=\"2\"></textarea></div>\
         <p><button type=\"submit\" class=\"reject\">{button}</button></p></form></section>\n",
        url_encode(id),
        csrf_field(frame),
    )
}

fn actions_section(frame: &Frame<'_>, r: &Value, ctx: &DetailContext<'_>) -> String {
    let id = text(&r["requestId"]);
    match r["status"].as_str() {
        Some("Pending") => action_card(
            frame,
            &id,
            "cancel",
            "Withdraw the request",
            "Only the requester can withdraw a pending request.",
            "Cancel request",
        ),
        Some("Approved") => {
            let mut s = String::new();
            // A scheduled approval can still be withdrawn by its requester until it starts.
            if ctx.mine && scheduled_not_started(r, ctx.now) {
                s.push_str(&action_card(
                    frame,
                    &id,
                    "cancel",
                    "Withdraw",
                    "The access has not started: you can still withdraw it, and nothing is granted.",
                    "Withdraw",
                ));
            }
            s.push_str(&action_card(
                frame,
                &id,
                "revoke",
                "Revoke access",
                "Approvers of this request and administrators can end the access now.",
                "Revoke access now",
            ));
            s
        }
        _ => String::new(),
    }
}

/// Credentials just issued, with the commands to use them. Sent once, with `no-store`.
pub fn credentials(frame: &Frame<'_>, issued: &Value) -> String {
    let id = text(&issued["requestId"]);
    let region = text(&issued["region"]);
    let exports = format!(
        "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nexport AWS_SESSION_TOKEN={}\n\
         aws ssm start-session --target {} --document-name {} --region {}",
        shell_quote(&text(&issued["accessKeyId"])),
        shell_quote(&text(&issued["secretAccessKey"])),
        shell_quote(&text(&issued["sessionToken"])),
        shell_quote(&text(&issued["target"])),
        shell_quote(&text(&issued["documentName"])),
        shell_quote(&region),
    );
    let main = format!(
        "<h1>Credentials for <code>{}</code></h1>\n\
         <p class=\"notice done\" role=\"status\">New credentials were issued. They expire at {}; access ends at {}.</p>\n\
         <p>Paste into a terminal. This page is not cached and the console keeps no copy: leaving it discards them.</p>\n\
         <pre class=\"secret\" aria-label=\"Shell commands with the credentials\"><code>{}</code></pre>\n\
         <p>Role <code>{}</code>. Or, without handling secrets: <code>jit connect {}</code>.</p>\n\
         <p><a href=\"/requests/{}\">Back to the request</a></p>\n",
        esc(&id),
        when(&issued["expiration"]),
        when(&issued["accessDeadline"]),
        esc(&exports),
        esc(&text(&issued["roleArn"])),
        esc(&id),
        url_encode(&id),
    );
    layout(frame, Nav::None, "Credentials", &main)
}

/// A page for what could not be shown (the API refused, or could not be reached).
pub fn problem(frame: &Frame<'_>, title: &str, message: &str) -> String {
    let main = format!(
        "<h1>{}</h1>\n<div class=\"notice error\" role=\"alert\"><p>{}</p></div>\n<p><a href=\"/\">Back to my requests</a></p>\n",
        esc(title),
        esc(message)
    );
    layout(frame, Nav::None, title, &main)
}

/// The one page shown without the session cookie: how to open the console.
pub fn locked(message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>Open the console with its link</title>\
         <link rel=\"stylesheet\" href=\"/static/console.css\"></head>\n<body><main id=\"main\">\
         <h1>Open the console with its link</h1>\n<p>{}</p>\n<p><code>jit console</code> prints a link with a \
         one-run key (<code>http://127.0.0.1:…/?t=…</code>) when it starts: open that one.</p></main></body></html>\n",
        esc(message)
    )
}

/// Sets nothing itself: the response carrying it sets the cookie; this only moves on to `/` (a
/// same-origin navigation, so the `SameSite=Strict` cookie goes with it) and drops the key from
/// the address bar.
pub fn opening() -> String {
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0; url=/\">\
     <title>Opening the console</title><link rel=\"stylesheet\" href=\"/static/console.css\"></head>\n<body><main id=\"main\">\
     <h1>Opening the console</h1><p><a href=\"/\">Continue to the console</a>.</p></main></body></html>\n"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame() -> Frame<'static> {
        Frame { profile: "operator", api_url: "http://127.0.0.1:8080", csrf: "c\"srf", document_name: "doc" }
    }

    #[test]
    fn text_from_the_api_is_escaped_everywhere() {
        let evil = "<script>alert(1)</script>\"'&";
        let request = json!({
            "requestId": evil, "nodeId": evil, "reason": evil, "status": evil, "requester": evil,
            "extends": evil, "startsAt": evil,
            "grantMode": "credentials", "createdAt": evil,
            "decision": {"outcome": evil, "rule": evil, "message": evil, "decidingPolicyIds": [evil],
                "nodeTags": {"Name": evil}, "approvalPlan": {"policyName": evil, "levels": [{"minApprovals": 1, "approvers": [{"iamUser": evil}]}]}},
            "approval": {"currentLevel": 1, "pendingUntil": evil, "entries": [{"level": 1, "verdict": "Approve", "approver": evil, "comment": evil}]},
            "grant": {"policyName": evil, "target": {"type": "iamUser", "name": evil}, "deadline": evil},
        });
        let audit = json!({"items": [{"to": evil, "actor": evil, "reason": evil, "at": evil,
            "approval": {"level": 1, "approver": evil, "comment": evil},
            "extension": {"requestId": evil, "minutes": 5, "from": evil, "to": evil}}]});
        let pages = [
            detail(
                &frame(),
                &DetailContext {
                    request: &request,
                    audit: Some(&audit),
                    waiting_on_me: true,
                    mine: true,
                    now: Utc::now(),
                    form_key: evil,
                },
                None,
            ),
            requests(&frame(), &json!({"items": [request.clone()], "nextToken": evil}), Some(evil), None, Utc::now()),
            detail(
                &frame(),
                &DetailContext {
                    request: &json!({"requestId": evil, "status": "Approved", "breakGlass": true,
                        "review": {"due": evil, "verdict": "flag", "by": evil, "at": evil, "comment": evil}}),
                    audit: None,
                    waiting_on_me: false,
                    mine: false,
                    now: Utc::now(),
                    form_key: evil,
                },
                None,
            ),
            approvals(
                &frame(),
                &json!({"items": [request.clone()]}),
                &json!({"items": [request.clone()]}),
                &json!({"items": [request.clone()]}),
                None,
            ),
            credentials(&frame(), &json!({"requestId": evil, "secretAccessKey": evil})),
            problem(&frame(), evil, evil),
            new_request(
                &frame(),
                &RequestForm {
                    node_id: evil.into(),
                    reason: evil.into(),
                    duration: evil.into(),
                    starts_at: evil.into(),
                    idempotency_key: evil.into(),
                    break_glass: true,
                },
                Some(("reason", evil)),
                &[evil.to_owned()],
            ),
        ];
        for page in pages {
            assert!(!page.contains("<script"), "{page}");
            assert!(!page.contains("alert(1)</"), "{page}");
            assert!(!page.contains("value=\"c\"srf\""), "the form token is escaped too");
        }
    }

    #[test]
    fn every_input_has_a_label_and_every_form_its_token() {
        let form = new_request(&frame(), &RequestForm::default(), None, &[]);
        for id in ["nodeId", "reason", "durationMinutes", "startsAt", "breakGlass"] {
            assert!(form.contains(&format!("<label for=\"{id}\">")), "{id}");
            assert!(form.contains(&format!("id=\"{id}\"")), "{id}");
        }
        let waiting = json!({"items": [{"requestId": "req-1", "status": "Pending"}]});
        let page = approvals(&frame(), &waiting, &json!({"items": []}), &json!({"items": []}), None);
        assert!(page.contains("<label for=\"comment-req-1\">") && page.contains("id=\"comment-req-1\""));
        assert_eq!(page.matches("<form method=\"post\"").count(), page.matches("name=\"csrf\"").count());
    }

    #[test]
    fn break_glass_access_to_review_is_listed_on_the_approvals_page() {
        let review = json!({"items": [{"requestId": "req-9", "status": "Approved", "breakGlass": true,
            "requester": "arn:aws:iam::123456789012:user/operator", "nodeId": "i-0123456789abcdef0",
            "reason": "outage", "review": {"due": "2026-12-04T10:00:00Z"}}]});
        let none = json!({"items": []});

        let listed = approvals(&frame(), &none, &none, &review, None);
        let empty = approvals(&frame(), &none, &none, &none, None);

        assert!(listed.contains("Break-glass to review (1)") && listed.contains("href=\"/requests/req-9\""));
        assert!(empty.contains("No break-glass access waits for your review."));
    }

    #[test]
    fn an_approved_request_says_how_to_connect() {
        let approved = |mode: &str| json!({"requestId": "req-1", "status": "Approved", "grantMode": mode, "nodeId": "i-0123456789abcdef0"});
        let ctx = |r| DetailContext {
            request: r,
            audit: None,
            waiting_on_me: false,
            mine: false,
            now: Utc::now(),
            form_key: "k",
        };
        let credentials_mode = approved("credentials");
        let page = detail(&frame(), &ctx(&credentials_mode), None);
        assert!(page.contains("jit connect req-1"), "{page}");
        assert!(page.contains("action=\"/requests/req-1/credentials\""), "{page}");
        assert!(page.contains("action=\"/requests/req-1/revoke\""), "{page}");
        let attach_mode = approved("attach");
        let page = detail(&frame(), &ctx(&attach_mode), None);
        assert!(page.contains("aws ssm start-session --target i-0123456789abcdef0 --document-name doc"), "{page}");
        assert!(!page.contains("/credentials\""), "attach mode has no credentials to issue");
    }

    fn at(minutes: i64) -> String {
        (Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    fn page_of(request: &Value, mine: bool) -> String {
        let ctx = DetailContext { request, audit: None, waiting_on_me: false, mine, now: Utc::now(), form_key: "k1" };
        detail(&frame(), &ctx, None)
    }

    #[test]
    fn only_the_requester_of_a_started_live_grant_gets_the_extend_form() {
        let granted = |deadline: String| {
            json!({"requestId": "req-1", "status": "Approved", "grantMode": "attach", "nodeId": "i-1",
                   "grant": {"policyName": "jit-req-1", "deadline": deadline}})
        };
        let live = granted(at(20));
        let page = page_of(&live, true);
        assert!(page.contains("action=\"/requests/req-1/extend\""), "{page}");
        assert!(page.contains("<label for=\"extend-minutes\">") && page.contains("<label for=\"extend-reason\">"));
        assert!(page.contains("name=\"idempotencyKey\" value=\"k1\""), "{page}");
        assert_eq!(page.matches("<form method=\"post\"").count(), page.matches("name=\"csrf\"").count());
        let no_form = [
            (granted(at(20)), false),
            (granted(at(-1)), true),
            (json!({"requestId": "req-1", "status": "Approved", "grantMode": "attach"}), true),
            (json!({"requestId": "req-1", "status": "Expired", "grant": {"deadline": at(20)}}), true),
            (
                json!({"requestId": "req-1", "status": "Approved", "extends": "req-0", "grant": {"deadline": at(20)}}),
                true,
            ),
            (
                json!({"requestId": "req-1", "status": "Approved", "grant": {"deadline": at(20), "detachedAt": at(-1)}}),
                true,
            ),
        ];
        for (request, mine) in no_form {
            assert!(!page_of(&request, mine).contains("/extend\""), "{request} mine={mine}");
        }
    }

    #[test]
    fn an_extension_names_what_it_extends_and_an_extended_grant_its_new_deadline() {
        let extension = json!({"requestId": "req-2", "status": "Pending", "extends": "req-1", "durationMinutes": 20,
                               "decision": {"approvalPlan": {"levels": [{"minApprovals": 1}]}}, "approval": {"currentLevel": 1}});
        let page = page_of(&extension, true);
        assert!(
            page.contains("Extension of <a href=\"/requests/req-1\"><code>req-1</code></a> by 20 minutes"),
            "{page}"
        );
        let waiting =
            approvals(&frame(), &json!({"items": [extension]}), &json!({"items": []}), &json!({"items": []}), None);
        assert!(waiting.contains("Extension of <a href=\"/requests/req-1\"><code>req-1</code></a> by 20 minutes"));
        let extended = json!({"requestId": "req-1", "status": "Approved", "grantMode": "attach",
            "grant": {"deadline": "2026-12-03T10:20:00Z", "extensions": [{"requestId": "req-2", "minutes": 20,
                "from": "2026-12-03T10:00:00Z", "to": "2026-12-03T10:20:00Z", "at": "2026-12-03T09:40:00Z"}]}});
        let page = page_of(&extended, false);
        assert!(page.contains("id=\"extensions\""), "{page}");
        assert!(page.contains("20 minutes more by <a href=\"/requests/req-2\">"), "{page}");
        assert!(page.contains("until <time datetime=\"2026-12-03T10:20:00Z\">"), "{page}");
    }

    #[test]
    fn a_scheduled_approval_shows_its_start_and_its_requester_may_withdraw_it() {
        let scheduled = json!({"requestId": "req-1", "status": "Approved", "grantMode": "credentials",
                               "nodeId": "i-1", "startsAt": at(60)});
        let page = page_of(&scheduled, true);
        assert!(page.contains("Starts at") && page.contains("Scheduled: access starts at"), "{page}");
        assert!(page.contains("action=\"/requests/req-1/cancel\"") && page.contains(">Withdraw</button>"), "{page}");
        assert!(!page.contains("/credentials\""), "no credentials before the start");
        assert!(!page_of(&scheduled, false).contains("/cancel\""), "only its requester withdraws it");
        let started =
            json!({"requestId": "req-1", "status": "Approved", "startsAt": at(-5), "grant": {"deadline": at(20)}});
        assert!(!page_of(&started, true).contains("/cancel\""), "once started, only a revoke ends it");
    }

    fn break_glass(review: Value) -> Value {
        json!({"requestId": "req-1", "status": "Approved", "grantMode": "credentials", "nodeId": "i-1",
               "breakGlass": true, "review": review, "decision": {"rule": "BreakGlass"}})
    }

    #[test]
    fn an_open_break_glass_review_is_offered_to_others_than_the_requester() {
        let open = break_glass(json!({"due": at(60)}));
        let page = page_of(&open, false);
        assert!(page.contains("class=\"glass-banner glass-open\"") && page.contains(">review open</span>"), "{page}");
        assert!(page.contains("action=\"/requests/req-1/review\""), "{page}");
        assert!(page.contains("value=\"acknowledge\"") && page.contains("value=\"flag\""), "{page}");
        assert!(page.contains("<label for=\"review-comment\">"), "{page}");
        assert_eq!(page.matches("<form method=\"post\"").count(), page.matches("name=\"csrf\"").count());
        assert!(!page_of(&open, true).contains("/review\""), "never to the requester");
        let overdue = page_of(&break_glass(json!({"due": at(-5)})), false);
        assert!(overdue.contains("glass-banner glass-overdue") && overdue.contains("review overdue"), "{overdue}");
        assert!(overdue.contains("/review\""), "an overdue review can still be taken");
    }

    #[test]
    fn a_decided_review_says_how_by_whom_and_why_and_offers_nothing_more() {
        let flagged = break_glass(json!({"due": at(60), "verdict": "flag", "at": at(-1), "comment": "No incident",
                                         "by": "arn:aws:iam::123456789012:user/approver-a"}));
        let page = page_of(&flagged, false);
        assert!(page.contains("glass-banner glass-flagged") && page.contains(">flagged</span>"), "{page}");
        assert!(page.contains(">user/approver-a</strong>") && page.contains(">No incident</q>"), "{page}");
        assert!(!page.contains("/review\""), "reviewed once");
        let acknowledged = break_glass(json!({"due": at(60), "verdict": "acknowledge", "by": "x", "at": at(-1)}));
        assert!(page_of(&acknowledged, false).contains("glass-banner glass-acknowledged"));
        let refused = json!({"requestId": "req-2", "status": "Failed", "breakGlass": true,
                             "decision": {"failureCode": "NotInBreakGlassGroup"}});
        let page = page_of(&refused, false);
        assert!(page.contains("glass-banner glass-none") && page.contains(">refused</span>"), "{page}");
        assert!(!page.contains("/review\""));
        let list = json!({"items": [flagged, refused, {"requestId": "req-3", "status": "Approved"}]});
        let listed = requests(&frame(), &list, None, None, Utc::now());
        assert_eq!(listed.matches("class=\"glass ").count(), 2, "{listed}");
        assert!(listed.contains("<span class=\"glass glass-flagged\">Break-glass: flagged</span>"), "{listed}");
    }

    #[test]
    fn the_new_request_form_offers_break_glass_and_keeps_it_when_refused() {
        let form = new_request(&frame(), &RequestForm::default(), None, &[]);
        assert!(form.contains("type=\"checkbox\" id=\"breakGlass\" name=\"breakGlass\" value=\"true\" aria"), "{form}");
        assert!(form.contains("Granted at once") && form.contains("told at"), "{form}");
        let kept = RequestForm { break_glass: true, ..RequestForm::default() };
        let again = new_request(&frame(), &kept, Some(("startsAt", "no")), &[]);
        assert!(again.contains("value=\"true\" checked"), "{again}");
    }

    #[test]
    fn statuses_are_words_not_only_colours() {
        assert_eq!(badge("Approved"), "<span class=\"status status-approved\">Approved</span>");
        assert_eq!(badge("Weird"), "<span class=\"status status-other\">Weird</span>");
    }

    #[test]
    fn principals_read_short() {
        assert_eq!(who("arn:aws:iam::123456789012:user/approver-a"), "user/approver-a");
        assert_eq!(who("arn:aws:sts::123456789012:assumed-role/OnCall/alice"), "assumed-role/OnCall/alice");
        assert_eq!(who("system:evaluator"), "system: evaluator");
    }

    #[test]
    fn credentials_are_quoted_for_the_shell() {
        let page = credentials(
            &frame(),
            &json!({"requestId": "req-1", "accessKeyId": "AKIA", "secretAccessKey": "s/+=", "sessionToken": "t",
                    "target": "i-1", "documentName": "doc", "region": "us-east-1"}),
        );
        assert!(page.contains("aws ssm start-session --target i-1 --document-name doc --region us-east-1"), "{page}");
        assert!(page.contains("AWS_SECRET_ACCESS_KEY=s/+="), "{page}");
    }
}
