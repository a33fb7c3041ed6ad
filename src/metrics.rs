//! Prometheus metrics: the registry, the metric families, and the middleware that records every
//! request once. Label values come only from route templates and small fixed sets.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error as ActixError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub const PREFIX: &str = "petal";
/// Counter of answered requests (exposed as `petal_http_requests_total`).
pub const HTTP_REQUESTS: &str = "http_requests";
/// Histogram of request latency (exposed as `petal_http_request_duration_seconds`).
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration";
/// The route label of requests that matched no route: raw paths never become labels.
pub const UNMATCHED_ROUTE: &str = "unmatched";
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: &'static str,
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s: a cached decode on a server up to a large batch on a Raspberry Pi.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric family petal exposes, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            HTTP_REQUESTS,
            "HTTP requests answered, by route template, method and status class",
            requests.clone(),
        );
        let request_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            HTTP_REQUEST_DURATION,
            "Time from receiving a request to answering it, by route template",
            Unit::Seconds,
            request_duration.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    fn record(&self, route: String, method: &'static str, status: u16, seconds: f64) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }
}

fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every request under its route template.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, ActixError> {
    let start = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
    let method = method_label(req.method());
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();

    let result = next.call(req).await;
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    if let Some(metrics) = metrics {
        metrics.record(route, method, status, start.elapsed().as_secs_f64());
    }
    result
}
