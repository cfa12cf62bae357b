//! `GET /metrics` in Prometheus' text format: requests by route and
//! status, their latency, and, for a follower, its applied position, lag,
//! records, skipped rows and state. Routes are named by API (`v1.list`,
//! …), never by project, so a label never carries a tenant's id.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::status::{State, Status};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    latency: Family<Route, Histogram, fn() -> Histogram>,
    records: Gauge,
    applied_lsn: Gauge,
    lag_ms: Gauge,
    skipped_rows: Gauge,
    state: Family<StateLabel, Gauge>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("backdex");
        let requests = Family::<Request, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency =
            Family::<Route, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            latency.clone(),
        );
        let records = Gauge::default();
        registry.register("records", "Records served", records.clone());
        let applied_lsn = Gauge::default();
        registry.register(
            "follower_applied_lsn",
            "The PostgreSQL position applied (readers see every change up to it)",
            applied_lsn.clone(),
        );
        let lag_ms = Gauge::default();
        registry.register(
            "follower_lag_milliseconds",
            "At the last publish, how old its newest change was",
            lag_ms.clone(),
        );
        let skipped_rows = Gauge::default();
        registry.register(
            "follower_skipped_rows",
            "Rows not applied because they break the record rules",
            skipped_rows.clone(),
        );
        let state = Family::<StateLabel, Gauge>::default();
        registry.register(
            "follower_state",
            "1 for the follower's current state",
            state.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            records,
            applied_lsn,
            lag_ms,
            skipped_rows,
            state,
        }
    }

    /// Counts an answered request.
    pub fn observe(&self, path: &str, status: u16, took: Duration) {
        let route = route_of(path);
        self.requests
            .get_or_create(&Request { route, status })
            .inc();
        self.latency
            .get_or_create(&Route { route })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, records: usize, follower: Option<&Arc<Status>>) -> String {
        self.records.set(i64::try_from(records).unwrap_or(i64::MAX));
        if let Some(status) = follower {
            self.applied_lsn
                .set(i64::try_from(status.applied().0).unwrap_or(i64::MAX));
            self.lag_ms
                .set(i64::try_from(status.lag_ms()).unwrap_or(i64::MAX));
            self.skipped_rows
                .set(i64::try_from(status.skipped_rows()).unwrap_or(i64::MAX));
            let (current, _) = status.state();
            for s in [State::Syncing, State::Following, State::Degraded] {
                let value = i64::from(s == current);
                self.state
                    .get_or_create(&StateLabel { state: s.as_str() })
                    .set(value);
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The route a path is answered by, without its project.
fn route_of(path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz"] => "healthz",
        ["metrics"] => "metrics",
        ["internal", "records:upsert"] => "upsert",
        ["internal", "records:delete"] => "delete",
        ["v1", _, "checkpoint_items"] => "v1.list",
        ["v1", _, "checkpoint_items", "count"] => "v1.count",
        ["v3", _, "backups"] => "v3.list",
        ["v2", _, "os-vendor-backup-sharing", "count"] => "share.count",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_without_their_project() {
        assert_eq!(route_of("/v1/p1/checkpoint_items"), "v1.list");
        assert_eq!(route_of("/v1/p1/checkpoint_items/count"), "v1.count");
        assert_eq!(route_of("/v3/p1/backups"), "v3.list");
        assert_eq!(
            route_of("/v2/p1/os-vendor-backup-sharing/count"),
            "share.count"
        );
        assert_eq!(route_of("/v1/p1/nothing"), "other");
        assert_eq!(route_of("/healthz"), "healthz");
    }

    #[test]
    fn the_exposition_counts_requests_and_reads_the_follower() {
        let metrics = Metrics::new();
        metrics.observe("/v1/p1/checkpoint_items", 200, Duration::from_micros(300));
        metrics.observe("/v1/p2/checkpoint_items", 200, Duration::from_micros(300));
        metrics.observe("/v3/p1/backups", 404, Duration::from_millis(2));
        let status = Arc::new(Status::default());
        status.set_applied(crate::status::Lsn(0x16_B374_D848));
        let text = metrics.render(7, Some(&status));
        for line in [
            "backdex_http_requests_total{route=\"v1.list\",status=\"200\"} 2",
            "backdex_http_requests_total{route=\"v3.list\",status=\"404\"} 1",
            "backdex_records 7",
            "backdex_follower_applied_lsn 97500059720",
            "backdex_follower_state{state=\"syncing\"} 1",
            "backdex_http_request_duration_seconds_count{route=\"v1.list\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
