//! SigV4 for the local API: verification as API Gateway does it for `AWS_IAM` routes, and
//! signing for the demo and tests (with the SDK's own signer, so the two are independent).

use std::collections::HashMap;
use std::time::SystemTime;

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const SERVICE: &str = "execute-api";
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// A key the local stack issued, and whose ARN it authenticates as.
#[derive(Clone, Debug)]
pub struct IssuedKey {
    pub secret: String,
    pub session_token: Option<String>,
    pub caller_arn: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("missing or malformed Authorization header")]
    Malformed,
    #[error("unknown access key")]
    UnknownKey,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the request time is missing or more than 15 minutes off")]
    Stale,
    #[error("the session token does not match the access key")]
    BadToken,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // Unreachable for HMAC; an empty result can never match a signature.
        Err(_) => Vec::new(),
    }
}

fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies a request and returns the caller ARN it was signed for.
pub fn verify(
    keys: &HashMap<String, IssuedKey>,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String, SigV4Error> {
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
    let auth = header("authorization").ok_or(SigV4Error::Malformed)?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or(SigV4Error::Malformed)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SigV4Error::Malformed)?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(SigV4Error::Malformed),
        }
    }
    let (credential, signed_headers, signature) = (
        credential.ok_or(SigV4Error::Malformed)?,
        signed_headers.ok_or(SigV4Error::Malformed)?,
        signature.ok_or(SigV4Error::Malformed)?,
    );
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(SigV4Error::Malformed);
    };
    if *service != SERVICE {
        return Err(SigV4Error::Malformed);
    }
    let key = keys.get(*access_key).ok_or(SigV4Error::UnknownKey)?;
    let amz_date = header("x-amz-date").ok_or(SigV4Error::Stale)?;
    let when = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ").map_err(|_| SigV4Error::Stale)?.and_utc();
    if (now - when).num_seconds().abs() > MAX_SKEW_SECONDS || !amz_date.starts_with(date) {
        return Err(SigV4Error::Stale);
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err(SigV4Error::Malformed);
    }
    if key.session_token.as_deref() != header("x-amz-security-token")
        || (key.session_token.is_some() && !signed.contains(&"x-amz-security-token"))
    {
        return Err(SigV4Error::BadToken);
    }
    let body_hash = hex::encode(Sha256::digest(body));
    if let Some(claimed) = header("x-amz-content-sha256") {
        if claimed != body_hash {
            return Err(SigV4Error::BadSignature);
        }
    }
    let mut canonical_headers = String::new();
    for name in &signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigV4Error::Malformed);
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let mut query: Vec<(String, String)> = raw_query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k), false), uri_encode(&percent_decode(v), false))
        })
        .collect();
    query.sort();
    let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    // execute-api, like most services, signs the path URI-encoded once more.
    let canonical_uri = uri_encode(if raw_path.is_empty() { "/" } else { raw_path }, true);
    let canonical_request =
        format!("{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{body_hash}");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{}", key.secret).as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let expected = hex::encode(hmac(&k_signing, &string_to_sign));
    if constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        Ok(key.caller_arn.clone())
    } else {
        Err(SigV4Error::BadSignature)
    }
}

/// Credentials of one local profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Signs a request with the AWS SDK's signer; returns the headers to add.
pub fn sign(
    creds: &ProfileCredentials,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    at: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign as sdk_sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        creds.session_token.clone(),
        None,
        "jit-local",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sdk_sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> HashMap<String, IssuedKey> {
        HashMap::from([(
            "AKIDEXAMPLE".to_owned(),
            IssuedKey {
                secret: "secret".into(),
                session_token: None,
                caller_arn: "arn:aws:iam::123456789012:user/operator".into(),
            },
        )])
    }

    fn signed(method: &str, path_and_query: &str, body: &[u8], secret: &str) -> Vec<(String, String)> {
        let creds = ProfileCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: secret.into(),
            session_token: None,
        };
        let mut headers = vec![
            ("host".to_owned(), "127.0.0.1:8080".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let extra = sign(
            &creds,
            "us-east-1",
            method,
            &format!("http://127.0.0.1:8080{path_and_query}"),
            &headers,
            body,
            SystemTime::now(),
        )
        .unwrap();
        headers.extend(extra);
        headers
    }

    #[test]
    fn a_request_signed_by_the_sdk_verifies_as_its_principal() {
        let body = br#"{"a":1}"#;
        let headers = signed("POST", "/requests?status=Pending&limit=5", body, "secret");
        let caller =
            verify(&keys(), "POST", "/requests", Some("status=Pending&limit=5"), &headers, body, Utc::now()).unwrap();
        assert_eq!(caller, "arn:aws:iam::123456789012:user/operator");
    }

    #[test]
    fn tampering_with_any_part_fails_verification() {
        let body = br#"{"a":1}"#;
        let headers = signed("POST", "/requests", body, "secret");
        let k = keys();
        assert_eq!(
            verify(&k, "POST", "/requests", None, &headers, br#"{"a":2}"#, Utc::now()),
            Err(SigV4Error::BadSignature)
        );
        assert_eq!(verify(&k, "GET", "/requests", None, &headers, body, Utc::now()), Err(SigV4Error::BadSignature));
        assert_eq!(verify(&k, "POST", "/requests/x", None, &headers, body, Utc::now()), Err(SigV4Error::BadSignature));
        assert_eq!(
            verify(&k, "POST", "/requests", Some("limit=1"), &headers, body, Utc::now()),
            Err(SigV4Error::BadSignature)
        );
        assert_eq!(
            verify(&k, "POST", "/requests", None, &headers, body, Utc::now() + chrono::Duration::minutes(20)),
            Err(SigV4Error::Stale)
        );
        let wrong_secret = signed("POST", "/requests", body, "other");
        assert_eq!(
            verify(&k, "POST", "/requests", None, &wrong_secret, body, Utc::now()),
            Err(SigV4Error::BadSignature)
        );
        assert_eq!(verify(&k, "POST", "/requests", None, &[], body, Utc::now()), Err(SigV4Error::Malformed));
        assert_eq!(
            verify(&HashMap::new(), "POST", "/requests", None, &headers, body, Utc::now()),
            Err(SigV4Error::UnknownKey)
        );
    }
}
