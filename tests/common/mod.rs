//! Fixtures shared by the integration tests: the committed models, photos and the reference
//! tensors and logits that `model/export.py fixtures` computed with PIL and onnxruntime.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::ReadNpyExt;
use petal::config::ImageLimits;
use petal::{Classifier, Model};
use serde::Deserialize;

pub const LIMITS: ImageLimits = ImageLimits {
    max_pixels: 40_000_000,
};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

#[derive(Debug, Deserialize)]
pub struct Expected {
    pub index: usize,
    pub label: String,
    pub probability: f64,
}

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub image: String,
    pub input: String,
    pub logits: String,
    pub top5: Vec<Expected>,
}

impl Reference {
    pub fn image_path(&self) -> PathBuf {
        fixtures().join(&self.image)
    }

    pub fn image_bytes(&self) -> Vec<u8> {
        std::fs::read(self.image_path()).expect("committed test photo")
    }

    pub fn input(&self) -> ArrayD<f32> {
        read_npy(&self.input)
    }

    pub fn logits(&self) -> ArrayD<f32> {
        read_npy(&self.logits)
    }

    pub fn name(&self) -> &str {
        Path::new(&self.image)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&self.image)
    }
}

#[derive(Debug, Deserialize)]
pub struct ModelReferences {
    pub model: String,
    pub model_sha256: String,
    pub images: Vec<Reference>,
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub main: ModelReferences,
    pub tiny: ModelReferences,
}

pub fn manifest() -> &'static Manifest {
    static MANIFEST: OnceLock<Manifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("reference/manifest.json"))
            .expect("manifest.json");
        serde_json::from_str(&text).expect("manifest.json parses")
    })
}

pub fn read_npy(relative: &str) -> ArrayD<f32> {
    let file = std::fs::File::open(fixtures().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"));
    ArrayD::<f32>::read_npy(file).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

pub fn main_model_path() -> PathBuf {
    root().join(&manifest().main.model)
}

pub fn tiny_model_path() -> PathBuf {
    root().join(&manifest().tiny.model)
}

/// The bundled EfficientNet-Lite0, loaded and optimised once per test binary.
pub fn classifier() -> Arc<Classifier> {
    static CLASSIFIER: OnceLock<Arc<Classifier>> = OnceLock::new();
    CLASSIFIER
        .get_or_init(|| {
            Arc::new(Classifier::new(
                Model::load(&main_model_path()).expect("bundled model loads"),
                LIMITS,
            ))
        })
        .clone()
}

pub fn tiny_classifier() -> Arc<Classifier> {
    static CLASSIFIER: OnceLock<Arc<Classifier>> = OnceLock::new();
    CLASSIFIER
        .get_or_init(|| {
            Arc::new(Classifier::new(
                Model::load(&tiny_model_path()).expect("tiny model loads"),
                LIMITS,
            ))
        })
        .clone()
}

/// Largest and mean absolute difference between two arrays of the same shape.
pub fn abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> (f32, f32) {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let diffs: Vec<f32> = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).collect();
    let max = diffs.iter().copied().fold(0.0, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    (max, mean)
}

pub fn as_dyn<D: ndarray::Dimension>(a: ndarray::Array<f32, D>) -> ArrayD<f32> {
    a.into_dimensionality::<IxDyn>()
        .expect("any shape is dynamic")
}
