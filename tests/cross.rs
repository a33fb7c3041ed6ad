//! The static binaries of `make cross`: each is static and for the right machine, and the
//! aarch64 and armv7 ones, run under qemu-user, classify every committed photo like the x86_64
//! one. Ignored by `cargo test` because it needs those builds; `make cross-test` runs it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

struct Target {
    triple: &'static str,
    machine: &'static str,
    runner: Option<&'static str>,
}

const TARGETS: [Target; 3] = [
    Target {
        triple: "x86_64-unknown-linux-musl",
        machine: "X86-64",
        runner: None,
    },
    Target {
        triple: "aarch64-unknown-linux-musl",
        machine: "AArch64",
        runner: Some("qemu-aarch64-static"),
    },
    Target {
        triple: "armv7-unknown-linux-musleabihf",
        machine: "ARM",
        runner: Some("qemu-arm-static"),
    },
];

fn binary(triple: &str) -> PathBuf {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = target_dir.join(triple).join("release/petal");
    assert!(
        path.exists(),
        "{} is missing: run `make cross` first",
        path.display()
    );
    path
}

fn readelf(flag: &str, path: &PathBuf) -> String {
    let output = Command::new("readelf")
        .arg(flag)
        .arg(path)
        .output()
        .expect("readelf runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `petal classify --json` on every committed photo: one JSON value per photo.
fn classify(target: &Target) -> Vec<Value> {
    let binary = binary(target.triple);
    let mut command = match target.runner {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(&binary);
            c
        }
        None => Command::new(&binary),
    };
    command
        .current_dir(common::root())
        .args(["classify", "--json", "-k", "5"]);
    command.args(
        common::manifest()
            .main
            .images
            .iter()
            .map(|r| r.image_path()),
    );
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", target.triple));
    assert!(
        output.status.success(),
        "{}: {}",
        target.triple,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
#[ignore = "needs `make cross`; run by `make cross-test`"]
fn every_binary_is_static_and_for_its_machine() {
    for target in &TARGETS {
        let path = binary(target.triple);
        let header = readelf("-h", &path);
        let machine = header
            .lines()
            .find(|l| l.trim_start().starts_with("Machine:"))
            .unwrap_or("");
        assert!(
            machine.contains(target.machine),
            "{}: {machine}",
            target.triple
        );
        assert!(
            !readelf("-l", &path).contains("INTERP"),
            "{} asks for a dynamic loader",
            target.triple
        );
        assert!(
            !readelf("-d", &path).contains("(NEEDED)"),
            "{} needs shared libraries",
            target.triple
        );
        println!("{}: static, {}", target.triple, machine.trim());
    }
}

#[test]
#[ignore = "needs `make cross` and qemu-user-static; run by `make cross-test`"]
fn arm_binaries_under_qemu_classify_like_x86_64() {
    let native = classify(&TARGETS[0]);
    let references = &common::manifest().main.images;
    assert_eq!(native.len(), references.len());
    for (result, reference) in native.iter().zip(references) {
        assert_eq!(
            result["predictions"][0]["index"], reference.top5[0].index,
            "{}",
            reference.image
        );
    }

    for target in &TARGETS[1..] {
        let emulated = classify(target);
        let mut largest = 0.0f64;
        for (ours, theirs) in native.iter().zip(&emulated) {
            let (ours, theirs) = (
                ours["predictions"].as_array().unwrap(),
                theirs["predictions"].as_array().unwrap(),
            );
            assert_eq!(ours.len(), theirs.len());
            for (a, b) in ours.iter().zip(theirs) {
                assert_eq!(
                    a["index"], b["index"],
                    "{}: top-5 order differs",
                    target.triple
                );
                let diff =
                    (a["probability"].as_f64().unwrap() - b["probability"].as_f64().unwrap()).abs();
                largest = largest.max(diff);
            }
        }
        println!(
            "{}: same top-5 as x86_64 on {} photos, largest probability difference {largest:.2e}",
            target.triple,
            native.len()
        );
        assert!(
            largest < 1e-4,
            "{}: probabilities differ by {largest}",
            target.triple
        );
    }
}
