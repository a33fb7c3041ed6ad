//! petal: image classification over REST, on any ONNX classifier that describes itself.
//!
//! The path every caller shares: [`preprocess`] (bytes → tensor) and [`model`] (tensor →
//! logits), joined by [`classifier`] (bytes → labelled predictions). [`http`] serves it,
//! [`metrics`] counts it, [`config`] says how, and [`error`] names what went wrong.

pub mod classifier;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod preprocess;
pub mod resize;

pub use classifier::{Classification, Classifier, Prediction};
pub use error::Error;
pub use model::Model;
