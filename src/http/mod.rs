//! The HTTP front: shared state, the app with its routes and middleware, and the server's life
//! (listen first, load the model beside it, then report ready).

mod errors;
mod extract;
mod routes;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::QueryPayloadError;
use actix_web::middleware::{from_fn, Logger};
use actix_web::{guard, web, App, HttpRequest, HttpServer, Resource, Route};
use anyhow::Context;
use tokio::sync::Semaphore;

pub use errors::ErrorBody;

use crate::classifier::Classifier;
use crate::config::Settings;
use crate::error::Error;
use crate::metrics::{self, Metrics, METRICS_PATH};
use crate::model::Model;

/// What every request handler shares.
pub struct AppState {
    classifier: OnceLock<Arc<Classifier>>,
    permits: Semaphore,
    max_body_bytes: usize,
    body_timeout: Duration,
    max_batch: usize,
    default_top_k: usize,
}

impl AppState {
    /// State for a server whose model is not loaded yet: everything but `/health` answers 503.
    pub fn new(settings: &Settings) -> Self {
        AppState {
            classifier: OnceLock::new(),
            permits: Semaphore::new(settings.inference_threads),
            max_body_bytes: settings.max_body_bytes,
            body_timeout: settings.body_timeout,
            max_batch: settings.max_batch,
            default_top_k: settings.default_top_k,
        }
    }

    /// Marks the service ready with its (loaded and warmed-up) classifier.
    pub fn set_ready(&self, classifier: Arc<Classifier>) {
        if self.classifier.set(classifier).is_err() {
            log::warn!("the classifier was already set; keeping the first one");
        }
    }

    pub fn classifier(&self) -> Result<Arc<Classifier>, Error> {
        self.classifier.get().cloned().ok_or(Error::NotReady)
    }
}

/// A path answered by one route; every other method gets 405 with a JSON error and an `Allow`
/// header listing `allow`. The path's request counters start at zero for those methods.
fn resource(metrics: &Metrics, path: &str, allow: &'static str, route: Route) -> Resource {
    metrics.prepare_route(path, allow.split(", "));
    web::resource(path)
        .route(route)
        .default_service(web::to(move |req: HttpRequest| {
            routes::method_not_allowed(req, allow)
        }))
}

/// GET, and HEAD with the same headers and no body (health checkers use either).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The application: routes, JSON errors for bad queries and unknown paths, request logging and
/// request metrics. Used as is by the server and by the route tests.
pub fn app(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // The only query parameter is `top_k`: a query that does not parse is a bad or misspelt one.
    let query_errors = web::QueryConfig::default().error_handler(|err, _req| {
        let reason = match err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        let message = format!("the query takes one parameter, top_k, a whole number: {reason}");
        Error::InvalidParameter(message).into()
    });

    // Each path with its route, its 405 answer and its counters.
    let at = {
        let metrics = metrics.clone();
        move |path, allow, route| resource(&metrics, path, allow, route)
    };
    App::new()
        .app_data(state)
        .app_data(metrics)
        .app_data(query_errors)
        .service(at("/predict", "POST", web::post().to(routes::predict)))
        .service(at(
            "/predict/batch",
            "POST",
            web::post().to(routes::predict_batch),
        ))
        .service(at("/health", "GET, HEAD", get().to(routes::health)))
        .service(at("/ready", "GET, HEAD", get().to(routes::ready)))
        .service(at("/model", "GET, HEAD", get().to(routes::model)))
        .service(at(METRICS_PATH, "GET, HEAD", get().to(routes::metrics)))
        .default_service(web::to(routes::not_found))
        .wrap(from_fn(metrics::track))
        .wrap(
            Logger::new("%{method}xi %U %s %Dms")
                .custom_request_replace("method", |req| req.method().to_string()),
        )
}

/// Serves until stopped. The socket opens at once (so `/health` and `/ready` answer while the
/// model loads); a model that fails to load stops the server with the reason.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let state = web::Data::new(AppState::new(&settings));
    let metrics = web::Data::new(Metrics::default());

    let (app_state, app_metrics) = (state.clone(), metrics.clone());
    let server = HttpServer::new(move || app(app_state.clone(), app_metrics.clone()))
        .workers(settings.workers)
        .client_request_timeout(settings.request_timeout)
        .bind(settings.addr)
        .with_context(|| format!("cannot listen on {}", settings.addr))?;
    let addr = server.addrs().first().copied().unwrap_or(settings.addr);
    let server = server.run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    log::info!(
        "listening on http://{addr}; loading {}",
        settings.model.display()
    );

    let (path, limits) = (settings.model.clone(), settings.limits);
    let model_metrics = metrics.model.clone();
    let loaded = web::block(move || -> anyhow::Result<Classifier> {
        let model = Model::load(&path)?;
        model.warm_up().context("warm-up run failed")?;
        Ok(Classifier::new(model, limits).with_metrics(model_metrics))
    })
    .await
    .context("the model loading thread failed")
    .and_then(|result| result);

    match loaded {
        Ok(classifier) => {
            // Ready first, then say so: whoever waits for the line may send at once.
            let classifier = Arc::new(classifier);
            metrics.set_model_info(classifier.info());
            state.set_ready(classifier.clone());
            let info = classifier.info();
            log::info!(
                "ready: serving {} ({} classes, sha256 {}) on http://{addr}",
                info.name,
                info.num_classes(),
                &info.sha256[..12]
            );
        }
        Err(error) => {
            handle.stop(false).await;
            return Err(error);
        }
    }

    running
        .await
        .context("the server task failed")?
        .context("the server failed")
}
