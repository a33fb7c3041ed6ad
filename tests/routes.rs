//! The REST routes through `actix_web::test`, on the real bundled model: every input form,
//! `top_k`, the batch route, every error kind, readiness and the request metrics.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use base64::Engine;
use petal::config::{ImageLimits, Settings};
use petal::http::{app, AppState};
use petal::metrics::Metrics;
use serde_json::{json, Value};

fn settings() -> Settings {
    Settings {
        model: PathBuf::from("unused"),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        workers: 1,
        inference_threads: 2,
        max_body_bytes: 4 * 1024 * 1024,
        max_batch: 4,
        default_top_k: 5,
        request_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        limits: ImageLimits {
            max_pixels: 40_000_000,
        },
    }
}

fn state(ready: bool) -> web::Data<AppState> {
    let state = AppState::new(&settings());
    if ready {
        state.set_ready(common::classifier());
    }
    web::Data::new(state)
}

macro_rules! service {
    ($state:expr) => {
        test::init_service(app($state, web::Data::new(Metrics::default()))).await
    };
    ($state:expr, $metrics:expr) => {
        test::init_service(app($state, $metrics)).await
    };
}

/// A photo and the label it must get, from the reference manifest.
fn photo(stem: &str) -> (Vec<u8>, String) {
    let reference = common::manifest()
        .main
        .images
        .iter()
        .find(|r| r.image.contains(stem))
        .unwrap_or_else(|| panic!("no fixture photo matching {stem}"));
    (reference.image_bytes(), reference.top5[0].label.clone())
}

fn cat() -> (Vec<u8>, String) {
    photo("chelsea")
}

const BOUNDARY: &str = "petal-test-boundary";

fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (i, (field, data)) in parts.iter().enumerate() {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"image{i}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// What `test::init_service` returns, named once for the helpers below.
trait TestService<B>:
    Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>
{
}

impl<S, B> TestService<B> for S where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>
{
}

fn post_multipart(uri: &str, parts: &[(&str, &[u8])]) -> TestRequest {
    let (content_type, body) = multipart(parts);
    TestRequest::post()
        .uri(uri)
        .insert_header(("content-type", content_type))
        .set_payload(body)
}

async fn call_json<B: MessageBody>(
    service: &impl TestService<B>,
    request: TestRequest,
) -> (StatusCode, Value) {
    let response = test::call_service(service, request.to_request()).await;
    let status = response.status();
    let body = test::read_body(response).await;
    let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "status {status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, value)
}

fn top_label(body: &Value) -> &str {
    body["predictions"][0]["label"]
        .as_str()
        .unwrap_or_else(|| panic!("no top label in {body}"))
}

#[actix_web::test]
async fn a_multipart_image_field_is_classified() {
    let service = service!(state(true));
    let (bytes, label) = cat();
    let (status, body) =
        call_json(&service, post_multipart("/predict", &[("image", &bytes)])).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(top_label(&body), label);
    assert_eq!(body["model"], "efficientnet-lite0");
    assert_eq!(body["predictions"].as_array().unwrap().len(), 5);
    let p0 = body["predictions"][0]["probability"].as_f64().unwrap();
    let p1 = body["predictions"][1]["probability"].as_f64().unwrap();
    assert!(p0 >= p1 && p0 <= 1.0, "{body}");
    for stage in ["decode", "preprocess", "inference"] {
        assert!(
            body["timings_ms"][stage].as_f64().unwrap() > 0.0,
            "{stage} timing missing: {body}"
        );
    }
}

#[actix_web::test]
async fn a_multipart_file_field_is_accepted_too() {
    let service = service!(state(true));
    let (bytes, label) = cat();
    let (status, body) = call_json(&service, post_multipart("/predict", &[("file", &bytes)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(top_label(&body), label);
}

#[actix_web::test]
async fn a_raw_image_body_is_classified() {
    let service = service!(state(true));
    let (bytes, label) = photo("coffee");
    let request = TestRequest::post()
        .uri("/predict")
        .insert_header(("content-type", "image/png"))
        .set_payload(bytes);
    let (status, body) = call_json(&service, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(top_label(&body), label);
}

#[actix_web::test]
async fn a_base64_json_image_is_classified() {
    let service = service!(state(true));
    let (bytes, label) = cat();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let request = TestRequest::post()
        .uri("/predict")
        .set_json(json!({ "image": encoded }));
    let (status, body) = call_json(&service, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(top_label(&body), label);
}

#[actix_web::test]
async fn top_k_sets_the_number_of_predictions_and_is_checked() {
    let service = service!(state(true));
    let (bytes, _) = cat();
    let (status, body) = call_json(
        &service,
        post_multipart("/predict?top_k=3", &[("image", &bytes)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["predictions"].as_array().unwrap().len(), 3);

    for bad in [
        "top_k=0",
        "top_k=1001",
        "top_k=many",
        "top_k=-1",
        "topk=3",
        "top_k=1&top_k=2",
    ] {
        let uri = format!("/predict?{bad}");
        let (status, body) = call_json(&service, post_multipart(&uri, &[("image", &bytes)])).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["kind"], "invalid_parameter", "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains("top_k"), "{body}");
    }
    let (_, body) = call_json(
        &service,
        post_multipart("/predict?topk=3", &[("image", &bytes)]),
    )
    .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `topk`"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_batch_answers_one_result_per_image_in_order() {
    let service = service!(state(true));
    let photos = [cat(), photo("coffee"), photo("rocket")];
    let parts: Vec<(&str, &[u8])> = photos
        .iter()
        .map(|(bytes, _)| ("image", bytes.as_slice()))
        .collect();
    let (status, body) =
        call_json(&service, post_multipart("/predict/batch?top_k=2", &parts)).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (result, (_, label)) in results.iter().zip(&photos) {
        assert_eq!(top_label(result), label);
        assert_eq!(result["predictions"].as_array().unwrap().len(), 2);
    }
}

#[actix_web::test]
async fn a_batch_over_the_limit_is_refused() {
    let service = service!(state(true));
    let (bytes, _) = cat();
    let parts = vec![("image", bytes.as_slice()); 5];
    let (status, body) = call_json(&service, post_multipart("/predict/batch", &parts)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["kind"], "too_many_images");
}

#[actix_web::test]
async fn a_bad_image_in_a_batch_is_named() {
    let service = service!(state(true));
    let (bytes, _) = cat();
    let parts = [
        ("image", bytes.as_slice()),
        ("image", b"not an image".as_slice()),
    ];
    let (status, body) = call_json(&service, post_multipart("/predict/batch", &parts)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["kind"], "undecodable_image");
    assert!(
        body["error"].as_str().unwrap().starts_with("image 1:"),
        "{body}"
    );
}

/// A BMP header claiming 10000×10000 pixels and carrying none of them.
fn huge_bmp_header() -> Vec<u8> {
    let mut bmp = Vec::new();
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&(54u32 + 300_000_000).to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&10_000i32.to_le_bytes());
    bmp.extend_from_slice(&10_000i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    bmp
}

#[actix_web::test]
async fn every_client_error_is_a_json_4xx_naming_the_problem() {
    let service = service!(state(true));
    let ico = [
        0u8, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 22, 0, 0, 0,
    ];
    let (cat, _) = cat();
    let big = vec![0u8; 4 * 1024 * 1024 + 1];
    let cases: Vec<(&str, TestRequest, u16, &str)> = vec![
        (
            "empty body",
            TestRequest::post()
                .uri("/predict")
                .insert_header(("content-type", "image/jpeg")),
            400,
            "empty_image",
        ),
        (
            "garbage",
            TestRequest::post()
                .uri("/predict")
                .set_payload("definitely not a picture"),
            400,
            "undecodable_image",
        ),
        (
            "truncated",
            TestRequest::post()
                .uri("/predict")
                .set_payload(cat[..cat.len() / 3].to_vec()),
            400,
            "undecodable_image",
        ),
        (
            "no image field",
            post_multipart("/predict", &[("photo", &cat)]),
            400,
            "bad_request",
        ),
        (
            "broken JSON",
            TestRequest::post()
                .uri("/predict")
                .insert_header(("content-type", "application/json"))
                .set_payload("{"),
            400,
            "bad_request",
        ),
        (
            "two images",
            post_multipart("/predict", &[("image", &cat), ("image", &cat)]),
            400,
            "bad_request",
        ),
        (
            "ICO",
            TestRequest::post()
                .uri("/predict")
                .set_payload(ico.to_vec()),
            415,
            "unsupported_format",
        ),
        (
            "text",
            TestRequest::post()
                .uri("/predict")
                .insert_header(("content-type", "text/plain"))
                .set_payload("hi"),
            415,
            "unsupported_content_type",
        ),
        (
            "too big",
            TestRequest::post()
                .uri("/predict")
                .insert_header(("content-type", "image/jpeg"))
                .set_payload(big),
            413,
            "body_too_large",
        ),
        (
            "too many pixels",
            TestRequest::post()
                .uri("/predict")
                .set_payload(huge_bmp_header()),
            413,
            "too_many_pixels",
        ),
    ];

    for (name, request, status, kind) in cases {
        let (got, body) = call_json(&service, request).await;
        assert_eq!(got.as_u16(), status, "{name}: {body}");
        assert_eq!(body["kind"], kind, "{name}: {body}");
        assert!(
            !body["error"].as_str().unwrap().is_empty(),
            "{name}: {body}"
        );
    }

    // Still serving after all of that.
    let (status, body) = call_json(&service, post_multipart("/predict", &[("image", &cat)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_web::test]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let service = service!(state(true));
    let (status, body) = call_json(&service, TestRequest::get().uri("/nope")).await;
    assert_eq!(
        (status.as_u16(), body["kind"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let wrong_methods = [
        TestRequest::get().uri("/predict"),
        TestRequest::get().uri("/predict/batch"),
        TestRequest::post().uri("/health"),
        TestRequest::post().uri("/ready"),
        TestRequest::put().uri("/model"),
        TestRequest::delete().uri("/metrics"),
    ];
    for (request, allow) in wrong_methods.into_iter().zip([
        "POST",
        "POST",
        "GET, HEAD",
        "GET, HEAD",
        "GET, HEAD",
        "GET, HEAD",
    ]) {
        let response = test::call_service(&service, request.to_request()).await;
        assert_eq!(response.status().as_u16(), 405);
        assert_eq!(response.headers().get("allow").unwrap(), allow);
        let body: Value = test::read_body_json(response).await;
        assert_eq!(body["kind"], "method_not_allowed", "{body}");
    }

    // HEAD is answered wherever GET is.
    let head = TestRequest::default()
        .method(actix_web::http::Method::HEAD)
        .uri("/health");
    let response = test::call_service(&service, head.to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_web::test]
async fn before_the_model_is_ready_only_health_succeeds() {
    let state = state(false);
    let service = service!(state.clone());

    let (status, body) = call_json(&service, TestRequest::get().uri("/health")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("ok")));
    let (status, body) = call_json(&service, TestRequest::get().uri("/ready")).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("loading"))
    );
    let (status, body) =
        call_json(&service, post_multipart("/predict", &[("image", &cat().0)])).await;
    assert_eq!(
        (status, &body["kind"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("not_ready"))
    );
    let (status, _) = call_json(&service, TestRequest::get().uri("/model")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    state.set_ready(common::classifier());
    let (status, body) = call_json(&service, TestRequest::get().uri("/ready")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("ready")));
}

#[actix_web::test]
async fn the_model_route_describes_the_loaded_model() {
    let service = service!(state(true));
    let (status, body) = call_json(&service, TestRequest::get().uri("/model")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "efficientnet-lite0");
    assert_eq!(body["sha256"], common::manifest().main.model_sha256);
    assert_eq!(body["input_shape"], json!(["N", 3, 224, 224]));
    assert_eq!(body["num_classes"], 1000);
    assert_eq!(body["preprocessing"]["resize_shorter"], 256);
    assert_eq!(body["preprocessing"]["mean"], json!([127.0, 127.0, 127.0]));
}

/// The value of the sample `name{labels}` in an exposition, or a panic listing the text.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn scrape<B: MessageBody>(service: &impl TestService<B>) -> String {
    // As Prometheus asks.
    let request = TestRequest::get().uri("/metrics").insert_header((
        "accept",
        "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    ));
    let response = test::call_service(service, request.to_request()).await;
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        petal::metrics::CONTENT_TYPE
    );
    String::from_utf8(test::read_body(response).await.to_vec()).unwrap()
}

#[actix_web::test]
async fn metrics_count_each_request_under_its_route_template() {
    let metrics = web::Data::new(Metrics::default());
    let service = service!(state(true), metrics.clone());
    for _ in 0..3 {
        test::call_service(&service, TestRequest::get().uri("/health").to_request()).await;
    }
    for path in ["/a", "/b/c", "/favicon.ico"] {
        test::call_service(&service, TestRequest::get().uri(path).to_request()).await;
    }
    test::call_service(
        &service,
        post_multipart("/predict", &[("image", b"junk")]).to_request(),
    )
    .await;

    let text = scrape(&service).await;
    let requests = "petal_http_requests_total";
    assert_eq!(
        sample(
            &text,
            requests,
            r#"route="/health",method="GET",status="2xx""#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            requests,
            r#"route="unmatched",method="GET",status="4xx""#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            requests,
            r#"route="/predict",method="POST",status="4xx""#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "petal_rejected_inputs_total",
            r#"kind="undecodable_image""#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "petal_http_request_duration_seconds_count",
            r#"route="/health""#
        ),
        3.0
    );
    // Nothing is in flight: the scrape does not count itself.
    assert_eq!(sample(&text, "petal_http_requests_in_flight", ""), 0.0);
    // Series a dashboard rates over exist from the start, at zero, so that their first
    // increase shows.
    assert_eq!(
        sample(
            &text,
            requests,
            r#"route="/predict/batch",method="POST",status="5xx""#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "petal_rejected_inputs_total",
            r#"kind="body_timeout""#
        ),
        0.0
    );
    assert!(
        !text.contains("favicon"),
        "a raw path leaked into a label:\n{text}"
    );
}

#[actix_web::test]
async fn clients_that_do_not_ask_for_openmetrics_get_the_classic_text_format() {
    let service = service!(state(true));
    test::call_service(&service, TestRequest::get().uri("/health").to_request()).await;
    let response =
        test::call_service(&service, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        petal::metrics::TEXT_CONTENT_TYPE
    );
    let text = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    // The classic format names the counter family with its `_total` suffix and has no `# EOF`.
    assert!(
        text.contains("# TYPE petal_http_requests_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
}

#[actix_web::test]
async fn a_thousand_random_paths_add_no_series() {
    let metrics = web::Data::new(Metrics::default());
    let service = service!(state(true), metrics.clone());
    // One unknown path and one scrape first, so that their own series already exist.
    test::call_service(&service, TestRequest::get().uri("/warm-up").to_request()).await;
    scrape(&service).await;
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let before = series(&scrape(&service).await);

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..1000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let uri = format!("/{:x}/{}", seed, seed % 977);
        test::call_service(&service, TestRequest::get().uri(&uri).to_request()).await;
    }

    let text = scrape(&service).await;
    assert_eq!(series(&text), before, "{text}");
    assert_eq!(
        sample(
            &text,
            "petal_http_requests_total",
            r#"route="unmatched",method="GET",status="4xx""#
        ),
        1001.0
    );
}

#[actix_web::test]
async fn model_metrics_follow_the_images_classified() {
    let metrics = web::Data::new(Metrics::default());
    let model = petal::Model::load(&common::main_model_path()).unwrap();
    metrics.set_model_info(model.info());
    let classifier =
        petal::Classifier::new(model, common::LIMITS).with_metrics(metrics.model.clone());
    let state = AppState::new(&settings());
    state.set_ready(std::sync::Arc::new(classifier));
    let service = service!(web::Data::new(state), metrics.clone());

    let (cat, _) = cat();
    test::call_service(
        &service,
        post_multipart("/predict", &[("image", &cat)]).to_request(),
    )
    .await;
    let parts = [
        ("image", cat.as_slice()),
        ("image", cat.as_slice()),
        ("image", cat.as_slice()),
    ];
    test::call_service(
        &service,
        post_multipart("/predict/batch", &parts).to_request(),
    )
    .await;

    let text = scrape(&service).await;
    assert_eq!(sample(&text, "petal_images_classified_total", ""), 4.0);
    for stage in ["decode", "preprocess", "inference"] {
        assert_eq!(
            sample(&text, &format!("petal_{stage}_duration_seconds_count"), ""),
            4.0,
            "{stage}"
        );
        assert!(
            sample(&text, &format!("petal_{stage}_duration_seconds_sum"), "") > 0.0,
            "{stage}"
        );
    }
    assert_eq!(sample(&text, "petal_batch_size_count", ""), 2.0);
    assert_eq!(sample(&text, "petal_batch_size_sum", ""), 4.0);
    let info = format!(
        r#"name="efficientnet-lite0",sha256="{}",num_classes="1000",target="{}",arch="{}",version="{}""#,
        common::manifest().main.model_sha256,
        petal::metrics::TARGET,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION"),
    );
    assert_eq!(sample(&text, "petal_model_info", &info), 1.0);
    assert!(
        petal::metrics::TARGET.starts_with(std::env::consts::ARCH),
        "{}",
        petal::metrics::TARGET
    );
    assert!(sample(&text, "process_resident_memory_bytes", "") > 10e6);
    assert!(sample(&text, "process_cpu_seconds_total", "") > 0.0);
}
