//! Per-image inference time of the bundled model under three tract plans, side by side:
//! petal's (specialised to one image per run), one optimised for a symbolic batch size (the
//! reference: what "optimise once with a symbolic batch" gives), and one specialised to 4 images.
//! Also the whole path (decode + preprocess + inference) on a committed photo.
//!
//! `cargo bench --profile dev --bench inference`; BENCHMARKS.md records the figures.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use petal::config::ImageLimits;
use petal::{Classifier, Model};
use tract_onnx::prelude::*;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/model/efficientnet-lite0.onnx");
const PHOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/images/espresso-coffee.png"
);

/// A plan for `[batch, 3, 224, 224]`, the batch symbolic when `batch` is `None`.
fn plan(batch: Option<usize>) -> Arc<TypedRunnableModel> {
    let mut model = tract_onnx::onnx().model_for_path(MODEL).unwrap();
    let n = model.symbols.sym("N");
    let shape = [n.to_dim(), 3.to_dim(), 224.to_dim(), 224.to_dim()];
    model.set_input_fact(0, f32::fact(shape).into()).unwrap();
    let mut typed = model.into_typed().unwrap();
    if let Some(b) = batch {
        typed = typed
            .set_symbols(&HashMap::from([(n, b.to_dim())]))
            .unwrap();
    }
    typed.into_optimized().unwrap().into_runnable().unwrap()
}

fn input(batch: usize) -> TValue {
    let tensor: Tensor = tract_ndarray::Array4::<f32>::from_elem((batch, 3, 224, 224), 0.25).into();
    tensor.into()
}

fn plans(c: &mut Criterion) {
    let mut group = c.benchmark_group("per image");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));

    let petal = Model::load(Path::new(MODEL)).unwrap();
    let one = tract_ndarray::Array4::<f32>::from_elem((1, 3, 224, 224), 0.25);
    group.bench_function("petal plan, batch 1", |b| {
        b.iter(|| petal.run(one.view()).unwrap())
    });

    let symbolic = plan(None);
    group.bench_function("symbolic plan, batch 1", |b| {
        b.iter(|| symbolic.run(tvec!(input(1))).unwrap())
    });

    group.throughput(Throughput::Elements(4));
    group.bench_function("symbolic plan, batch 4", |b| {
        b.iter(|| symbolic.run(tvec!(input(4))).unwrap())
    });
    let four = plan(Some(4));
    group.bench_function("plan for 4, batch 4", |b| {
        b.iter(|| four.run(tvec!(input(4))).unwrap())
    });
    group.finish();
}

fn whole_path(c: &mut Criterion) {
    let model = Model::load(Path::new(MODEL)).unwrap();
    let classifier = Classifier::new(
        model,
        ImageLimits {
            max_pixels: 40_000_000,
        },
    );
    let photo = std::fs::read(PHOTO).unwrap();
    let mut group = c.benchmark_group("classify");
    group.sample_size(20);
    group.bench_function("espresso photo, top 5", |b| {
        b.iter(|| classifier.classify(&photo, 5).unwrap())
    });
    group.finish();
}

criterion_group!(benches, plans, whole_path);
criterion_main!(benches);
