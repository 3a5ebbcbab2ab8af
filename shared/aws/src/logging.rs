//! Logging for every Lambda binary: Lambda's advanced logging controls read
//! as `lambda_runtime`'s default subscriber reads them (`AWS_LAMBDA_LOG_LEVEL`,
//! else `RUST_LOG`, else INFO; `AWS_LAMBDA_LOG_FORMAT=JSON` for JSON lines),
//! with one difference: the AWS SDK and the HTTP stack never log at TRACE.
//! At TRACE they write whole request and response bodies (registrations,
//! needs, events), which would put every item's payload in CloudWatch as
//! soon as an operator turns the template's `LogLevel` up to TRACE.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Log targets whose TRACE events carry payloads; capped at DEBUG.
pub const PAYLOAD_TARGETS: &[&str] = &["aws_smithy", "aws_sdk_", "aws_sigv4", "hyper", "h2", "rustls"];

fn carries_payload(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::TRACE && PAYLOAD_TARGETS.iter().any(|t| meta.target().starts_with(t))
}

/// A subscriber at `spec` (a level such as `DEBUG`, or `RUST_LOG` directives;
/// unreadable parts are ignored, INFO when empty), writing text or JSON lines
/// to `writer`, with the payload-carrying targets capped at DEBUG.
pub fn subscriber<W>(spec: Option<&str>, json: bool, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let spec = spec.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("info");
    let levels = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).parse_lossy(spec);
    let filter = levels.and(filter_fn(|meta| !carries_payload(meta)));
    let layer: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer().json().with_target(false).without_time().with_writer(writer).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_target(false).without_time().with_ansi(false).with_writer(writer).boxed()
    };
    tracing_subscriber::registry().with(layer.with_filter(filter))
}

/// Installs [`subscriber`] for a Lambda function or extension, from the
/// environment, writing to stdout (CloudWatch).
pub fn init() {
    let spec = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG")).ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Another subscriber already set (a test) wins; nothing to report.
    let _ = subscriber(spec.as_deref(), json, std::io::stdout).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `spec` lets through of the events `emit` makes.
    fn captured(spec: &str, json: bool, emit: impl FnOnce()) -> String {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        tracing::subscriber::with_default(subscriber(Some(spec), json, move || Capture(sink.clone())), emit);
        String::from_utf8(lines.lock().map(|l| l.clone()).unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn sdk_trace_is_capped_and_beacon_trace_is_not() {
        let text = captured("TRACE", false, || {
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "response body secret");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "sdk debug line");
            tracing::trace!(target: "beacon_domain::poller", "beacon trace line");
        });
        assert!(!text.contains("response body secret"), "{text}");
        assert!(text.contains("sdk debug line") && text.contains("beacon trace line"), "{text}");
    }

    #[test]
    fn an_empty_or_unreadable_level_means_info() {
        let text = captured(" ", true, || {
            tracing::debug!("hidden");
            tracing::info!("shown");
        });
        assert!(text.contains("shown") && !text.contains("hidden"), "{text}");
        assert!(text.trim_start().starts_with('{'), "not JSON: {text}");
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut l) = self.0.lock() {
                l.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
