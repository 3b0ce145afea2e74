//! One HTTPS client setup for the HTTP services the SDKs do not cover (the Slack Web API, the
//! `jit` CLI's calls of the project's own API): hyper with rustls (the aws-lc-rs provider the
//! SDK already links) and the system's root certificates; plain HTTP only where the caller has
//! checked the URL is a loopback stand-in.

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why no client could be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpsSetupError {
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("no trusted root certificates were found on this machine (install the system CA bundle): {0}")]
    NoRootCertificates(std::io::Error),
}

/// A client for `base_url`: for `http://` (which the caller allowed only on loopback) no
/// certificate is ever checked; for `https://` the system's trusted roots are required.
pub fn client(base_url: &str) -> Result<HttpsClient, HttpsSetupError> {
    let tls = rustls::crypto::aws_lc_rs::default_provider();
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = if base_url.starts_with("http://") {
        let config = rustls::ClientConfig::builder_with_provider(tls.into())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder.with_tls_config(config)
    } else {
        builder.with_provider_and_native_roots(tls).map_err(HttpsSetupError::NoRootCertificates)?
    };
    Ok(Client::builder(TokioExecutor::new()).build(builder.https_or_http().enable_http1().build()))
}
