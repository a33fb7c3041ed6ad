//! Error bodies and the one mapping from error kind to HTTP status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::Error;

/// The JSON body of every error answer: what is wrong, and a stable machine word.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: String,
    pub kind: &'a str,
}

pub fn error_response(status: StatusCode, kind: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: message,
        kind,
    })
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::EmptyImage | Error::Undecodable(_) | Error::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::UnsupportedFormat(_) | Error::UnsupportedContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::BodyTooLarge { .. }
            | Error::TooManyPixels { .. }
            | Error::ResizedTooLarge { .. }
            | Error::TooManyImages { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Error::InvalidParameter(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Error::Inference(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::InBatch { source, .. } => source.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.is_client_error() {
            log::warn!("rejected request: {self}");
        } else {
            log::error!("request failed: {self}");
        }
        error_response(self.status_code(), self.kind(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(error: Error) -> u16 {
        error.status_code().as_u16()
    }

    // One line per variant, so that the README's table of codes and the code cannot drift.
    #[test]
    fn every_error_kind_has_its_documented_status() {
        assert_eq!(status(Error::EmptyImage), 400);
        assert_eq!(status(Error::Undecodable("x".into())), 400);
        assert_eq!(status(Error::BadRequest("x".into())), 400);
        assert_eq!(status(Error::UnsupportedFormat("x".into())), 415);
        assert_eq!(
            status(Error::UnsupportedContentType("text/plain".into())),
            415
        );
        assert_eq!(status(Error::BodyTooLarge { limit: 1 }), 413);
        assert_eq!(
            status(Error::TooManyPixels {
                width: 2,
                height: 2,
                pixels: 4,
                limit: 1
            }),
            413
        );
        let resized = Error::ResizedTooLarge {
            width: 2000,
            height: 3,
            resized_width: 170_666,
            resized_height: 256,
            pixels: 43_690_496,
            limit: 40_000_000,
        };
        assert_eq!(resized.kind(), "too_many_pixels");
        assert_eq!(status(resized), 413);
        assert_eq!(status(Error::TooManyImages { count: 3, limit: 2 }), 413);
        assert_eq!(status(Error::BodyTimeout { seconds: 1 }), 408);
        assert_eq!(status(Error::InvalidParameter("x".into())), 422);
        assert_eq!(status(Error::NotReady), 503);
        assert_eq!(status(Error::Inference("x".into())), 500);
        assert_eq!(
            status(Error::in_batch(1, Error::UnsupportedFormat("x".into()))),
            415
        );
    }

    #[test]
    fn a_batch_error_names_the_image_and_keeps_the_kind() {
        let error = Error::in_batch(2, Error::EmptyImage);
        assert_eq!(error.kind(), "empty_image");
        assert_eq!(
            error.to_string(),
            "image 2: the request carried no image data"
        );
    }
}
