//! Prometheus metrics: the registry, every metric family, and the middleware that records each
//! request once. Label values come only from route templates and small fixed sets: never a raw
//! path, a file name, a content type or an error message.

mod process;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error as ActixError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub use process::ProcessCollector;

use crate::error::{Error, CLIENT_ERROR_KINDS};
use crate::model::ModelInfo;

pub const PREFIX: &str = "petal";
pub const HTTP_REQUESTS: &str = "http_requests"; // petal_http_requests_total
pub const HTTP_REQUEST_DURATION: &str = "http_request_duration"; // …_seconds
pub const HTTP_IN_FLIGHT: &str = "http_requests_in_flight";
pub const REJECTED_INPUTS: &str = "rejected_inputs"; // petal_rejected_inputs_total
pub const BATCH_SIZE: &str = "batch_size";
pub const DECODE_DURATION: &str = "decode_duration"; // …_seconds
pub const PREPROCESS_DURATION: &str = "preprocess_duration"; // …_seconds
pub const INFERENCE_DURATION: &str = "inference_duration"; // …_seconds
pub const IMAGES_CLASSIFIED: &str = "images_classified"; // petal_images_classified_total
pub const MODEL_INFO: &str = "model_info";
/// The route label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Where the metrics are served. Prometheus' scrapes of it are not counted as in flight.
pub const METRICS_PATH: &str = "/metrics";
/// The status classes every route's request counter starts with, at zero.
const STATUS_CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];
/// The exposition Prometheus asks for (in its `Accept` header).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text exposition, for clients that do not ask for OpenMetrics (curl, promtool).
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The Rust target this binary was built for, e.g. `aarch64-unknown-linux-musl`.
pub const TARGET: &str = env!("PETAL_TARGET");

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub name: String,
    pub sha256: String,
    pub num_classes: String,
    pub target: &'static str,
    pub arch: &'static str,
    pub version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    // 0.5 ms .. 16 s: a health check on a server up to a large batch on a Raspberry Pi.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Durations of the stages of one image, recorded by the classifier (the model wrapper).
#[derive(Debug)]
pub struct ModelMetrics {
    pub decode: Histogram,
    pub preprocess: Histogram,
    pub inference: Histogram,
    pub images: Counter,
}

impl ModelMetrics {
    fn new() -> Self {
        ModelMetrics {
            // 0.1 ms .. 3.3 s for decoding and preprocessing; 5 ms .. 10 s for inference.
            decode: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            preprocess: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            inference: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            images: Counter::default(),
        }
    }

    /// Records one classified image's stage times, in seconds.
    pub fn observe(&self, decode: f64, preprocess: f64, inference: f64) {
        self.decode.observe(decode);
        self.preprocess.observe(preprocess);
        self.inference.observe(inference);
        self.images.inc();
    }
}

/// Every metric family petal exposes, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    in_flight: Gauge,
    rejected: Family<KindLabels, Counter>,
    batch_size: Histogram,
    model_info: Family<InfoLabels, Gauge>,
    pub model: Arc<ModelMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::default();
        let request_duration = HistogramFamily::new_with_constructor(request_histogram);
        let in_flight = Gauge::default();
        let rejected: Family<KindLabels, Counter> = Family::default();
        for kind in CLIENT_ERROR_KINDS {
            rejected.get_or_create(&KindLabels { kind }).inc_by(0);
        }
        let batch_size = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        let model_info = Family::default();
        let model = Arc::new(ModelMetrics::new());

        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let petal = registry.sub_registry_with_prefix(PREFIX);
        petal.register(
            HTTP_REQUESTS,
            "HTTP requests answered, by route template, method and status class",
            requests.clone(),
        );
        petal.register_with_unit(
            HTTP_REQUEST_DURATION,
            "Time to answer a request, by route template",
            Unit::Seconds,
            request_duration.clone(),
        );
        petal.register(
            HTTP_IN_FLIGHT,
            "Requests being answered now",
            in_flight.clone(),
        );
        petal.register(
            REJECTED_INPUTS,
            "Requests refused for what the client sent, by error kind",
            rejected.clone(),
        );
        petal.register(
            BATCH_SIZE,
            "Images per prediction request within the image-count limit",
            batch_size.clone(),
        );
        let stages = [
            (DECODE_DURATION, "Time to decode one image", &model.decode),
            (
                PREPROCESS_DURATION,
                "Time to resize, crop and normalise one image",
                &model.preprocess,
            ),
            (
                INFERENCE_DURATION,
                "Time to run the model on one image",
                &model.inference,
            ),
        ];
        for (name, help, histogram) in stages {
            petal.register_with_unit(name, help, Unit::Seconds, histogram.clone());
        }
        petal.register(IMAGES_CLASSIFIED, "Images classified", model.images.clone());
        petal.register(
            MODEL_INFO,
            "The model served and the build serving it (always 1)",
            model_info.clone(),
        );

        Metrics {
            registry,
            requests,
            request_duration,
            in_flight,
            rejected,
            batch_size,
            model_info,
            model,
        }
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
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

impl Metrics {
    /// Every family in the OpenMetrics text format, or in the classic Prometheus text format
    /// (version 0.0.4) when `openmetrics` is false. Returns the content type with the text.
    pub fn render(&self, openmetrics: bool) -> (&'static str, String) {
        let mut out = String::new();
        let written = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        written.expect("writing to a String cannot fail");
        (
            if openmetrics {
                CONTENT_TYPE
            } else {
                TEXT_CONTENT_TYPE
            },
            out,
        )
    }

    /// Publishes `petal_model_info` once the model is loaded.
    pub fn set_model_info(&self, info: &ModelInfo) {
        let labels = InfoLabels {
            name: info.name.clone(),
            sha256: info.sha256.clone(),
            num_classes: info.num_classes().to_string(),
            target: TARGET,
            arch: std::env::consts::ARCH,
            version: env!("CARGO_PKG_VERSION"),
        };
        self.model_info.get_or_create(&labels).set(1);
    }

    /// Starts the request counters of `route` at zero for each of `methods` and each status
    /// class, so that the first request of a kind already shows in a rate (Prometheus' `rate`
    /// needs two samples of a series).
    pub fn prepare_route(&self, route: &str, methods: impl IntoIterator<Item = &'static str>) {
        for method in methods {
            for status in STATUS_CLASSES {
                let labels = RequestLabels {
                    route: route.to_string(),
                    method,
                    status,
                };
                self.requests.get_or_create(&labels).inc_by(0);
            }
        }
    }

    /// Records how many images one accepted prediction request carried.
    pub fn observe_batch(&self, images: usize) {
        self.batch_size.observe(images as f64);
    }

    fn record(&self, route: String, method: &'static str, status: u16, seconds: f64) {
        let status = status_class(status);
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

/// Middleware: counts and times every request under its route template, tracks requests in
/// flight, and counts refused inputs by error kind.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, ActixError> {
    let start = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
    let method = method_label(req.method());
    let Some(metrics) = req.app_data::<web::Data<Metrics>>().cloned() else {
        return next.call(req).await;
    };

    // A scrape would otherwise always see itself in flight.
    let counted = route != METRICS_PATH;
    if counted {
        metrics.in_flight.inc();
    }
    let result = next.call(req).await;
    if counted {
        metrics.in_flight.dec();
    }

    let (status, error) = match &result {
        Ok(res) => (res.status().as_u16(), res.response().error()),
        Err(err) => (err.as_response_error().status_code().as_u16(), Some(err)),
    };
    if let Some(ours) = error.and_then(|e| e.as_error::<Error>()) {
        if ours.is_client_error() {
            metrics
                .rejected
                .get_or_create(&KindLabels { kind: ours.kind() })
                .inc();
        }
    }
    metrics.record(route, method, status, start.elapsed().as_secs_f64());
    result
}
