//! The small HTML pages behind mail links. Every piece of text that came from a user (reason,
//! comments, tags, names) goes through `escape`, so it is shown as text and never parsed as markup.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::app::approve::LinkView;
use crate::domain::approval::Verdict;
use crate::domain::request::AccessRequest;

/// HTML-escapes text for element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         th{{text-align:left;vertical-align:top;padding-right:1rem;white-space:nowrap}}td{{white-space:pre-wrap;word-break:break-word}}\
         textarea{{width:100%;min-height:5rem}}button{{font-size:1rem;padding:.5rem 1.2rem;margin-right:1rem}}</style></head>\n<body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn row(name: &str, value: &str) -> String {
    format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(name), escape(value))
}

/// The confirmation page: shows the request and asks for the decision. Opening it changes nothing.
pub fn confirmation(view: &LinkView) -> String {
    let r = &view.request;
    let decision = r.decision.as_ref();
    let plan = decision.and_then(|d| d.approval_plan.as_ref());
    let levels = plan.map_or(0, |p| p.levels.len());
    let tags = decision
        .map(|d| d.node_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    let decided: Vec<String> = r
        .progress
        .iter()
        .flat_map(|p| p.entries.iter())
        .map(|e| {
            format!(
                "level {}: {} ({:?}){}",
                e.level,
                e.actor,
                e.verdict,
                e.comment.as_ref().map(|c| format!(": {}", c.as_str())).unwrap_or_default()
            )
        })
        .collect();
    let mut table = String::new();
    table.push_str(&row("Request", r.request_id.as_str()));
    table.push_str(&row("Requester", r.requester.as_str()));
    table.push_str(&row("Node", r.node_id.as_str()));
    // What is approved comes before the requester's own text, which cannot push it out of view.
    for (name, value) in crate::domain::approval_rules::terms(r) {
        table.push_str(&row(name, &value));
    }
    table.push_str(&row("Node tags", if tags.is_empty() { "(none)" } else { &tags }));
    table.push_str(&row("Reason", r.reason.as_str()));
    table.push_str(&row("Policy", plan.map_or("", |p| p.policy_name.as_str())));
    table.push_str(&row("Level", &format!("{} of {levels}", view.claims.level)));
    table.push_str(&row(
        "Already decided",
        &if decided.is_empty() { "nobody yet".to_owned() } else { decided.join("\n") },
    ));
    table.push_str(&row("You", &view.person.to_string()));
    table.push_str(&row("Link expires", &time(&view.claims.expires_at())));
    let body = format!(
        "<h1>Access request: your decision</h1>\n<table>\n{table}</table>\n\
         <form method=\"post\">\n<p><label for=\"comment\">Comment (optional, up to 1,000 characters)</label><br>\
         <textarea id=\"comment\" name=\"comment\" maxlength=\"1000\"></textarea></p>\n\
         <p><button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"reject\">Reject</button></p>\n</form>\n\
         <p>Nothing is decided until you press a button. The link works once.</p>"
    );
    page("Access request: your decision", &body)
}

/// The page after a decision was stored.
pub fn decided(request: &AccessRequest, verdict: Verdict) -> String {
    let what = match verdict {
        Verdict::Approve => "Your approval was recorded.",
        Verdict::Reject => "You rejected the request.",
    };
    let body = format!(
        "<h1>{}</h1>\n<table>\n{}{}{}</table>",
        escape(what),
        row("Request", request.request_id.as_str()),
        row("Node", request.node_id.as_str()),
        row("Status now", request.status.as_str())
    );
    page(what, &body)
}

/// The page for a link that is not (or no longer) valid, or a decision that could not be taken.
pub fn refused(status: u16, message: &str) -> String {
    let title = if status == 403 { "This link cannot be used" } else { "The decision was not recorded" };
    page(title, &format!("<h1>{}</h1>\n<p>{}</p>", escape(title), escape(message)))
}

const BAD_FORM: &str = "the form has a bad % escape or is not UTF-8";

/// Parses an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8".to_owned())?;
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((
                super::percent_decode(k, true).ok_or_else(|| BAD_FORM.to_owned())?,
                super::percent_decode(v, true).ok_or_else(|| BAD_FORM.to_owned())?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_user_text_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn forms_decode_like_browsers_send_them() {
        let form = parse_form(b"decision=approve&comment=looks+good%21%0Aok").unwrap();
        assert_eq!(form, vec![("decision".into(), "approve".into()), ("comment".into(), "looks good!\nok".into())]);
        assert!(parse_form(b"comment=%zz").is_err());
        assert!(parse_form(b"comment=%e2%28").is_err());
    }
}
