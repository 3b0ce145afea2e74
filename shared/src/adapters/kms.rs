//! Approval seals with a KMS HMAC key (`HMAC_256`, `GENERATE_VERIFY_MAC`): `GenerateMac` for the
//! deciding functions, `VerifyMac` for the granting ones (their role policies split them), so no
//! function that grants can make a seal, and the key never leaves KMS.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::adapters::classify;
use crate::ports::{ApprovalSeal, PortError};

#[derive(Clone, Debug)]
pub struct KmsSeal {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsSeal {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

#[async_trait::async_trait]
impl ApprovalSeal for KmsSeal {
    async fn seal(&self, message: &[u8]) -> Result<String, PortError> {
        let out = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(|e| classify("GenerateMac", &e))?;
        let mac = out.mac().ok_or_else(|| PortError::Permanent("GenerateMac returned no MAC".into()))?;
        Ok(STANDARD.encode(mac.as_ref()))
    }

    async fn check(&self, message: &[u8], seal: &str) -> Result<bool, PortError> {
        let Ok(mac) = STANDARD.decode(seal) else { return Ok(false) };
        match self
            .client
            .verify_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .mac(Blob::new(mac))
            .send()
            .await
        {
            Ok(out) => Ok(out.mac_valid()),
            // KMS answers a MAC that does not verify with this error, not `MacValid: false`.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_kms_invalid_mac_exception()) => Ok(false),
            Err(e) => Err(classify("VerifyMac", &e)),
        }
    }
}
