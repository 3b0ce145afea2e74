//! Starts the pinned moto server on 127.0.0.1 and stops it with us.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT_ID: &str = "123456789012";

pub struct Emulator {
    pub endpoint: String,
    child: Child,
}

/// The moto_server the Makefile installs (`JIT_MOTO_SERVER`, else `.venv/bin/moto_server`).
pub fn moto_server_path() -> PathBuf {
    std::env::var_os("JIT_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server"))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl Emulator {
    /// Starts moto on a free loopback port. A watchdog shell stops it when this process exits,
    /// even when no destructor runs (test binaries end without dropping statics).
    pub fn start() -> Result<Self, String> {
        let bin = moto_server_path();
        if !bin.exists() {
            return Err(format!("the AWS emulator is not installed: {} is missing. Run `make venv` (make test and make dev do it for you).", bin.display()));
        }
        let port = free_port()?;
        // The venv's python runs our launcher (moto with serialized DynamoDB, see the script).
        let python = bin.with_file_name("python");
        let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../local/moto_server.py");
        if !python.exists() || !launcher.exists() {
            return Err(format!(
                "the emulator launcher needs {} and {}; run `make venv`",
                python.display(),
                launcher.display()
            ));
        }
        let script = format!(
            "\"$0\" \"$1\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null",
            parent = std::process::id()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&python)
            .arg(&launcher)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let emulator = Self { endpoint: format!("http://127.0.0.1:{port}"), child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(emulator);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("the AWS emulator ({}) did not listen on 127.0.0.1:{port} within 30 s", bin.display()))
    }

    /// SDK configuration pointed at the emulator, with the emulator's dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint, Credentials::new("testing", "testing", None, None, "moto")).await
    }
}

pub async fn sdk_config_for(endpoint: &str, credentials: Credentials) -> aws_config::SdkConfig {
    jit_shared::adapters::wiring::sdk_defaults()
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .load()
        .await
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Killing the watchdog shell ends its loop's `kill -0` check on the next tick; kill
        // its process group too so moto goes at once.
        let _ = Command::new("pkill").arg("-P").arg(self.child.id().to_string()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
