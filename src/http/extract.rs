//! Getting image bytes out of a request: multipart fields, a raw `image/*` body, or JSON base64.
//! Every path counts bytes against the same body limit while reading, never after.

use actix_multipart::Multipart;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{self, Bytes, BytesMut};
use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::error::Error;

/// Multipart field names that carry an image.
pub const IMAGE_FIELDS: [&str; 4] = ["image", "file", "images", "files"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Multipart,
    Json,
    Raw,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Raw);
    };
    let text = value.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = text.split(';').next().unwrap_or("").trim();
    match essence {
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "application/json" => Ok(BodyKind::Json),
        "application/octet-stream" => Ok(BodyKind::Raw),
        image if image.starts_with("image/") => Ok(BodyKind::Raw),
        _ => Err(Error::UnsupportedContentType(text)),
    }
}

/// Adds `chunk` to `buffer`, failing as soon as `used` would pass `limit`.
fn push_counted(
    buffer: &mut BytesMut,
    chunk: &[u8],
    used: &mut usize,
    limit: usize,
) -> Result<(), Error> {
    *used += chunk.len();
    if *used > limit {
        return Err(Error::BodyTooLarge { limit });
    }
    buffer.extend_from_slice(chunk);
    Ok(())
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, Error> {
    let mut body = BytesMut::new();
    let mut used = 0;
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Error::BadRequest(format!("reading the request body: {e}")))?;
        push_counted(&mut body, &chunk, &mut used, limit)?;
    }
    Ok(body.freeze())
}

async fn read_multipart(
    headers: &HeaderMap,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<Bytes>, Error> {
    let malformed = |e: actix_multipart::MultipartError| {
        Error::BadRequest(format!("malformed multipart body: {e}"))
    };
    let mut multipart = Multipart::new(headers, payload);
    let mut images = Vec::new();
    let mut used = 0;

    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(malformed)?;
        let wanted = field
            .name()
            .is_some_and(|name| IMAGE_FIELDS.contains(&name));
        let mut data = BytesMut::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(malformed)?;
            // Fields we do not use still count: the limit is on what the client sends.
            if wanted {
                push_counted(&mut data, &chunk, &mut used, limit)?;
            } else {
                used += chunk.len();
                if used > limit {
                    return Err(Error::BodyTooLarge { limit });
                }
            }
        }
        if wanted {
            images.push(data.freeze());
        }
    }
    if images.is_empty() {
        return Err(Error::BadRequest(format!(
            "the multipart body has no image field (expected one named {})",
            IMAGE_FIELDS.join(", ")
        )));
    }
    Ok(images)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonImages {
    image: Option<String>,
    #[serde(default)]
    images: Vec<String>,
}

/// Decodes one base64 image; `field` names it in errors (`image`, or `images[2]`).
fn decode_base64(text: &str, field: &str) -> Result<Bytes, Error> {
    // Accept data URLs as browsers produce them: `data:image/png;base64,....`.
    let data = match text.split_once("base64,") {
        Some((prefix, rest)) if prefix.starts_with("data:") => rest,
        _ => text,
    };
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map(Bytes::from)
        .map_err(|e| Error::BadRequest(format!("`{field}` is not valid base64: {e}")))
}

fn read_json(body: &[u8]) -> Result<Vec<Bytes>, Error> {
    let parsed: JsonImages = serde_json::from_slice(body).map_err(|e| {
        Error::BadRequest(format!(
            "the JSON body must be {{\"image\": \"<base64>\"}} or {{\"images\": [...]}}: {e}"
        ))
    })?;
    let single = parsed.image.map(|text| ("image".to_string(), text));
    let several = parsed.images.into_iter().enumerate();
    let several = several.map(|(i, text)| (format!("images[{i}]"), text));
    let texts: Vec<(String, String)> = single.into_iter().chain(several).collect();
    if texts.is_empty() {
        return Err(Error::EmptyImage);
    }
    texts
        .iter()
        .map(|(field, text)| decode_base64(text, field))
        .collect()
}

/// Every image the request carries, in order, with the body limit enforced while reading.
pub async fn images(
    headers: &HeaderMap,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<Bytes>, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(Error::BodyTooLarge { limit });
    }

    match body_kind(headers)? {
        BodyKind::Multipart => read_multipart(headers, payload, limit).await,
        BodyKind::Json => read_json(&read_body(payload, limit).await?),
        BodyKind::Raw => {
            let body = read_body(payload, limit).await?;
            if body.is_empty() {
                return Err(Error::EmptyImage);
            }
            Ok(vec![body])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn content_types_choose_the_reader() {
        assert_eq!(
            body_kind(&with_type("multipart/form-data; boundary=x")).unwrap(),
            BodyKind::Multipart
        );
        assert_eq!(
            body_kind(&with_type("application/json; charset=utf-8")).unwrap(),
            BodyKind::Json
        );
        assert_eq!(body_kind(&with_type("image/jpeg")).unwrap(), BodyKind::Raw);
        assert_eq!(body_kind(&HeaderMap::new()).unwrap(), BodyKind::Raw);
        assert!(
            matches!(body_kind(&with_type("text/plain")), Err(Error::UnsupportedContentType(t)) if t == "text/plain")
        );
    }

    #[test]
    fn json_takes_one_image_several_or_a_data_url() {
        assert_eq!(
            read_json(br#"{"image": "aGk="}"#).unwrap(),
            [Bytes::from_static(b"hi")]
        );
        assert_eq!(
            read_json(br#"{"image": "data:image/png;base64,aGk="}"#).unwrap(),
            [Bytes::from_static(b"hi")]
        );
        assert_eq!(
            read_json(br#"{"images": ["aGk=", "eW8="]}"#).unwrap().len(),
            2
        );
        assert!(
            matches!(read_json(br#"{"image": "not base64!"}"#), Err(Error::BadRequest(m)) if m.starts_with("`image` is not valid base64"))
        );
        assert!(
            matches!(read_json(br#"{"images": ["aGk=", "?"]}"#), Err(Error::BadRequest(m)) if m.starts_with("`images[1]` is not valid base64"))
        );
        assert!(matches!(
            read_json(br#"{"picture": "aGk="}"#),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(read_json(br#"{}"#), Err(Error::EmptyImage)));
    }
}
