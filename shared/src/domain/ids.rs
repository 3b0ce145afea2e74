//! Validated value types. Every value that crosses the API boundary is parsed into one of these
//! once, so the rest of the code never re-checks a string.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::errors::FieldError;

/// Longest access a request may ask for: 336 hours, AWS JITNA's own ceiling.
pub const MAX_DURATION_MINUTES: u32 = 20_160;
/// AWS JITNA's limit on the request reason.
pub const MAX_REASON_CHARS: usize = 256;

/// `req-` followed by 32 lowercase hex digits (a random UUID without dashes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    pub fn generate() -> Self {
        Self(format!("req-{}", uuid::Uuid::new_v4().simple()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RequestId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let ok = value.strip_prefix("req-").is_some_and(|hex| {
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Self(value))
        } else {
            Err(FieldError::new("requestId", "InvalidRequestId", "must be 'req-' followed by 32 lowercase hex digits"))
        }
    }
}

impl From<RequestId> for String {
    fn from(value: RequestId) -> Self {
        value.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of node an id names; it decides the ARN form and the Cedar entity type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// An EC2 instance, `i-` + 8 or 17 hex digits.
    Ec2Instance,
    /// A hybrid managed node registered with SSM, `mi-` + 17 hex digits.
    ManagedInstance,
}

/// Where a node lives: the partition, account and Region of its ARN.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLocation {
    pub partition: String,
    pub account: String,
    pub region: String,
}

/// A node: an instance id (`i-…`, `mi-…`: the stack's own account and Region) or the node's
/// full ARN (`arn:aws:ec2:<region>:<account>:instance/i-…`,
/// `arn:aws:ssm:<region>:<account>:managed-instance/mi-…`), kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId {
    text: String,
    /// Byte offset of the instance id in `text` (0 unless an ARN was given).
    id_start: usize,
    location: Option<NodeLocation>,
}

impl NodeId {
    /// As written: the instance id, or the ARN.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The bare instance id (`i-…`, `mi-…`), what SSM and EC2 name the node by.
    pub fn instance_id(&self) -> &str {
        self.text.get(self.id_start..).unwrap_or(&self.text)
    }
    /// The account and Region an ARN named; `None` for a bare id (the stack's own).
    pub fn location(&self) -> Option<&NodeLocation> {
        self.location.as_ref()
    }
    /// Where the node lives, `home` (the stack's account and Region) for a bare id.
    pub fn resolve(&self, home: &NodeLocation) -> NodeLocation {
        self.location.clone().unwrap_or_else(|| home.clone())
    }
    pub fn kind(&self) -> NodeKind {
        if self.instance_id().starts_with("mi-") {
            NodeKind::ManagedInstance
        } else {
            NodeKind::Ec2Instance
        }
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn valid_instance_id(value: &str) -> bool {
    if let Some(hex) = value.strip_prefix("i-") {
        (hex.len() == 8 || hex.len() == 17) && is_lower_hex(hex)
    } else if let Some(hex) = value.strip_prefix("mi-") {
        hex.len() == 17 && is_lower_hex(hex)
    } else {
        false
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`: letters and dashes, then a digit.
fn valid_region(region: &str) -> bool {
    let mut parts = region.split('-').collect::<Vec<_>>();
    let Some(number) = parts.pop() else { return false };
    parts.len() >= 2
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// Splits `arn:<partition>:<service>:<region>:<account>:<type>/<id>` into its location and
/// instance id, accepting only the two node ARN forms.
fn parse_node_arn(value: &str) -> Option<(NodeLocation, usize)> {
    let mut fields = value.splitn(6, ':');
    let (arn, partition, service, region, account, resource) =
        (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let (kind, id) = resource.split_once('/')?;
    let ok = arn == "arn"
        && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        && matches!((service, kind), ("ec2", "instance") | ("ssm", "managed-instance"))
        && (service == "ssm") == id.starts_with("mi-")
        && valid_region(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && valid_instance_id(id);
    ok.then(|| {
        let location =
            NodeLocation { partition: partition.to_owned(), account: account.to_owned(), region: region.to_owned() };
        (location, value.len() - id.len())
    })
}

impl TryFrom<String> for NodeId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if valid_instance_id(&value) {
            return Ok(Self { text: value, id_start: 0, location: None });
        }
        match parse_node_arn(&value) {
            Some((location, id_start)) => Ok(Self { text: value, id_start, location: Some(location) }),
            None => Err(FieldError::new(
                "nodeId",
                "InvalidNodeId",
                "must be an EC2 instance id (i- and 8 or 17 lowercase hex digits), a managed node id (mi- and 17 lowercase hex digits), or the node's ARN (arn:aws:ec2:<region>:<account>:instance/i-… or arn:aws:ssm:<region>:<account>:managed-instance/mi-…)",
            )),
        }
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.text
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Unicode format characters (general category Cf): invisible, and the bidirectional ones can
/// make mail and pages show text in another order than it was written.
pub fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// Free text shown to people (reasons, comments): line breaks and tabs, but no control or
/// format characters.
pub fn check_visible_text(text: &str, field: &str, code: &str) -> Result<(), FieldError> {
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(FieldError::new(field, code, "must not contain control characters"));
    }
    if let Some(c) = text.chars().find(|c| is_format_char(*c)) {
        return Err(FieldError::new(
            field,
            code,
            format!("must not contain invisible or text-direction characters (found U+{:04X})", u32::from(c)),
        ));
    }
    Ok(())
}

/// Why the operator needs access: 1 to 256 characters once surrounding whitespace is trimmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let trimmed = value.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(FieldError::new("reason", "InvalidReason", "must not be empty"));
        }
        if chars > MAX_REASON_CHARS {
            return Err(FieldError::new(
                "reason",
                "InvalidReason",
                format!("must be at most {MAX_REASON_CHARS} characters after trimming (got {chars})"),
            ));
        }
        check_visible_text(trimmed, "reason", "InvalidReason")?;
        Ok(Self(trimmed.to_owned()))
    }
}

impl From<Reason> for String {
    fn from(value: Reason) -> Self {
        value.0
    }
}

/// Requested access length in whole minutes, 1 to 20,160.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DurationMinutes(u32);

impl DurationMinutes {
    /// The longest any request may last.
    pub const MAX: Self = Self(MAX_DURATION_MINUTES);

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for DurationMinutes {
    type Error = FieldError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if (1..=MAX_DURATION_MINUTES).contains(&value) {
            Ok(Self(value))
        } else {
            Err(FieldError::new(
                "durationMinutes",
                "InvalidDuration",
                format!("must be a whole number of minutes from 1 to {MAX_DURATION_MINUTES} (336 hours)"),
            ))
        }
    }
}

impl From<DurationMinutes> for u32 {
    fn from(value: DurationMinutes) -> Self {
        value.0
    }
}

/// Client-chosen key that makes `POST /requests` safe to retry: 1 to 128 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(value))
        } else {
            Err(FieldError::new(
                "Idempotency-Key",
                "InvalidIdempotencyKey",
                "must be 1 to 128 printable ASCII characters without spaces",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_of_both_kinds_are_accepted_and_classified() {
        let cases = [
            ("i-0123456789abcdef0", NodeKind::Ec2Instance),
            ("i-0123abcd", NodeKind::Ec2Instance),
            ("mi-0123456789abcdef0", NodeKind::ManagedInstance),
        ];
        for (raw, kind) in cases {
            let id = NodeId::try_from(raw.to_owned()).unwrap();
            assert_eq!(id.kind(), kind, "{raw}");
            assert_eq!((id.instance_id(), id.location()), (raw, None), "{raw}");
        }
    }

    #[test]
    fn a_node_arn_names_the_account_and_region_and_is_kept_as_written() {
        let cases = [
            (
                "arn:aws:ec2:eu-west-1:222233334444:instance/i-0123abcd",
                "i-0123abcd",
                NodeKind::Ec2Instance,
                "eu-west-1",
            ),
            (
                "arn:aws-us-gov:ssm:us-gov-west-1:222233334444:managed-instance/mi-0123456789abcdef0",
                "mi-0123456789abcdef0",
                NodeKind::ManagedInstance,
                "us-gov-west-1",
            ),
        ];
        for (raw, id, kind, region) in cases {
            let node = NodeId::try_from(raw.to_owned()).unwrap();
            let location = node.location().unwrap();
            assert_eq!((node.instance_id(), node.kind(), node.as_str()), (id, kind, raw));
            assert_eq!((location.account.as_str(), location.region.as_str()), ("222233334444", region));
            assert_eq!(serde_json::to_value(&node).unwrap(), serde_json::json!(raw));
        }
    }

    #[test]
    fn malformed_node_ids_are_refused_naming_the_field() {
        for raw in [
            "",
            "i-",
            "i-0123456789ABCDEF0",
            "i-0123456789abcdef",
            "mi-0123abcd",
            "x-0123456789abcdef0",
            "i-0123456789abcdef0 ",
            "arn:aws:ec2:::instance/i-0123abcd",
            "arn:aws:ec2:eu-west-1:22223333444:instance/i-0123abcd",
            "arn:aws:ec2:eu-west-1:222233334444:instance/mi-0123456789abcdef0",
            "arn:aws:ssm:eu-west-1:222233334444:managed-instance/i-0123abcd",
            "arn:aws:ec2:EU-west-1:222233334444:instance/i-0123abcd",
            "arn:aws:ec2:eu-west-1:222233334444:volume/i-0123abcd",
            "arn:other:ec2:eu-west-1:222233334444:instance/i-0123abcd",
            "arn:aws:ec2:eu-west-1:222233334444:instance/i-0123abcd/x",
        ] {
            let err = NodeId::try_from(raw.to_owned()).unwrap_err();
            assert_eq!(err.field, "nodeId", "{raw:?}");
        }
    }

    #[test]
    fn reason_is_trimmed_and_bounded() {
        assert_eq!(Reason::try_from("  fix disk  ".to_owned()).unwrap().as_str(), "fix disk");
        assert!(Reason::try_from("   ".to_owned()).is_err());
        assert!(Reason::try_from("é".repeat(256)).is_ok(), "the limit counts characters, not bytes");
        assert!(Reason::try_from("a".repeat(257)).is_err());
        assert!(Reason::try_from(format!("{}  ", "a".repeat(256))).is_ok());
        assert!(Reason::try_from("bell\u{7}".to_owned()).is_err());
    }

    #[test]
    fn text_that_would_display_otherwise_than_written_is_refused_naming_the_character() {
        let cases = [
            ("restart \u{202E}gnp.exe", Some("U+202E")),
            ("zero\u{200B}width", Some("U+200B")),
            ("isolate \u{2066}x\u{2069}", Some("U+2066")),
            ("bom\u{FEFF}", Some("U+FEFF")),
            ("tag \u{E0041}", Some("U+E0041")),
            ("Ünïcödé, 日本語, emoji 🚀, lines\nand\ttabs", None),
        ];
        for (text, refused) in cases {
            let got = Reason::try_from(text.to_owned());
            let comment = crate::domain::approval::Comment::try_from(text.to_owned());
            match refused {
                Some(code_point) => {
                    let err = got.unwrap_err();
                    assert_eq!(err.field, "reason");
                    assert!(err.message.contains(code_point), "{text:?}: {}", err.message);
                    assert_eq!(comment.unwrap_err().field, "comment");
                }
                None => {
                    assert!(got.is_ok() && comment.is_ok(), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn duration_bounds_are_inclusive() {
        assert!(DurationMinutes::try_from(0).is_err());
        assert!(DurationMinutes::try_from(1).is_ok());
        assert!(DurationMinutes::try_from(MAX_DURATION_MINUTES).is_ok());
        assert!(DurationMinutes::try_from(MAX_DURATION_MINUTES + 1).is_err());
    }

    #[test]
    fn request_ids_round_trip_and_reject_foreign_shapes() {
        let id = RequestId::generate();
        assert_eq!(RequestId::try_from(id.as_str().to_owned()).unwrap(), id);
        for raw in ["req-", "req-XYZ", "oi-0123456789ab", "../etc/passwd"] {
            assert!(RequestId::try_from(raw.to_owned()).is_err(), "{raw}");
        }
    }

    #[test]
    fn idempotency_keys_must_be_printable_and_short() {
        assert!(IdempotencyKey::try_from("abc-123".to_owned()).is_ok());
        assert!(IdempotencyKey::try_from(String::new()).is_err());
        assert!(IdempotencyKey::try_from("has space".to_owned()).is_err());
        assert!(IdempotencyKey::try_from("k".repeat(129)).is_err());
    }
}
