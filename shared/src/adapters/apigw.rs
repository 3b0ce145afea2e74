//! API Gateway HTTP API (payload 2.0) ⇄ `ApiRequest`/`ApiResponse`.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::http::{ApiRequest, ApiResponse};

/// The caller is the principal API Gateway authenticated with SigV4 (`AWS_IAM` authorization);
/// a request without it never reaches the domain as authenticated.
pub fn to_api_request(req: &Request) -> ApiRequest {
    let (caller, api_account) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref()).and_then(|iam| iam.user_arn.clone()),
            ctx.account_id.clone(),
        ),
        _ => (None, None),
    };
    let query = req.query_string_parameters();
    let query = query.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    ApiRequest {
        method: req.method().as_str().to_owned(),
        path: req.raw_http_path().to_owned(),
        query,
        headers: req
            .headers()
            .iter()
            // A value with bytes outside visible ASCII is kept (lossily) rather than dropped, so
            // the route refuses it by name instead of acting as if it was never sent.
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: req.body().to_vec(),
        caller,
        api_account,
    }
}

pub fn to_response(resp: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(k, v);
    }
    builder.body(Body::Text(resp.body_text())).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::Text(
            r#"{"error":{"code":"InternalError","message":"internal error","field":null}}"#.into(),
        ));
        *fallback.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_api_gateway_event_yields_the_signed_caller_and_body() {
        let req = lambda_http::request::from_str(include_str!("../../../events/api-submit-request.json")).unwrap();
        let api = to_api_request(&req);
        assert_eq!(api.method, "POST");
        assert_eq!(api.path, "/requests");
        assert_eq!(api.caller.as_deref(), Some("arn:aws:iam::123456789012:user/operator"));
        assert_eq!(api.api_account.as_deref(), Some("123456789012"));
        assert_eq!(api.header("idempotency-key"), Some("inc-4211-restart"));
        let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
        assert_eq!(body["durationMinutes"], 30);
    }

    #[test]
    fn a_get_event_carries_its_path() {
        let req = lambda_http::request::from_str(include_str!("../../../events/api-get-request.json")).unwrap();
        let api = to_api_request(&req);
        assert_eq!((api.method.as_str(), api.path.as_str()), ("GET", "/requests/req-5f0c2a9e8b7d4c3a9e1f2b3c4d5e6f70"));
    }

    #[test]
    fn a_header_with_bytes_outside_ascii_is_kept_so_the_route_can_refuse_it() {
        let sample = include_str!("../../../events/api-submit-request.json").replace("inc-4211-restart", "retry-é1");
        let req = lambda_http::request::from_str(&sample).unwrap();

        let api = to_api_request(&req);

        let key = api.header("idempotency-key").unwrap();
        assert!(key.starts_with("retry-") && key.ends_with('1'), "{key}");
        let refused = crate::domain::ids::IdempotencyKey::try_from(key.to_owned()).unwrap_err();
        assert_eq!(refused.code, "InvalidIdempotencyKey");
    }
}
