//! Function logging: structured JSON (CloudWatch and Logs Insights parse it), no timestamps (the
//! Lambda service adds them), level from `RUST_LOG` / the template's log level settings.

pub fn init() {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_current_span(false).without_time().init();
}
