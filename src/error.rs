//! The errors a caller can meet while getting an image classified, each with a stable machine word.
//!
//! Nothing here knows about HTTP: `http::errors` maps each kind to a status code in one place.

/// Why an image, or a request for one, could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request carried no image data")]
    EmptyImage,

    #[error("the image could not be decoded: {0}")]
    Undecodable(String),

    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),

    #[error("unsupported content type {0:?}: send multipart/form-data with an `image` field, a raw image/* body, or JSON {{\"image\": \"<base64>\"}}")]
    UnsupportedContentType(String),

    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },

    #[error("the image is {width}×{height} = {pixels} pixels, over the limit of {limit}")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },

    #[error(
        "the {width}×{height} image would be {resized_width}×{resized_height} = {pixels} pixels once \
         resized for the model, over the limit of {limit}"
    )]
    ResizedTooLarge {
        width: u32,
        height: u32,
        resized_width: u32,
        resized_height: u32,
        pixels: u64,
        limit: u64,
    },

    #[error("the request body did not arrive within the limit of {seconds} s")]
    BodyTimeout { seconds: u64 },

    #[error("{count} images in one request, over the limit of {limit}")]
    TooManyImages { count: usize, limit: usize },

    #[error("{0}")]
    BadRequest(String),

    #[error("invalid parameter: {0}")]
    InvalidParameter(String),

    #[error("the model is still loading")]
    NotReady,

    #[error("inference failed: {0}")]
    Inference(String),

    #[error("image {index}: {source}")]
    InBatch { index: usize, source: Box<Error> },
}

/// The kinds of [`Error::is_client_error`] errors: `petal_rejected_inputs_total` starts each
/// at zero, so that the first rejection of a kind shows in a rate.
pub const CLIENT_ERROR_KINDS: [&str; 10] = [
    "empty_image",
    "undecodable_image",
    "unsupported_format",
    "unsupported_content_type",
    "body_too_large",
    "too_many_pixels",
    "too_many_images",
    "body_timeout",
    "bad_request",
    "invalid_parameter",
];

impl Error {
    /// Marks an error as belonging to image `index` (counted from 0) of a batch.
    pub fn in_batch(index: usize, source: Error) -> Error {
        Error::InBatch {
            index,
            source: Box::new(source),
        }
    }

    /// A short, stable word for machines (the `kind` field of error bodies and metric labels).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::EmptyImage => "empty_image",
            Error::Undecodable(_) => "undecodable_image",
            Error::UnsupportedFormat(_) => "unsupported_format",
            Error::UnsupportedContentType(_) => "unsupported_content_type",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::TooManyPixels { .. } | Error::ResizedTooLarge { .. } => "too_many_pixels",
            Error::TooManyImages { .. } => "too_many_images",
            Error::BodyTimeout { .. } => "body_timeout",
            Error::BadRequest(_) => "bad_request",
            Error::InvalidParameter(_) => "invalid_parameter",
            Error::NotReady => "not_ready",
            Error::Inference(_) => "inference_failed",
            Error::InBatch { source, .. } => source.kind(),
        }
    }

    /// Whether the caller sent something wrong, as opposed to the service failing.
    pub fn is_client_error(&self) -> bool {
        match self {
            Error::NotReady | Error::Inference(_) => false,
            Error::InBatch { source, .. } => source.is_client_error(),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_error_kinds_are_those_of_the_client_errors() {
        let one_of_each = [
            Error::EmptyImage,
            Error::Undecodable("x".into()),
            Error::UnsupportedFormat("x".into()),
            Error::UnsupportedContentType("x".into()),
            Error::BodyTooLarge { limit: 1 },
            Error::TooManyPixels {
                width: 2,
                height: 1,
                pixels: 2,
                limit: 1,
            },
            Error::ResizedTooLarge {
                width: 2,
                height: 1,
                resized_width: 4,
                resized_height: 2,
                pixels: 8,
                limit: 1,
            },
            Error::TooManyImages { count: 2, limit: 1 },
            Error::BodyTimeout { seconds: 1 },
            Error::BadRequest("x".into()),
            Error::InvalidParameter("x".into()),
            Error::NotReady,
            Error::Inference("x".into()),
        ];
        let mut client_kinds: Vec<&str> = one_of_each
            .iter()
            .filter(|e| e.is_client_error())
            .map(Error::kind)
            .collect();
        client_kinds.dedup();
        assert_eq!(client_kinds, CLIENT_ERROR_KINDS);
    }
}
