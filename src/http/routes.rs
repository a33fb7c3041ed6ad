//! The REST routes: prediction, batch prediction, health, readiness, model metadata, metrics.

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::errors::error_response;
use super::{extract, AppState};
use crate::classifier::{Classification, Classifier, Prediction, Timings};
use crate::error::Error;
use crate::metrics::Metrics;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictQuery {
    top_k: Option<usize>,
}

#[derive(Debug, Serialize)]
struct PredictResponse<'a> {
    model: &'a str,
    predictions: Vec<Prediction>,
    timings_ms: Timings,
}

#[derive(Debug, Serialize)]
struct BatchResponse<'a> {
    model: &'a str,
    results: Vec<Classification>,
}

/// Classifies one image off the async workers, once one of the inference permits is free.
async fn classify_one(
    state: &AppState,
    classifier: Arc<Classifier>,
    image: Bytes,
    top_k: usize,
) -> Result<Classification, Error> {
    let _permit = state.permits.acquire().await.map_err(|_| Error::NotReady)?;
    web::block(move || classifier.classify(&image, top_k))
        .await
        .map_err(|e| Error::Inference(format!("the inference thread failed: {e}")))?
}

/// Classifies every image, in parallel up to the number of permits, keeping their order.
async fn classify(
    state: &AppState,
    classifier: Arc<Classifier>,
    images: Vec<Bytes>,
    top_k: Option<usize>,
) -> Result<Vec<Classification>, Error> {
    let top_k = classifier.check_top_k(top_k.unwrap_or(state.default_top_k))?;
    let several = images.len() > 1;
    let runs = images.into_iter().enumerate().map(|(index, image)| {
        let run = classify_one(state, classifier.clone(), image, top_k);
        async move {
            let in_batch = |e| {
                if several {
                    Error::in_batch(index, e)
                } else {
                    e
                }
            };
            run.await.map_err(in_batch)
        }
    });
    futures_util::future::try_join_all(runs).await
}

/// The ready classifier and the images of the request. Readiness is checked first, so that a
/// loading server does not read bodies it cannot use.
async fn receive(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Arc<Classifier>, Vec<Bytes>), Error> {
    let classifier = state.classifier()?;
    let reading = extract::images(req.headers(), payload, state.max_body_bytes);
    let images = actix_web::rt::time::timeout(state.body_timeout, reading)
        .await
        .map_err(|_| Error::BodyTimeout {
            seconds: state.body_timeout.as_secs(),
        })??;
    Ok((classifier, images))
}

/// Counts the images of a request that passed the route's limit on their number.
fn record_batch(req: &HttpRequest, images: &[Bytes]) {
    if let Some(metrics) = req.app_data::<web::Data<Metrics>>() {
        metrics.observe_batch(images.len());
    }
}

pub async fn predict(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<PredictQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (classifier, images) = receive(&req, payload, &state).await?;
    if images.len() > 1 {
        return Err(Error::BadRequest(format!(
            "{} images sent to /predict, which takes one: use /predict/batch",
            images.len()
        )));
    }
    record_batch(&req, &images);

    let mut results = classify(&state, classifier.clone(), images, query.top_k).await?;
    let result = results.remove(0);
    Ok(HttpResponse::Ok().json(PredictResponse {
        model: &classifier.info().name,
        predictions: result.predictions,
        timings_ms: result.timings_ms,
    }))
}

pub async fn predict_batch(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<PredictQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (classifier, images) = receive(&req, payload, &state).await?;
    if images.len() > state.max_batch {
        return Err(Error::TooManyImages {
            count: images.len(),
            limit: state.max_batch,
        });
    }
    record_batch(&req, &images);

    let results = classify(&state, classifier.clone(), images, query.top_k).await?;
    Ok(HttpResponse::Ok().json(BatchResponse {
        model: &classifier.info().name,
        results,
    }))
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.classifier() {
        Ok(_) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "status": "loading" })),
    }
}

pub async fn model(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let classifier = state.classifier()?;
    let info = classifier.info();
    let [c, h, w] = info.input_chw();
    Ok(HttpResponse::Ok().json(json!({
        "name": info.name,
        "sha256": info.sha256,
        "input_shape": ["N", c, h, w],
        "num_classes": info.num_classes(),
        "preprocessing": info.preprocessing,
    })))
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic text format otherwise.
pub async fn metrics(req: HttpRequest, metrics: web::Data<Metrics>) -> HttpResponse {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (content_type, body) = metrics.render(accept.contains("application/openmetrics-text"));
    HttpResponse::Ok().content_type(content_type).body(body)
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    )
}

pub async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {} (use {allow})",
            req.method(),
            req.path()
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}
