//! `POST /chat/slack`: Slack's interaction callbacks (the Request URL of the Slack app's
//! Interactivity), served by the approval function without SigV4: the credential is Slack's
//! request signature (`domain::slack::verify`), checked before anything is read or written.
//!
//! | answer | when                                                                          |
//! |--------|-------------------------------------------------------------------------------|
//! | 404    | Slack is not set up (no signing secret configured)                            |
//! | 401    | the signature or its timestamp does not check out                             |
//! | 400    | the callback is not a click on our buttons (the error names the field)        |
//! | 403    | the Slack user is not anyone's `slackUserId` in `contacts.yaml`                |
//! | 200    | a decision, or a refusal Slack shows the approver (own request, already decided) |

use chrono::{DateTime, Utc};

use super::{decide_page, error, method_not_allowed, ApiRequest, ApiResponse};
use crate::app::approve::{self as approvals, ApprovalDeps};
use crate::app::error::{FieldError, ServiceError};
use crate::domain::approval::Verdict;
use crate::domain::approval_rules as approval;
use crate::domain::request::AccessRequest;
use crate::domain::slack::{self, Click, SlackSigningSecret};
use crate::domain::status::RequestStatus;

pub const PATH: &str = "/chat/slack";

/// True for the Slack callback path.
pub fn serves(path: &str) -> bool {
    path.trim_end_matches('/') == PATH
}

fn unauthenticated(message: String) -> ApiResponse {
    ApiResponse::json(401, error::body(&ServiceError::Unauthenticated(message)))
}

/// Answers one callback. `secret` is `None` when Slack is not set up: the route then does not
/// exist.
pub async fn handle(
    deps: &ApprovalDeps<'_>,
    secret: Option<&SlackSigningSecret>,
    req: &ApiRequest,
    now: DateTime<Utc>,
) -> ApiResponse {
    let Some(secret) = secret else {
        return ApiResponse::error(&ServiceError::NotFound(format!(
            "{PATH}: Slack is not set up on this stack (SlackSigningSecretParameter is empty)"
        )));
    };
    if req.method != "POST" {
        return method_not_allowed(req);
    }
    let checked =
        slack::verify(secret, req.header("x-slack-request-timestamp"), req.header("x-slack-signature"), &req.body, now);
    if let Err(e) = checked {
        tracing::warn!(error = %e, "a Slack callback that is not Slack's was refused");
        return unauthenticated(format!("not a request signed by Slack: {e}"));
    }
    let click = match read_click(req) {
        Ok(c) => c,
        Err(e) => return ApiResponse::error(&e.into()),
    };
    if deps.people.of_slack_user(&click.user).is_none() {
        return ApiResponse::error(&ServiceError::Forbidden(format!(
            "Slack user {} is not anyone in contacts.yaml; add slackUserId: {} to their contact entry",
            click.user, click.user
        )));
    }
    let decided = approvals::decide_with_slack(
        deps,
        &click.user,
        &click.request_id,
        click.level,
        click.verdict,
        click.comment.clone(),
        now,
    )
    .await;
    match decided {
        Ok(updated) => ApiResponse::json(200, slack::reply(&decided_text(&updated, &click))),
        // What the approver should see in Slack: their click was not taken, and why.
        Err(e @ (ServiceError::Forbidden(_) | ServiceError::Conflict { .. } | ServiceError::NotFound(_))) => {
            ApiResponse::json(200, slack::reply(&format!("Refused: {}", e.public_message())))
        }
        Err(e) => ApiResponse::error(&e),
    }
}

/// The `payload` field of the form Slack posts, read as a click.
fn read_click(req: &ApiRequest) -> Result<Click, FieldError> {
    let content_type = req.header("content-type").unwrap_or_default().to_ascii_lowercase();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(FieldError::new(
            "content-type",
            "UnsupportedMediaType",
            "Slack posts interactions as application/x-www-form-urlencoded",
        ));
    }
    let form = decide_page::parse_form(&req.body).map_err(|m| FieldError::new("body", "InvalidForm", m))?;
    let payload = form
        .iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| FieldError::new("payload", "Missing", "the form has no payload field"))?;
    slack::parse_click(payload)
}

fn decided_text(updated: &AccessRequest, click: &Click) -> String {
    let (id, level) = (&updated.request_id, click.level);
    match (click.verdict, updated.status) {
        (Verdict::Reject, _) => format!("Rejected {id} at level {level}."),
        (Verdict::Approve, RequestStatus::Approved) => {
            format!("Approved {id} at level {level}: every level is complete and the access is being granted.")
        }
        (Verdict::Approve, _) => {
            let progress = updated.progress.as_ref();
            match progress.map(|p| p.current_level) {
                Some(current) if current > level => {
                    format!("Approved {id} at level {level}: the level is complete; level {current} decides next.")
                }
                _ => {
                    let needed = approval::plan_of(updated)
                        .and_then(|p| p.levels.get(usize::from(level).saturating_sub(1)))
                        .map_or(1, |l| l.min_approvals);
                    let so_far = progress.map_or(0, |p| p.approvals_at(level));
                    format!("Approved {id} at level {level}: {so_far} of {needed} approvals so far.")
                }
            }
        }
    }
}
