//! Bytes to model input: decode within limits, orient, flatten to RGB, resize, crop, normalise.
//!
//! The geometry follows torchvision's `Resize(shorter)` + `CenterCrop(crop)` on a PIL image,
//! because that is how the reference tensors (and most PyTorch-trained classifiers) were made:
//! the long side is truncated, not rounded, and the crop offset is rounded half to even.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};
use ndarray::{Array3, ArrayViewMut3};

use crate::config::ImageLimits;
use crate::error::Error;
use crate::model::{ChannelOrder, Preprocessing};
use crate::resize;

/// The formats petal decodes; anything else `image` recognises is refused as unsupported.
pub const SUPPORTED_FORMATS: [ImageFormat; 6] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
];

fn decode_error(err: ImageError) -> Error {
    match err {
        ImageError::Unsupported(e) => Error::UnsupportedFormat(e.to_string()),
        other => Error::Undecodable(other.to_string()),
    }
}

/// Decodes an image (the first frame of an animation), applies its EXIF orientation and
/// returns it as 8-bit RGB. The pixel limit is checked from the header, before decoding.
pub fn decode(bytes: &[u8], limits: ImageLimits) -> Result<RgbImage, Error> {
    if bytes.is_empty() {
        return Err(Error::EmptyImage);
    }
    let format = image::guess_format(bytes).map_err(|_| {
        Error::Undecodable(
            "not a recognised image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)".into(),
        )
    })?;
    if !SUPPORTED_FORMATS.contains(&format) {
        return Err(Error::UnsupportedFormat(format!(
            "{} (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)",
            format.extensions_str().first().unwrap_or(&"?")
        )));
    }

    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::TooManyPixels {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(Error::Undecodable(format!("the image is {width}×{height}")));
    }

    // A broken EXIF block is no reason to refuse a picture: show it as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(flatten_to_rgb(image))
}

/// Brings any colour type to 8-bit RGB. Transparent pixels are composited onto white, the way
/// a viewer shows them; dropping alpha instead would expose whatever colour hides underneath.
pub fn flatten_to_rgb(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = RgbImage::new(width, height);
    for (out, px) in rgb.pixels_mut().zip(rgba.pixels()) {
        let alpha = u32::from(px[3]);
        for c in 0..3 {
            let blended = u32::from(px[c]) * alpha + 255 * (255 - alpha);
            out[c] = ((blended + 127) / 255) as u8;
        }
    }
    rgb
}

/// The size after resizing the shorter side to `shorter`, keeping the aspect ratio with the
/// long side truncated (as torchvision does).
pub fn resized_size(width: u32, height: u32, shorter: u32) -> (u32, u32) {
    let scale_long =
        |long: u32, short: u32| (u64::from(shorter) * u64::from(long) / u64::from(short)) as u32;
    if width <= height {
        (shorter, scale_long(height, width))
    } else {
        (scale_long(width, height), shorter)
    }
}

/// The offset of a centred crop: `round((len - crop) / 2)` with Python's round half to even,
/// as torchvision's `CenterCrop` computes it.
pub fn crop_offset(len: u32, crop: u32) -> u32 {
    let spare = len - crop;
    let half = spare / 2;
    if spare % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Resizes the shorter side with Pillow's antialiased bilinear filter, then crops the centre.
fn resize_and_crop(
    image: &RgbImage,
    spec: &Preprocessing,
    limits: ImageLimits,
) -> Result<RgbImage, Error> {
    let (width, height) = image.dimensions();
    let (new_width, new_height) = resized_size(width, height, spec.resize_shorter);
    let pixels = u64::from(new_width) * u64::from(new_height);
    if pixels > limits.max_pixels {
        return Err(Error::ResizedTooLarge {
            width,
            height,
            resized_width: new_width,
            resized_height: new_height,
            pixels,
            limit: limits.max_pixels,
        });
    }

    let resized = resize::bilinear(image, new_width, new_height);
    let left = crop_offset(new_width, spec.crop);
    let top = crop_offset(new_height, spec.crop);
    Ok(image::imageops::crop_imm(&resized, left, top, spec.crop, spec.crop).to_image())
}

/// Writes the normalised `[C, H, W]` tensor of a `crop`×`crop` image into `out`.
fn normalise_into(image: &RgbImage, spec: &Preprocessing, mut out: ArrayViewMut3<f32>) {
    let channels = match spec.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    for (x, y, px) in image.enumerate_pixels() {
        for (plane, &source) in channels.iter().enumerate() {
            let value = (f32::from(px[source]) - spec.mean[plane]) / spec.std[plane];
            out[[plane, y as usize, x as usize]] = value;
        }
    }
}

/// The model input for one decoded image: `[3, crop, crop]`, normalised as `spec` says.
pub fn to_tensor(
    image: &RgbImage,
    spec: &Preprocessing,
    limits: ImageLimits,
) -> Result<Array3<f32>, Error> {
    let cropped = resize_and_crop(image, spec, limits)?;
    let side = spec.crop as usize;
    let mut tensor = Array3::zeros((3, side, side));
    normalise_into(&cropped, spec, tensor.view_mut());
    Ok(tensor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interpolation, Layout};
    use image::{GrayImage, ImageEncoder, Luma, Rgb, Rgba, RgbaImage};

    const LIMITS: ImageLimits = ImageLimits {
        max_pixels: 10_000_000,
    };

    fn spec(resize_shorter: u32, crop: u32) -> Preprocessing {
        Preprocessing {
            resize_shorter,
            crop,
            mean: [127.0; 3],
            std: [128.0; 3],
            channel_order: ChannelOrder::Rgb,
            interpolation: Interpolation::Bilinear,
            layout: Layout::Nchw,
        }
    }

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn the_long_side_is_truncated_like_torchvision() {
        // 256 * 500 / 333 = 384.38…; 256 * 640 / 427 = 383.70… → 383, not 384.
        assert_eq!(resized_size(333, 500, 256), (256, 384));
        assert_eq!(resized_size(640, 427, 256), (383, 256));
        assert_eq!(resized_size(300, 300, 256), (256, 256));
    }

    #[test]
    fn crop_offsets_round_half_to_even() {
        assert_eq!(crop_offset(224, 224), 0);
        assert_eq!(crop_offset(225, 224), 0); // 0.5 → 0
        assert_eq!(crop_offset(227, 224), 2); // 1.5 → 2
        assert_eq!(crop_offset(229, 224), 2); // 2.5 → 2
        assert_eq!(crop_offset(383, 224), 80); // 79.5 → 80
        assert_eq!(crop_offset(384, 224), 80);
    }

    #[test]
    fn transparent_pixels_become_white_and_opaque_ones_keep_their_colour() {
        let mut rgba = RgbaImage::new(3, 1);
        rgba.put_pixel(0, 0, Rgba([10, 20, 30, 0]));
        rgba.put_pixel(1, 0, Rgba([10, 20, 30, 255]));
        rgba.put_pixel(2, 0, Rgba([0, 0, 0, 128]));
        let rgb = flatten_to_rgb(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 255, 255]));
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([10, 20, 30]));
        assert_eq!(rgb.get_pixel(2, 0), &Rgb([127, 127, 127]));
    }

    #[test]
    fn grey_and_sixteen_bit_images_become_rgb() {
        let grey = GrayImage::from_pixel(2, 2, Luma([200]));
        let rgb = decode(&png(&DynamicImage::ImageLuma8(grey)), LIMITS).unwrap();
        assert_eq!(rgb.get_pixel(1, 1), &Rgb([200, 200, 200]));

        let deep = image::ImageBuffer::<Rgb<u16>, _>::from_pixel(2, 2, Rgb([65535, 0, 32896]));
        let rgb = decode(&png(&DynamicImage::ImageRgb16(deep)), LIMITS).unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 0, 128]));
    }

    #[test]
    fn the_pixel_limit_is_checked_before_decoding() {
        let big = DynamicImage::ImageLuma8(GrayImage::new(200, 100));
        let err = decode(&png(&big), ImageLimits { max_pixels: 19_999 }).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooManyPixels {
                    width: 200,
                    height: 100,
                    pixels: 20_000,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_very_long_strip_is_refused_before_it_is_resized() {
        let strip = RgbImage::new(4000, 1);
        let err = to_tensor(&strip, &spec(256, 224), LIMITS).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ResizedTooLarge {
                    width: 4000,
                    height: 1,
                    resized_height: 256,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), "too_many_pixels");
    }

    #[test]
    fn garbage_and_unsupported_formats_are_told_apart() {
        assert!(matches!(decode(b"", LIMITS), Err(Error::EmptyImage)));
        assert!(matches!(
            decode(b"hello, world", LIMITS),
            Err(Error::Undecodable(_))
        ));
        // A valid ICO header: recognised by `image`, but not a format petal accepts.
        let ico = [
            0u8, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 22, 0, 0, 0,
        ];
        assert!(matches!(
            decode(&ico, LIMITS),
            Err(Error::UnsupportedFormat(_))
        ));
        // A truncated PNG: the right magic, then nothing.
        let png = png(&DynamicImage::ImageLuma8(GrayImage::new(8, 8)));
        assert!(matches!(
            decode(&png[..20], LIMITS),
            Err(Error::Undecodable(_))
        ));
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 2×1 JPEG, left half black and right half white, tagged "rotate 90° clockwise":
        // once oriented it must be 1×2 with black on top.
        let mut image = RgbImage::new(16, 8);
        for (x, _, px) in image.enumerate_pixels_mut() {
            *px = if x < 8 {
                Rgb([0, 0, 0])
            } else {
                Rgb([255, 255, 255])
            };
        }
        let mut jpeg = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
        // Minimal big-endian TIFF block holding one Orientation (0x0112) entry with value 6.
        let exif = [
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0,
            0,
        ];
        encoder.set_exif_metadata(exif.to_vec()).unwrap();
        encoder
            .write_image(image.as_raw(), 16, 8, image::ExtendedColorType::Rgb8)
            .unwrap();

        let oriented = decode(&jpeg, LIMITS).unwrap();
        assert_eq!(oriented.dimensions(), (8, 16));
        assert!(
            oriented.get_pixel(4, 2)[0] < 30,
            "top should be black: {:?}",
            oriented.get_pixel(4, 2)
        );
        assert!(
            oriented.get_pixel(4, 13)[0] > 225,
            "bottom should be white: {:?}",
            oriented.get_pixel(4, 13)
        );
    }

    #[test]
    fn normalisation_follows_the_spec_and_channel_order() {
        let image = RgbImage::from_pixel(4, 4, Rgb([255, 127, 0]));
        let tensor = to_tensor(&image, &spec(4, 2), LIMITS).unwrap();
        assert_eq!(tensor.shape(), [3, 2, 2]);
        assert_eq!(tensor[[0, 0, 0]], 1.0);
        assert_eq!(tensor[[1, 1, 1]], 0.0);
        assert_eq!(tensor[[2, 0, 1]], -127.0 / 128.0);

        let bgr = Preprocessing {
            channel_order: ChannelOrder::Bgr,
            ..spec(4, 2)
        };
        let tensor = to_tensor(&image, &bgr, LIMITS).unwrap();
        assert_eq!(tensor[[0, 0, 0]], -127.0 / 128.0);
        assert_eq!(tensor[[2, 0, 0]], 1.0);
    }

    #[test]
    fn the_centre_is_what_survives_the_crop() {
        // A 6×6 image whose centre 2×2 is white: cropping to 2 keeps only white.
        let mut image = RgbImage::new(6, 6);
        for y in 2..4 {
            for x in 2..4 {
                image.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let tensor = to_tensor(&image, &spec(6, 2), LIMITS).unwrap();
        assert!(tensor.iter().all(|v| *v == 1.0), "{tensor:?}");
    }
}
