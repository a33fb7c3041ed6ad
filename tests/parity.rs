//! petal against the Python reference: tract against onnxruntime on the same input tensor, petal's
//! preprocessing against PIL's, and the whole path against the reference predictions.

mod common;

use std::collections::HashMap;

use common::{abs_diff, as_dyn, manifest, ModelReferences, LIMITS};
use ndarray::{Array4, Ix4};
use petal::{preprocess, Classifier};

/// How far petal's tensor may stray from PIL's, in normalised units (1/128 is one pixel level
/// for EfficientNet). Lossless photos must match exactly: the resize reproduces Pillow's. JPEG
/// decoders (libjpeg-turbo in PIL, zune-jpeg in `image`) round their IDCT and chroma upsampling
/// differently, so a few pixels differ by a level or two (measured: max 0.0175, mean ≤ 0.0003).
const JPEG_MEAN_TOLERANCE: f32 = 0.001;
const JPEG_MAX_TOLERANCE: f32 = 0.05;

fn is_lossless(image: &str) -> bool {
    !(image.ends_with(".jpg") || image.ends_with(".jpeg"))
}

fn inference_matches_onnxruntime(references: &ModelReferences, classifier: &Classifier) {
    for reference in &references.images {
        let input: Array4<f32> = reference.input().into_dimensionality::<Ix4>().unwrap();
        let logits = classifier.model().run(input.view()).unwrap();
        let (max, mean) = abs_diff(&as_dyn(logits), &reference.logits());
        println!(
            "{}: logits max |Δ| {max:.2e}, mean {mean:.2e}",
            reference.name()
        );
        assert!(
            max < 1e-3,
            "{}: tract logits differ from onnxruntime by {max}",
            reference.name()
        );
    }
}

fn preprocessing_matches_pil(references: &ModelReferences, classifier: &Classifier) {
    let spec = &classifier.info().preprocessing;
    for reference in &references.images {
        let image = preprocess::decode(&reference.image_bytes(), LIMITS).unwrap();
        let tensor = preprocess::to_tensor(&image, spec, LIMITS)
            .unwrap()
            .insert_axis(ndarray::Axis(0));
        let (max, mean) = abs_diff(&as_dyn(tensor), &reference.input());
        println!(
            "{}: tensor max |Δ| {max:.4}, mean {mean:.5}",
            reference.name()
        );
        if is_lossless(&reference.image) {
            assert_eq!(
                max,
                0.0,
                "{}: a lossless photo must match PIL exactly",
                reference.name()
            );
        } else {
            assert!(
                mean < JPEG_MEAN_TOLERANCE,
                "{}: mean |Δ| {mean}",
                reference.name()
            );
            assert!(
                max < JPEG_MAX_TOLERANCE,
                "{}: max |Δ| {max}",
                reference.name()
            );
        }
    }
}

fn predictions_match_reference(references: &ModelReferences, classifier: &Classifier) {
    let classes = classifier.info().num_classes();
    for reference in &references.images {
        let result = classifier
            .classify(&reference.image_bytes(), classes)
            .unwrap();
        let probability: HashMap<usize, f32> = result
            .predictions
            .iter()
            .map(|p| (p.index, p.probability))
            .collect();

        let expected_top = &reference.top5[0];
        assert_eq!(
            result.predictions[0].index,
            expected_top.index,
            "{}: top-1",
            reference.name()
        );
        assert_eq!(
            result.predictions[0].label,
            expected_top.label,
            "{}: top-1 label",
            reference.name()
        );
        for expected in &reference.top5 {
            let got = probability[&expected.index] as f64;
            println!(
                "{}: {} {got:.4} (reference {:.4})",
                reference.name(),
                expected.label,
                expected.probability
            );
            assert!(
                (got - expected.probability).abs() < 0.02,
                "{}: p({}) = {got}, reference {}",
                reference.name(),
                expected.label,
                expected.probability
            );
        }
    }
}

#[test]
fn tract_logits_match_onnxruntime_within_1e_3() {
    inference_matches_onnxruntime(&manifest().main, &common::classifier());
}

#[test]
fn a_batch_gives_each_image_its_own_logits() {
    let references = &manifest().main.images[..3];
    let inputs: Vec<_> = references.iter().map(|r| r.input()).collect();
    let views: Vec<_> = inputs
        .iter()
        .map(|i| i.view().into_dimensionality::<Ix4>().unwrap())
        .collect();
    let batch = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();

    let logits = common::classifier().model().run(batch.view()).unwrap();
    assert_eq!(logits.shape(), [3, 1000]);
    for (row, reference) in logits.outer_iter().zip(references) {
        let (max, _) = abs_diff(
            &as_dyn(row.insert_axis(ndarray::Axis(0)).to_owned()),
            &reference.logits(),
        );
        assert!(
            max < 1e-3,
            "{}: batched logits differ by {max}",
            reference.name()
        );
    }
}

#[test]
fn preprocessing_matches_pil_and_torchvision() {
    preprocessing_matches_pil(&manifest().main, &common::classifier());
}

#[test]
fn every_photo_gets_the_reference_top_1_and_top_5_probabilities() {
    predictions_match_reference(&manifest().main, &common::classifier());
}

#[test]
fn the_bundled_model_is_the_one_the_references_were_made_with() {
    assert_eq!(
        common::classifier().info().sha256,
        manifest().main.model_sha256
    );
}

// The tiny flowers model has other labels, another input size and other normalisation, all read
// from its metadata: the same code must reproduce its reference too.
#[test]
fn a_second_model_is_served_from_its_own_metadata() {
    let tiny = common::tiny_classifier();
    let info = tiny.info();
    assert_eq!(info.num_classes(), 5);
    assert_eq!(
        info.labels,
        ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    );
    assert_eq!(info.input_chw(), [3, 96, 96]);
    assert_eq!(info.sha256, manifest().tiny.model_sha256);

    inference_matches_onnxruntime(&manifest().tiny, &tiny);
    preprocessing_matches_pil(&manifest().tiny, &tiny);
    predictions_match_reference(&manifest().tiny, &tiny);
}
