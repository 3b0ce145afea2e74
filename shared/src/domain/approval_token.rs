//! Mail-link tokens: HMAC-SHA256 over request id, approver, level, expiry and a nonce.
//!
//! Format: `base64url(claims JSON) "." base64url(HMAC-SHA256(key, claims JSON))`. The MAC is
//! checked (in constant time) before the claims are parsed, so nothing about a forged token is
//! ever interpreted. A valid token only identifies who may act; whether they still may (request
//! still `Pending`, at that level, they have not acted yet) is checked against the stored request
//! at decision time, which is what makes a token single use and dead once the request moves on.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::approval::Person;
use crate::domain::errors::SettingError;
use crate::domain::ids::RequestId;

/// Tokens longer than this are refused before any work is done on them.
pub const MAX_TOKEN_LEN: usize = 1024;
pub const MIN_KEY_BYTES: usize = 32;

/// The signing key, read from an SSM SecureString. Never printed.
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha256>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Accepts the parameter's text: at least 32 bytes (for example `openssl rand -base64 48`).
    pub fn from_secret(secret: &str) -> Result<Self, SettingError> {
        let bytes = secret.trim().as_bytes();
        let too_short = SettingError::TooShort {
            what: "approval-link signing key",
            min: MIN_KEY_BYTES,
            unit: "bytes",
            len: bytes.len(),
        };
        if bytes.len() < MIN_KEY_BYTES {
            return Err(too_short);
        }
        // HMAC takes a key of any length; the error is unreachable past the length check.
        Hmac::<Sha256>::new_from_slice(bytes).map(Self).map_err(|_| too_short)
    }

    fn mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }
}

/// Where a mail link points: `<api base>/decide/<token>`. `link` builds it, `token_of_path` and
/// `split_link` read it back; nothing else spells the path.
const LINK_PATH: &str = "/decide/";

pub fn link(api_base_url: &str, token: &str) -> String {
    format!("{}{LINK_PATH}{token}", api_base_url.trim_end_matches('/'))
}

/// The token of a `/decide/<token>` path (a trailing slash allowed); `None` for any other path.
pub fn token_of_path(path: &str) -> Option<&str> {
    path.trim_end_matches('/').strip_prefix(LINK_PATH).filter(|t| !t.is_empty() && !t.contains('/'))
}

/// A link split into the API's base URL and its `/decide/<token>` path.
pub fn split_link(link: &str) -> Option<(&str, &str)> {
    let at = link.find(LINK_PATH)?;
    let (base, path) = link.split_at(at);
    token_of_path(path).map(|_| (base, path))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(rename = "r")]
    pub request_id: RequestId,
    /// `Person::key` of the approver the link was made for.
    #[serde(rename = "a")]
    pub approver: Person,
    #[serde(rename = "l")]
    pub level: u8,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
    #[serde(rename = "n")]
    pub nonce: String,
}

impl TokenClaims {
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.expires, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature is not valid")]
    BadSignature,
    #[error("the link expired at {0}")]
    Expired(DateTime<Utc>),
}

pub fn sign(key: &SigningKey, claims: &TokenClaims) -> Result<String, serde_json::Error> {
    let payload = serde_json::to_vec(claims)?;
    let mut mac = key.mac();
    mac.update(&payload);
    Ok(format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())))
}

pub fn verify(key: &SigningKey, token: &str, now: DateTime<Utc>) -> Result<TokenClaims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    let mut mac = key.mac();
    mac.update(&payload);
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
    let claims: TokenClaims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if now.timestamp() >= claims.expires {
        return Err(TokenError::Expired(claims.expires_at()));
    }
    Ok(claims)
}

/// A fresh nonce, so two links for the same approver and level differ.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_built_and_read_back_in_one_place() {
        let url = link("https://api.example/", "abc.def");
        assert_eq!(url, "https://api.example/decide/abc.def");
        assert_eq!(split_link(&url), Some(("https://api.example", "/decide/abc.def")));
        for (path, token) in [
            ("/decide/abc.def", Some("abc.def")),
            ("/decide/abc/", Some("abc")),
            ("/decide/", None),
            ("/decide/a/b", None),
            ("/requests/x", None),
        ] {
            assert_eq!(token_of_path(path), token, "{path}");
        }
    }
    use proptest::prelude::*;

    fn key() -> SigningKey {
        SigningKey::from_secret("0123456789abcdef0123456789abcdef-test-key").unwrap()
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            request_id: RequestId::generate(),
            approver: Person::IamUser("approver-a".into()),
            level: 1,
            expires: Utc::now().timestamp() + 3600,
            nonce: nonce(),
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let c = claims();
        assert_eq!(verify(&key(), &sign(&key(), &c).unwrap(), Utc::now()).unwrap(), c);
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(matches!(
            SigningKey::from_secret("short"),
            Err(SettingError::TooShort { min: MIN_KEY_BYTES, len: 5, .. })
        ));
        assert!(!format!("{:?}", key()).contains("0123"));
    }

    #[test]
    fn expired_truncated_and_foreign_tokens_are_refused() {
        let c = TokenClaims { expires: Utc::now().timestamp() - 1, ..claims() };
        assert!(matches!(verify(&key(), &sign(&key(), &c).unwrap(), Utc::now()), Err(TokenError::Expired(_))));
        let token = sign(&key(), &claims()).unwrap();
        for cut in [1, token.len() / 2, token.len() - 1] {
            assert!(verify(&key(), &token[..cut], Utc::now()).is_err(), "{cut}");
        }
        let other = SigningKey::from_secret("another-key-another-key-another-key!!").unwrap();
        assert_eq!(verify(&other, &token, Utc::now()), Err(TokenError::BadSignature));
        assert_eq!(verify(&key(), &"a".repeat(MAX_TOKEN_LEN + 1), Utc::now()), Err(TokenError::Malformed));
    }

    #[test]
    fn claims_changed_without_the_key_do_not_verify() {
        let c = claims();
        let token = sign(&key(), &c).unwrap();
        let sig = token.split_once('.').unwrap().1;
        let forged_claims = [
            TokenClaims { approver: Person::IamUser("mallory".into()), ..c.clone() },
            TokenClaims { level: 2, ..c.clone() },
            TokenClaims { request_id: RequestId::generate(), ..c.clone() },
            TokenClaims { expires: c.expires + 86_400, ..c.clone() },
        ];
        for forged in forged_claims {
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
            assert_eq!(verify(&key(), &format!("{payload}.{sig}"), Utc::now()), Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn no_single_character_change_of_a_token_is_accepted() {
        // Every position, every base64url character: far more than 1,000 mutations.
        let token = sign(&key(), &claims()).unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        let mut tried = 0;
        for i in 0..token.len() {
            for &ch in alphabet {
                if token.as_bytes()[i] == ch {
                    continue;
                }
                let mut bytes = token.clone().into_bytes();
                bytes[i] = ch;
                let mutated = String::from_utf8(bytes).unwrap();
                // Base64 without padding can encode the same bytes two ways only in the
                // unused low bits of the last character; the decoder refuses those.
                assert!(verify(&key(), &mutated, Utc::now()).is_err(), "accepted a mutation at {i}: {mutated}");
                tried += 1;
            }
        }
        assert!(tried >= 1000, "only {tried} mutations");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn random_mutations_are_never_accepted(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<bool>()) {
            let token = sign(&key(), &claims()).unwrap();
            let mut bytes = token.clone().into_bytes();
            for (pos, byte) in edits {
                let i = pos % bytes.len();
                bytes[i] = byte;
            }
            if cut {
                bytes.pop();
            }
            let mutated = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(mutated != token);
            prop_assert!(verify(&key(), &mutated, Utc::now()).is_err());
        }
    }
}
