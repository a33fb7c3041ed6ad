//! Loading an ONNX classifier with tract, reading the metadata petal needs from it, running a batch.
//!
//! The ONNX file describes itself in its `metadata_props` (written by `model/export.py`):
//! `petal.name`, `petal.labels` (JSON array, class-index order) and `petal.preprocess`
//! (JSON object, see [`Preprocessing`]). The model is checked with a symbolic batch dimension,
//! optimised once, and the resulting plan is shared by every caller.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use ndarray::{Array2, Array4, ArrayView4, Axis, Ix2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

pub const META_NAME: &str = "petal.name";
pub const META_LABELS: &str = "petal.labels";
pub const META_PREPROCESS: &str = "petal.preprocess";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelOrder {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Bilinear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    #[serde(rename = "NCHW")]
    Nchw,
}

/// How an image becomes the model's input, as the model's metadata states it.
///
/// `mean` and `std` are in 0..255 pixel units: each value fed to the model is
/// `(pixel - mean[c]) / std[c]`, with channels in `channel_order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    pub resize_shorter: u32,
    pub crop: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub channel_order: ChannelOrder,
    pub interpolation: Interpolation,
    pub layout: Layout,
}

impl Preprocessing {
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.crop > 0, "crop must be positive");
        ensure!(
            self.resize_shorter >= self.crop,
            "resize_shorter ({}) must be at least crop ({})",
            self.resize_shorter,
            self.crop
        );
        ensure!(
            self.std.iter().all(|s| *s > 0.0),
            "every std must be positive"
        );
        Ok(())
    }
}

/// What the service reports about the model it runs.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub sha256: String,
    pub labels: Vec<String>,
    pub preprocessing: Preprocessing,
}

impl ModelInfo {
    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }

    /// The input each image becomes: channels, height, width.
    pub fn input_chw(&self) -> [usize; 3] {
        let side = self.preprocessing.crop as usize;
        [3, side, side]
    }
}

type Plan = Arc<TypedRunnableModel>;

/// An optimised, runnable classifier. Cheap to share: `run` takes `&self`.
pub struct Model {
    plan: Plan,
    info: ModelInfo,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("info", &self.info.name)
            .finish()
    }
}

fn metadata<'a>(proto: &'a ModelProto, key: &str) -> anyhow::Result<&'a str> {
    proto
        .metadata_props
        .iter()
        .find(|entry| entry.key == key)
        .map(|entry| entry.value.as_str())
        .with_context(|| {
            format!("the model has no `{key}` metadata property (export it with model/export.py)")
        })
}

fn read_info(proto: &ModelProto, sha256: String) -> anyhow::Result<ModelInfo> {
    let name = metadata(proto, META_NAME)?.to_string();
    let labels: Vec<String> = serde_json::from_str(metadata(proto, META_LABELS)?)
        .with_context(|| format!("`{META_LABELS}` is not a JSON array of strings"))?;
    ensure!(!labels.is_empty(), "`{META_LABELS}` is empty");
    let preprocessing: Preprocessing = serde_json::from_str(metadata(proto, META_PREPROCESS)?)
        .with_context(|| format!("`{META_PREPROCESS}` is not a valid preprocessing object"))?;
    preprocessing
        .validate()
        .with_context(|| format!("`{META_PREPROCESS}` is inconsistent"))?;
    Ok(ModelInfo {
        name,
        sha256,
        labels,
        preprocessing,
    })
}

fn optimise(proto: &ModelProto, info: &ModelInfo) -> anyhow::Result<Plan> {
    let mut model = tract_onnx::onnx()
        .model_for_proto_model(proto)
        .context("parsing the ONNX graph")?;
    ensure!(
        model.inputs.len() == 1,
        "expected one input, the model has {}",
        model.inputs.len()
    );

    // Typing the graph with a symbolic batch size proves it works for any batch (an export that
    // hard-codes batch 1 somewhere fails here) and checks the output against the labels.
    let batch = model.symbols.sym("N");
    let [c, h, w] = info.input_chw();
    let shape = [batch.to_dim(), c.to_dim(), h.to_dim(), w.to_dim()];
    model
        .set_input_fact(0, f32::fact(shape).into())
        .context("setting the input shape")?;
    let typed = model.into_typed().context("analysing the graph")?;
    let output = typed.output_fact(0)?.shape.to_tvec();
    let classes = output.last().and_then(|d| d.to_usize().ok());
    ensure!(
        output.len() == 2 && classes == Some(info.num_classes()),
        "the output shape {output:?} does not match the {} labels in `{META_LABELS}`",
        info.num_classes()
    );

    // NOTE: the plan is specialised to one image per run. With tract 0.23 a plan optimised for a
    // symbolic batch ran EfficientNet-Lite0 about 5-6x slower per image, and a plan specialised
    // to 4 images about 1.8x slower per image, than this one (BENCHMARKS.md); batches are run
    // image by image, in parallel across requests and across the images of a batch request.
    let single = typed.set_symbols(&HashMap::from([(batch, 1.to_dim())]))?;
    let optimised = single.into_optimized().context("optimising the graph")?;
    optimised.into_runnable().context("planning the graph")
}

impl Model {
    /// Loads, checks and optimises the ONNX file at `path`. Errors name the file and, where tract
    /// reports one, the failing node and operator.
    pub fn load(path: &Path) -> anyhow::Result<Model> {
        let load = || -> anyhow::Result<Model> {
            let bytes = std::fs::read(path).context("reading the file")?;
            let sha256 = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let proto = tract_onnx::onnx()
                .proto_model_for_read(&mut bytes.as_slice())
                .context("decoding the ONNX protobuf")?;
            let info = read_info(&proto, sha256)?;
            let plan = optimise(&proto, &info)?;
            Ok(Model { plan, info })
        };
        load().with_context(|| format!("cannot load model {}", path.display()))
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs a batch `[N, C, H, W]`, one image at a time, and returns the logits `[N, classes]`.
    pub fn run(&self, batch: ArrayView4<f32>) -> anyhow::Result<Array2<f32>> {
        let [c, h, w] = self.info.input_chw();
        let n = batch.shape()[0];
        if batch.shape() != [n, c, h, w] || n == 0 {
            bail!(
                "input shape {:?} is not [N, {c}, {h}, {w}] with N ≥ 1",
                batch.shape()
            );
        }

        let mut logits = Array2::zeros((n, self.info.num_classes()));
        for (image, mut row) in batch.outer_iter().zip(logits.outer_iter_mut()) {
            let input = Tensor::from(image.insert_axis(Axis(0)).to_owned());
            let outputs = self.plan.run(tvec!(input.into()))?;
            let output = outputs[0].to_plain_array_view::<f32>()?;
            row.assign(&output.into_dimensionality::<Ix2>()?.row(0));
        }
        Ok(logits)
    }

    /// Runs one all-zero image through the plan so that the first real request pays no
    /// first-run costs.
    pub fn warm_up(&self) -> anyhow::Result<()> {
        let [c, h, w] = self.info.input_chw();
        self.run(Array4::zeros((1, c, h, w)).view()).map(|_| ())
    }
}
