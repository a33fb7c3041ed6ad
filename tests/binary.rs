//! The real `petal` binary: `serve` on a free port answering a photo, `healthcheck` against it,
//! `classify` on the command line, and a broken model stopping start-up with a clear message.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_petal");

/// A `petal serve` child process; killed when dropped.
struct Server {
    child: Child,
    url: String,
    log: Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn petal(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .current_dir(common::root())
        .env("RUST_LOG", "info");
    command
}

/// Starts the server on port 0 and waits for the log line announcing it ready with its address.
fn start_server(model: &Path) -> Server {
    start_server_with(model, &[])
}

fn start_server_with(model: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = petal(&["serve"])
        .envs(env.iter().copied())
        .env("PETAL_MODEL", model)
        .env("PETAL_HOST", "127.0.0.1")
        .env("PETAL_PORT", "0")
        .stderr(Stdio::piped())
        .spawn()
        .expect("petal starts");

    let (lines, log) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    // Owned by a `Server` from here on, so that a failed start still kills the child.
    let mut server = Server {
        child,
        url: String::new(),
        log,
    };
    loop {
        let line = server
            .log
            .recv_timeout(Duration::from_secs(180))
            .expect("petal reports ready within 3 minutes");
        if let Some((_, rest)) = line.split_once("ready: ") {
            let url = rest
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .expect("address in the ready line");
            server.url = url.to_string();
            return server;
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post_image(url: &str, bytes: &[u8]) -> (u16, Value) {
    let mut response = agent()
        .post(url)
        .header("content-type", "image/png")
        .send(bytes)
        .expect("request answered");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_server_classifies_a_posted_photo_and_logs_the_request() {
    let server = start_server(&common::main_model_path());
    let reference = common::manifest()
        .main
        .images
        .iter()
        .find(|r| r.image.contains("chelsea"))
        .unwrap();

    let (status, body) = post_image(
        &format!("{}/predict?top_k=3", server.url),
        &reference.image_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["predictions"][0]["label"],
        reference.top5[0].label.as_str()
    );
    assert_eq!(body["predictions"].as_array().unwrap().len(), 3);

    // The command line prints the very same predictions, to the same digits.
    let output = petal(&["classify", "--json", "-k", "3"])
        .arg(reference.image_path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["predictions"], body["predictions"]);

    let (status, body) = post_image(&format!("{}/predict", server.url), b"garbage");
    assert_eq!(
        (status, body["kind"].as_str()),
        (400, Some("undecodable_image"))
    );

    // One info line per request, with method, path, status and duration.
    let logged = server
        .log
        .iter()
        .find(|line| line.contains("POST /predict 400"))
        .expect("request logged");
    assert!(
        logged.contains(" INFO ") && logged.trim_end().ends_with("ms"),
        "{logged}"
    );
}

#[test]
fn a_body_that_stops_arriving_is_answered_408_and_the_server_keeps_serving() {
    let server = start_server_with(
        &common::tiny_model_path(),
        &[("PETAL_BODY_TIMEOUT_SECS", "1")],
    );
    let address = server.url.trim_start_matches("http://");

    // Promise 1000 bytes, send 3, then wait for the answer without closing.
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            b"POST /predict HTTP/1.1\r\nHost: petal\r\ncontent-type: image/png\r\n\
              content-length: 1000\r\n\r\nabc",
        )
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains('}') {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("no answer to a stalled body: {e}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""kind":"body_timeout""#), "{answer}");

    let response = agent().get(format!("{}/health", server.url)).call();
    assert_eq!(response.unwrap().status().as_u16(), 200);
}

#[test]
fn healthcheck_passes_against_a_ready_server_and_fails_once_it_stops() {
    let server = start_server(&common::tiny_model_path());
    let url = format!("{}/ready", server.url);
    let ok = petal(&["healthcheck", "--url", &url]).output().unwrap();
    assert!(ok.status.success(), "{}", stderr_of(&ok));

    drop(server);
    let down = petal(&["healthcheck", "--url", &url, "--timeout-secs", "2"])
        .output()
        .unwrap();
    assert!(!down.status.success());
    assert!(
        stderr_of(&down).contains("is not ready"),
        "{}",
        stderr_of(&down)
    );
}

#[test]
fn classify_prints_the_reference_top_class_of_every_photo() {
    let references = &common::manifest().main.images;
    let mut args = vec![
        "classify".to_string(),
        "--json".to_string(),
        "-k".to_string(),
        "1".to_string(),
    ];
    args.extend(
        references
            .iter()
            .map(|r| r.image_path().display().to_string()),
    );
    let output = Command::new(BINARY)
        .args(&args)
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));

    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), references.len());
    for (line, reference) in lines.iter().zip(references) {
        assert_eq!(
            line["predictions"][0]["label"],
            reference.top5[0].label.as_str(),
            "{}",
            reference.image
        );
    }
}

#[test]
fn classify_fails_on_a_file_that_is_not_an_image_but_reports_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "not a photo").unwrap();
    let good = &common::manifest().main.images[0];
    let output = petal(&[
        "classify",
        good.image_path().to_str().unwrap(),
        text.to_str().unwrap(),
    ])
    .output()
    .unwrap();

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(&good.top5[0].label));
    assert!(
        stderr_of(&output).contains("notes.jpg: the image could not be decoded"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn an_unsupported_operator_stops_start_up_naming_the_operator_and_node() {
    use prost::Message;
    use tract_onnx::prelude::Framework;

    // The tiny model with its first node's operator renamed to one no runtime knows.
    let mut proto = tract_onnx::onnx()
        .proto_model_for_path(common::tiny_model_path())
        .unwrap();
    let node = &mut proto.graph.as_mut().unwrap().node[0];
    node.op_type = "Frobnicate".into();
    let node_name = node.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frobnicated.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();

    let output = petal(&["serve", "--port", "0", "--host", "127.0.0.1"])
        .env("PETAL_MODEL", &path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let log = stderr_of(&output);
    assert!(log.contains("frobnicated.onnx"), "{log}");
    assert!(
        log.contains("Frobnicate") && log.contains(&node_name),
        "{log}"
    );
}

#[test]
fn a_model_that_cannot_load_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"this is no protobuf").unwrap();
    let output = petal(&[
        "serve",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--model",
        broken.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let log = stderr_of(&output);
    assert!(
        log.contains("cannot load model") && log.contains("broken.onnx"),
        "{log}"
    );
}
