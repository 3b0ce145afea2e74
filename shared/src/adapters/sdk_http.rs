//! The one HTTP client every AWS SDK client of a process shares: hyper with rustls (aws-lc-rs) and
//! Mozilla's root certificates compiled in (`webpki-roots`).
//!
//! Why not the SDK's default client: it reads the platform's certificate store at a cold start
//! (on Debian every file of `/etc/ssl/certs`) and parses the roots again for every SDK client it
//! validates, then once more for its first request; a function with five clients parsed them six
//! times before its first request. Here the roots are data in the binary, the TLS configuration
//! is built once per process and every client's connector shares it. HTTP/1.1 only (every
//! service the functions call speaks it); no proxy (the functions reach AWS directly). Plain
//! `http://` is spoken only to an endpoint configured as such: the local stack's and the tests'
//! override, the emulator on 127.0.0.1.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{capture_connection, CaptureConnection, HttpConnector as TcpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

type HyperClient = Client<Bounded<HttpsConnector<TcpConnector>>, SdkBody>;
/// A connector's connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

/// TLS 1.2 and 1.3 with aws-lc-rs, trusting Mozilla's roots: built on first use, once per process.
/// rustls refuses only a provider without the default protocol versions, which aws-lc-rs has; if
/// it ever did, every call fails with the reason instead of connecting without verification.
static TLS: LazyLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let builder = rustls::ClientConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
        .with_safe_default_protocol_versions()?;
    Ok(Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
});

/// The client to give `aws_config` (`SdkConfig::http_client`): every SDK client built from that
/// configuration shares it, and through it one connection pool per timeout setting.
pub fn shared_client() -> SharedHttpClient {
    // Built now, with the clients, not on the first request: a cold start pays for it once.
    LazyLock::force(&TLS);
    SharedHttpClient::new(SdkHttpClient::default())
}

#[derive(Debug, Default)]
struct SdkHttpClient {
    /// One connector per (connect timeout, read timeout): the SDK asks per client and operation.
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for SdkHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        connectors.entry(key).or_insert_with(|| SharedHttpConnector::new(Connector::new(key.0, key.1))).clone()
    }
}

#[derive(Debug, Clone)]
struct Connector {
    client: Result<HyperClient, rustls::Error>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let client = TLS.clone().map(|tls| {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(rustls::ClientConfig::clone(&tls))
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp);
            let bounded = Bounded { inner: https, limit: connect_timeout };
            Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(bounded)
        });
        Self { client, read_timeout }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        // The SDK closes a connection that answered with a transient error (a 5xx, a throttle),
        // so that its retry opens a new one, possibly to another host: it asks for the
        // connection through this capture.
        let captured = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || connection_metadata(&captured));
        }
        let client = match &self.client {
            Ok(client) => client,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::other(err.clone().into(), None))),
        };
        let response = client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, response)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
                None => response.await,
            };
            let response = response.map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

/// What the SDK may do with the connection a request went over: close it ("poison" it) so the
/// pool does not hand it out again.
fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    captured.connection_metadata().as_ref()?;
    let captured = captured.clone();
    let metadata = ConnectionMetadata::builder().proxied(false).poison_fn(move || {
        if let Some(connection) = captured.connection_metadata().as_ref() {
            connection.poison();
        }
    });
    Some(metadata.build())
}

/// The HTTPS connector with the connect timeout around all of connecting: name resolution, TCP
/// and the TLS handshake (hyper's own timeout covers only the TCP connect, per address), so a
/// stalled handshake ends as a timeout the SDK retries instead of waiting for the function's.
#[derive(Clone, Debug)]
struct Bounded<C> {
    inner: C,
    limit: Option<Duration>,
}

type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<C> tower_service::Service<http::Uri> for Bounded<C>
where
    C: tower_service::Service<http::Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Connecting<C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                None => connecting.await.map_err(Into::into),
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(connected) => connected.map_err(Into::into),
                    Err(_) => Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting took longer than {limit:?}"),
                    )) as BoxError),
                },
            }
        })
    }
}

/// Sorts a failed exchange the way the SDK's retry strategy expects: a connection that could not
/// be made, was closed or broke is I/O (retried), a timeout is a timeout (retried), a request the
/// client itself refused is the caller's; anything else is not retried.
fn classify(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let hyper_error = std::error::Error::source(&err).and_then(|source| source.downcast_ref::<hyper::Error>());
    let connection_failed =
        err.is_connect() || hyper_error.is_some_and(|e| e.is_closed() || e.is_canceled() || e.is_incomplete_message());
    let timed_out = hyper_error.is_some_and(hyper::Error::is_timeout) || source_is_timeout(&err);
    let refused_by_client = hyper_error.is_some_and(hyper::Error::is_user);
    let boxed: BoxError = err.into();
    // A certificate that does not verify will not verify on a retry either; any other TLS
    // failure (an alert, a corrupt record) may be the connection's, and is retried as I/O.
    let tls_refused = chain(boxed.as_ref()).any(|e| {
        e.downcast_ref::<rustls::Error>().is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            )
        })
    });
    if tls_refused {
        ConnectorError::other(boxed, None)
    } else if timed_out {
        ConnectorError::timeout(boxed)
    } else if refused_by_client {
        ConnectorError::user(boxed)
    } else if connection_failed || source_is_io(boxed.as_ref()) {
        ConnectorError::io(boxed)
    } else {
        ConnectorError::other(boxed, None)
    }
}

/// `err` and every error under it; after an `io::Error` its payload (`io::Error::source` skips
/// it, and hyper-rustls wraps rustls' error in one).
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|payload| payload as &(dyn std::error::Error + 'static)),
        None => e.source(),
    })
}

fn source_is_io(err: &(dyn std::error::Error + 'static)) -> bool {
    chain(err).any(|e| e.is::<std::io::Error>())
}

fn source_is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    chain(err).any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use aws_smithy_runtime_api::client::http::HttpConnector as _;
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_types::body::SdkBody;
    use http_body_util::BodyExt;
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::Connector;

    const UNTRUSTED_CERT: &str = include_str!("../../tests/fixtures/untrusted-localhost.crt");
    const UNTRUSTED_KEY: &str = include_str!("../../tests/fixtures/untrusted-localhost.key");

    fn get(url: &str) -> HttpRequest {
        let request = http::Request::builder().uri(url).body(SdkBody::empty());
        HttpRequest::try_from(request.expect("a valid test request")).expect("an http 1.x request")
    }

    async fn listener() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("its address").to_string();
        (listener, address)
    }

    /// A server that accepts one connection and never says a word on it, until aborted.
    async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
        let (listener, address) = listener().await;
        let held = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.expect("a connection");
            std::future::pending::<()>().await;
        });
        (address, held)
    }

    #[tokio::test]
    async fn a_plain_http_endpoint_on_loopback_answers_through_the_connector() {
        let (listener, address) = listener().await;
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("a connection");
            let mut buffer = [0_u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        });

        let response = Connector::new(None, None).call(get(&format!("http://{address}/"))).await;

        let response = response.expect("the server's response");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.into_body().collect().await.expect("the body").to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout_which_the_sdk_retries() {
        let (address, held) = silent_server().await;

        let result =
            Connector::new(None, Some(Duration::from_millis(200))).call(get(&format!("http://{address}/"))).await;

        let error = result.expect_err("no answer within the read timeout");
        assert!(error.is_timeout(), "{error:?}");
        held.abort();
    }

    #[tokio::test]
    async fn a_tls_handshake_that_stalls_is_a_timeout_of_the_connect_limit_which_the_sdk_retries() {
        let (address, held) = silent_server().await;
        let url = format!("https://localhost:{}/", address.rsplit(':').next().unwrap_or_default());

        let result = Connector::new(Some(Duration::from_millis(200)), None).call(get(&url)).await;

        let error = result.expect_err("the server never answers the handshake");
        assert!(error.is_timeout(), "{error:?}");
        held.abort();
    }

    /// Reads one HTTP/1.1 request (headers and a `content-length` body) from `socket`; false at
    /// the end of the stream.
    async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
        let mut seen = Vec::new();
        let mut buffer = [0_u8; 4096];
        loop {
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return true;
                }
            }
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    }

    #[cfg(feature = "dynamodb")]
    #[tokio::test]
    async fn after_a_transient_server_error_the_sdk_retries_on_a_new_connection() {
        // Arrange: a stand-in that answers the first request with a 500 and keeps the connection
        // open, then every request with an empty table list; it counts connections.
        let (listener, address) = listener().await;
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (counted, served) = (connections.clone(), answered.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let served = served.clone();
                tokio::spawn(async move {
                    while read_request(&mut socket).await {
                        let (status, body) = if served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                            ("500 Internal Server Error", r#"{"__type":"InternalServerError","message":"try again"}"#)
                        } else {
                            ("200 OK", r#"{"TableNames":[]}"#)
                        };
                        let reply = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{address}"))
            .credentials_provider(aws_credential_types::Credentials::for_tests())
            .retry_config(
                aws_smithy_types::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .http_client(super::shared_client())
            .build();

        // Act
        let tables = aws_sdk_dynamodb::Client::from_conf(config).list_tables().send().await;

        // Assert: the retry succeeded on a second connection (the first was closed, not reused).
        assert!(tables.is_ok(), "{tables:?}");
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_io_which_the_sdk_retries() {
        let (listener, address) = listener().await;
        drop(listener);

        let result = Connector::new(Some(Duration::from_secs(2)), None).call(get(&format!("http://{address}/"))).await;

        let error = result.expect_err("nothing listens there");
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn https_to_a_server_whose_certificate_no_compiled_in_root_signed_is_refused_and_not_retried() {
        let (listener, address) = listener().await;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(UNTRUSTED_CERT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the fixture certificate");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(UNTRUSTED_KEY.as_bytes()).expect("the fixture key");
        let config = rustls::ServerConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("a server configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("a connection");
            acceptor.accept(socket).await.is_ok()
        });
        let url = format!("https://localhost:{}/", address.rsplit(':').next().unwrap_or_default());

        let result = Connector::new(Some(Duration::from_secs(2)), Some(Duration::from_secs(2))).call(get(&url)).await;

        let error = result.expect_err("the certificate is signed by no trusted root");
        assert!(!error.is_io() && !error.is_timeout(), "a verification failure is not transient: {error:?}");
        assert!(format!("{error:?}").contains("InvalidCertificate"), "{error:?}");
        assert!(!server.await.expect("the server task"), "the handshake did not complete");
    }
}
