//! The one mapping from the application error to an HTTP status and a JSON body
//! (`{"error": {"code", "message", "field"}}`), and its variant for the mail-link pages.

use crate::app::error::ServiceError;

pub fn status(e: &ServiceError) -> u16 {
    match e {
        ServiceError::InvalidInput(_) => 400,
        ServiceError::Unauthenticated(_) | ServiceError::Forbidden(_) => 403,
        ServiceError::NotFound(_) => 404,
        ServiceError::Conflict { .. } => 409,
        ServiceError::UnsupportedMediaType(_) => 415,
        ServiceError::Unavailable(_) => 503,
        ServiceError::Internal(_) => 500,
    }
}

pub fn body(e: &ServiceError) -> serde_json::Value {
    let field = match e {
        ServiceError::InvalidInput(f) => Some(f.field.clone()),
        _ => None,
    };
    serde_json::json!({ "error": { "code": e.code(), "message": e.public_message(), "field": field } })
}

/// A mail link is a credential: whatever makes it unusable (a bad token, a request that moved
/// on, an approver who may not decide) is one `403` page, never a hint of what exists.
pub fn link_status(e: &ServiceError) -> u16 {
    match e {
        ServiceError::Conflict { .. }
        | ServiceError::Forbidden(_)
        | ServiceError::NotFound(_)
        | ServiceError::Unauthenticated(_) => 403,
        other => status(other),
    }
}

pub fn link_message(e: &ServiceError) -> String {
    match e {
        ServiceError::Unavailable(_) => "a dependency is unavailable; go back and try again in a moment".to_owned(),
        other => other.public_message(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::error::FieldError;

    #[test]
    fn every_error_maps_to_its_status() {
        let cases: Vec<(ServiceError, u16, u16)> = vec![
            (FieldError::new("reason", "InvalidReason", "x").into(), 400, 400),
            (ServiceError::Unauthenticated("x".into()), 403, 403),
            (ServiceError::Forbidden("x".into()), 403, 403),
            (ServiceError::NotFound("x".into()), 404, 403),
            (ServiceError::Conflict { code: "C", message: "x".into() }, 409, 403),
            (ServiceError::UnsupportedMediaType("x".into()), 415, 415),
            (ServiceError::Unavailable("x".into()), 503, 503),
            (ServiceError::Internal("x".into()), 500, 500),
        ];
        for (err, api, link) in cases {
            assert_eq!((status(&err), link_status(&err)), (api, link), "{err}");
        }
    }

    #[test]
    fn field_errors_name_the_field_and_internal_errors_hide_details() {
        let b = body(&ServiceError::from(FieldError::new("nodeId", "InvalidNodeId", "bad")));
        assert_eq!(b["error"]["field"], "nodeId");
        assert_eq!(b["error"]["code"], "InvalidNodeId");
        let b = body(&ServiceError::Internal("table jit-secret exploded".into()));
        assert!(!b.to_string().contains("jit-secret"));
        assert!(!link_message(&ServiceError::Internal("jit-secret".into())).contains("jit-secret"));
    }
}
