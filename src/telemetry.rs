//! Logging (tracing, text or JSON) and the process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global tracing subscriber. Safe to call more than once (tests do): later calls
/// leave the first subscriber in place. `RUST_LOG`, when set, replaces `log.level`.
pub fn init_tracing(settings: &LogSettings) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let rust_log = std::env::var("RUST_LOG").ok();
    let (level, refused) = chosen_level(&settings.level, rust_log.as_deref());
    let filter = EnvFilter::try_new(directives(level))
        .unwrap_or_else(|_| EnvFilter::new(directives("info")));
    let text = (settings.format == LogFormat::Text)
        .then(|| tracing_subscriber::fmt::layer().with_target(false));
    let json = (settings.format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .json()
            .flatten_event(true)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(ClientErrors)
        .with(text)
        .with(json)
        .try_init();
    if let Some(bad) = refused {
        tracing::warn!(
            rust_log = bad,
            "RUST_LOG is not a valid log filter; log.level applies"
        );
    }
}

/// The filter in force: `RUST_LOG` (the Rust convention) when it is set and valid, else the
/// configured `log.level`; and a `RUST_LOG` that was set but refused, to be reported.
fn chosen_level<'a>(configured: &'a str, rust_log: Option<&'a str>) -> (&'a str, Option<&'a str>) {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) if valid_level(v) => (v, None),
        Some(v) => (configured, Some(v)),
        None => (configured, None),
    }
}

/// actix-http logs a request it cannot parse (a header with a NUL byte, a bad request line, a
/// head over its size limit) and a connection the client broke off as `ERROR stream error: …`.
/// Those are the client's mistakes, not the server's: this layer stops them and logs them again
/// at debug, under this crate's name, with the error. Other actix-http errors stay errors.
struct ClientErrors;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ClientErrors {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let meta = event.metadata();
        if *meta.level() != tracing::Level::ERROR || !meta.target().starts_with("actix_http::h1") {
            return true;
        }
        let mut text = MessageText(String::new());
        event.record(&mut text);
        let Some(error) = text.0.strip_prefix("stream error: ") else {
            return true;
        };
        if !(error.starts_with("request parse error") || error.starts_with("I/O error")) {
            return true;
        }
        metrics::counter!("imd_http_client_errors_total").increment(1);
        // The subscriber is the global default (no scoped dispatcher), so this nested event is
        // dispatched normally.
        tracing::debug!(target: "im_dispatcher::http", error, "client connection error");
        false
    }
}

/// Collects an event's `message` field.
struct MessageText(String);

impl tracing::field::Visit for MessageText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// What a client can make actix-http log at ERROR: a fragmented control frame ("Unfinished
/// fragment"). The connection answers it with close code 1002 and logs that at debug; a client
/// must not be able to fill the server's log with errors. Kept unless `log.level` names
/// actix_http itself.
const CLIENT_TRIGGERED: &str = "actix_http::ws::codec=off";

fn directives(level: &str) -> String {
    if level.contains("actix_http") {
        level.to_string()
    } else {
        format!("{level},{CLIENT_TRIGGERED}")
    }
}

/// Checks a log level directive without installing anything (config validation).
pub fn valid_level(level: &str) -> bool {
    EnvFilter::try_new(level).is_ok()
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide metrics recorder (installed on first use), rendered by `GET /metrics`.
/// `None` only if another recorder was installed by someone else first.
pub fn metrics() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &buckets)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::chosen_level;

    #[test]
    fn rust_log_replaces_the_configured_level_when_it_is_a_valid_filter() {
        assert_eq!(chosen_level("info", Some("warn")), ("warn", None));
        assert_eq!(
            chosen_level("info", Some(" warn,im_dispatcher=debug ")),
            ("warn,im_dispatcher=debug", None)
        );
    }

    #[test]
    fn an_unset_or_empty_rust_log_leaves_the_configured_level() {
        assert_eq!(chosen_level("debug", None), ("debug", None));
        assert_eq!(chosen_level("debug", Some("  ")), ("debug", None));
    }

    #[test]
    fn an_invalid_rust_log_is_refused_and_reported() {
        assert_eq!(
            chosen_level("info", Some("warn,[{bad")),
            ("info", Some("warn,[{bad"))
        );
    }
}
