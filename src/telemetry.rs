//! Logging (tracing, text or JSON) and the process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global tracing subscriber. Safe to call more than once (tests do): later calls
/// leave the first subscriber in place.
pub fn init_tracing(settings: &LogSettings) {
    let filter = EnvFilter::try_new(directives(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new(directives("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
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
