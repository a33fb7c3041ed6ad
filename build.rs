//! Records the target triple the binary is built for, so `petal_model_info` can report it.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=PETAL_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
