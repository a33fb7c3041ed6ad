//! The commands that run without a server: `classify` (the same path as the routes, printed)
//! and `healthcheck` (asks a running server whether it is ready).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::classifier::{Classifier, Prediction, Timings};
use crate::config::{ClassifyArgs, HealthcheckArgs, ImageLimits};
use crate::model::Model;

/// One image's line of `classify --json`: the shape of a `/predict` answer, plus the file.
#[derive(Serialize)]
struct JsonLine<'a> {
    image: &'a Path,
    model: &'a str,
    predictions: &'a [Prediction],
    timings_ms: Timings,
}

/// Classifies each file and prints its top classes; fails if any file could not be classified.
pub fn classify(args: &ClassifyArgs) -> anyhow::Result<()> {
    let model = Model::load(&args.model.model)?;
    let classifier = Classifier::new(
        model,
        ImageLimits {
            max_pixels: args.model.max_pixels,
        },
    );
    let top_k = classifier.check_top_k(args.top_k)?;
    let name = classifier.info().name.clone();

    let mut failed = 0;
    for path in &args.images {
        let result = std::fs::read(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .and_then(|bytes| Ok(classifier.classify(&bytes, top_k)?));
        match result {
            Ok(result) if args.json => {
                let line = JsonLine {
                    image: path,
                    model: &name,
                    predictions: &result.predictions,
                    timings_ms: result.timings_ms,
                };
                println!("{}", serde_json::to_string(&line)?);
            }
            Ok(result) => {
                println!("{}", path.display());
                for p in &result.predictions {
                    println!("  {:.4}  {} ({})", p.probability, p.label, p.index);
                }
            }
            Err(error) => {
                failed += 1;
                log::error!("{}: {error:#}", path.display());
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} images could not be classified",
            args.images.len()
        );
    }
    Ok(())
}

/// Succeeds when `GET url` answers 200 within the timeout.
pub fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(args.timeout_secs)))
        .build()
        .into();
    let url = args.url();
    agent
        .get(&url)
        .call()
        .with_context(|| format!("{url} is not ready"))?;
    Ok(())
}
