//! Command line and environment: flags parsed by clap, then validated once into [`Settings`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The model served when none is named: the EfficientNet-Lite0 file committed under `model/`.
pub const DEFAULT_MODEL: &str = "model/efficientnet-lite0.onnx";

#[derive(Debug, Parser)]
#[command(
    name = "petal",
    version,
    about = "Image classification over REST with any self-describing ONNX classifier"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve predictions over HTTP.
    Serve(ServeArgs),
    /// Classify image files without HTTP and print the top classes.
    Classify(ClassifyArgs),
    /// Exit 0 when a petal server answers that it is ready, 1 otherwise (for container health checks).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// ONNX classifier carrying petal metadata (labels and preprocessing).
    #[arg(long, env = "PETAL_MODEL", default_value = DEFAULT_MODEL)]
    pub model: PathBuf,

    /// Largest image accepted, in pixels (width × height), checked before decoding.
    #[arg(long, env = "PETAL_MAX_PIXELS", default_value_t = 40_000_000)]
    pub max_pixels: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Address to listen on.
    #[arg(long, env = "PETAL_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one; the chosen address is logged).
    #[arg(long, env = "PETAL_PORT", default_value_t = 9000)]
    pub port: u16,

    /// HTTP worker threads (they only move bytes); 0 means one per core.
    #[arg(long, env = "PETAL_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Images decoded and classified at the same time; 0 means one per core.
    #[arg(long, env = "PETAL_INFERENCE_THREADS", default_value_t = 0)]
    pub inference_threads: usize,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PETAL_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most images accepted by one call to /predict/batch.
    #[arg(long, env = "PETAL_MAX_BATCH", default_value_t = 32)]
    pub max_batch: usize,

    /// Number of classes returned when the request does not say (`?top_k=`).
    #[arg(long, env = "PETAL_TOP_K", default_value_t = 5)]
    pub top_k: usize,

    /// Seconds a client has to send its request headers before the connection is dropped.
    #[arg(long, env = "PETAL_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Seconds a client has to send a whole prediction request body (408 when it is slower).
    #[arg(long, env = "PETAL_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Number of classes printed per image.
    #[arg(long, short = 'k', env = "PETAL_TOP_K", default_value_t = 5)]
    pub top_k: usize,

    /// Print one JSON document per image instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Image files to classify.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Readiness URL to ask [default: http://127.0.0.1:<PETAL_PORT>/ready].
    #[arg(long, env = "PETAL_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// Port of the local server, used when no URL is given.
    #[arg(long, env = "PETAL_PORT", default_value_t = 9000)]
    pub port: u16,

    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

impl HealthcheckArgs {
    pub fn url(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}/ready", self.port))
    }
}

/// Limits on what a single image may cost, shared by every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_pixels: u64,
}

/// Everything `petal serve` needs, checked once at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model: PathBuf,
    pub addr: SocketAddr,
    pub workers: usize,
    pub inference_threads: usize,
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub default_top_k: usize,
    pub request_timeout: Duration,
    pub body_timeout: Duration,
    pub limits: ImageLimits,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting {name}: {reason}")]
pub struct SettingsError {
    pub name: &'static str,
    pub reason: String,
}

fn positive(name: &'static str, value: u64) -> Result<(), SettingsError> {
    if value == 0 {
        return Err(SettingsError {
            name,
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
}

fn or_cores(value: usize) -> usize {
    if value > 0 {
        return value;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl TryFrom<ServeArgs> for Settings {
    type Error = SettingsError;

    fn try_from(args: ServeArgs) -> Result<Self, SettingsError> {
        positive("PETAL_MAX_PIXELS", args.model.max_pixels)?;
        positive("PETAL_MAX_BODY_BYTES", args.max_body_bytes as u64)?;
        positive("PETAL_MAX_BATCH", args.max_batch as u64)?;
        positive("PETAL_TOP_K", args.top_k as u64)?;
        positive("PETAL_REQUEST_TIMEOUT_SECS", args.request_timeout_secs)?;
        positive("PETAL_BODY_TIMEOUT_SECS", args.body_timeout_secs)?;

        Ok(Settings {
            model: args.model.model,
            addr: SocketAddr::new(args.host, args.port),
            workers: or_cores(args.workers),
            inference_threads: or_cores(args.inference_threads),
            max_body_bytes: args.max_body_bytes,
            max_batch: args.max_batch,
            default_top_k: args.top_k,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            body_timeout: Duration::from_secs(args.body_timeout_secs),
            limits: ImageLimits {
                max_pixels: args.model.max_pixels,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["petal", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("arguments parse").command {
            Command::Serve(args) => args,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn defaults_listen_on_port_9000_with_the_bundled_model() {
        let settings = Settings::try_from(serve_args(&[])).unwrap();
        assert_eq!(settings.addr.port(), 9000);
        assert_eq!(settings.model, PathBuf::from(DEFAULT_MODEL));
        assert_eq!(settings.default_top_k, 5);
        assert!(settings.workers >= 1 && settings.inference_threads >= 1);
    }

    #[test]
    fn zero_limits_are_refused_with_the_variable_named() {
        let err = Settings::try_from(serve_args(&["--max-body-bytes", "0"])).unwrap_err();
        assert_eq!(err.name, "PETAL_MAX_BODY_BYTES");
        let err = Settings::try_from(serve_args(&["--top-k", "0"])).unwrap_err();
        assert_eq!(err.name, "PETAL_TOP_K");
    }

    #[test]
    fn healthcheck_asks_the_local_port_unless_given_a_url() {
        let parse = |argv: &[&str]| match Cli::try_parse_from(argv).unwrap().command {
            Command::Healthcheck(args) => args.url(),
            other => panic!("expected healthcheck, got {other:?}"),
        };
        assert_eq!(
            parse(&["petal", "healthcheck", "--port", "9100"]),
            "http://127.0.0.1:9100/ready"
        );
        assert_eq!(
            parse(&["petal", "healthcheck", "--url", "http://h:1/ready"]),
            "http://h:1/ready"
        );
    }

    #[test]
    fn a_bad_port_is_a_parse_error() {
        assert!(Cli::try_parse_from(["petal", "serve", "--port", "70000"]).is_err());
    }
}
