//! The one path from image bytes to labelled predictions, shared by the HTTP routes and the CLI.

use std::sync::Arc;
use std::time::Instant;

use ndarray::{ArrayView1, Axis};
use serde::Serialize;

use crate::config::ImageLimits;
use crate::error::Error;
use crate::metrics::ModelMetrics;
use crate::model::{Model, ModelInfo};
use crate::preprocess;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub label: String,
    pub index: usize,
    pub probability: f32,
}

/// Milliseconds spent in each stage of one image's classification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub predictions: Vec<Prediction>,
    pub timings_ms: Timings,
}

/// A loaded model plus the limits every image is held to.
#[derive(Debug)]
pub struct Classifier {
    model: Model,
    limits: ImageLimits,
    metrics: Option<Arc<ModelMetrics>>,
}

/// Milliseconds since `start`, to the microsecond.
fn millis_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e6).round() / 1000.0
}

/// Softmax of one row of logits, computed in f64 so large logits cannot overflow.
pub fn softmax(logits: ArrayView1<f32>) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let exps: Vec<f64> = logits.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The `k` most probable classes, most probable first (ties keep the lower index first).
pub fn top_k(probabilities: &[f64], labels: &[String], k: usize) -> Vec<Prediction> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|index| Prediction {
            label: labels[index].clone(),
            index,
            probability: probabilities[index] as f32,
        })
        .collect()
}

impl Classifier {
    pub fn new(model: Model, limits: ImageLimits) -> Self {
        Classifier {
            model,
            limits,
            metrics: None,
        }
    }

    /// Records every classified image's stage times in `metrics`.
    pub fn with_metrics(self, metrics: Arc<ModelMetrics>) -> Self {
        Classifier {
            metrics: Some(metrics),
            ..self
        }
    }

    pub fn info(&self) -> &ModelInfo {
        self.model.info()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Checks a requested `top_k` against the number of classes.
    pub fn check_top_k(&self, k: usize) -> Result<usize, Error> {
        let classes = self.info().num_classes();
        if k == 0 || k > classes {
            return Err(Error::InvalidParameter(format!(
                "top_k must be between 1 and {classes}, got {k}"
            )));
        }
        Ok(k)
    }

    /// Classifies one image: decode, preprocess, run, softmax, top `k`.
    pub fn classify(&self, image: &[u8], top_k: usize) -> Result<Classification, Error> {
        let k = self.check_top_k(top_k)?;
        let info = self.info();

        let start = Instant::now();
        let decoded = preprocess::decode(image, self.limits)?;
        let decode = millis_since(start);

        let start = Instant::now();
        let tensor = preprocess::to_tensor(&decoded, &info.preprocessing, self.limits)?;
        let preprocess = millis_since(start);

        let start = Instant::now();
        let batch = tensor.insert_axis(Axis(0));
        let logits = self
            .model
            .run(batch.view())
            .map_err(|e| Error::Inference(format!("{e:#}")))?;
        let inference = millis_since(start);

        if let Some(metrics) = &self.metrics {
            metrics.observe(decode / 1000.0, preprocess / 1000.0, inference / 1000.0);
        }
        Ok(Classification {
            predictions: self::top_k(&softmax(logits.row(0)), &info.labels, k),
            timings_ms: Timings {
                decode,
                preprocess,
                inference,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(arr1(&[1000.0f32, 1000.0, 998.0]).view());
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((p[0] - p[1]).abs() < 1e-12);
        assert!((p[2] - (-2.0f64).exp() / (2.0 + (-2.0f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn top_k_orders_by_probability_and_keeps_labels() {
        let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let top = top_k(&[0.1, 0.4, 0.2, 0.3], &labels, 2);
        assert_eq!(
            top.iter()
                .map(|p| (p.label.as_str(), p.index))
                .collect::<Vec<_>>(),
            [("b", 1), ("d", 3)]
        );
        assert!((top[0].probability - 0.4).abs() < 1e-7);
    }
}
