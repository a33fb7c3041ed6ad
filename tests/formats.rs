//! The same photo in every supported container and colour type gets the same answer.

mod common;

use std::io::Cursor;

use image::{DynamicImage, ImageFormat};

fn espresso() -> (DynamicImage, Vec<u8>) {
    let reference = common::manifest()
        .main
        .images
        .iter()
        .find(|r| r.image.contains("espresso"))
        .unwrap();
    let bytes = reference.image_bytes();
    (image::load_from_memory(&bytes).unwrap(), bytes)
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn top(bytes: &[u8]) -> (String, f32) {
    let result = common::classifier().classify(bytes, 1).unwrap();
    (
        result.predictions[0].label.clone(),
        result.predictions[0].probability,
    )
}

#[test]
fn lossless_containers_give_exactly_the_png_answer() {
    let (image, png) = espresso();
    let (label, probability) = top(&png);
    assert_eq!(label, "espresso");
    for format in [ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::WebP] {
        assert_eq!(
            top(&encode(&image, format)),
            (label.clone(), probability),
            "{format:?}"
        );
    }
}

#[test]
fn lossy_and_palette_forms_keep_the_top_class() {
    let (image, _) = espresso();
    let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
    for (name, bytes) in [
        ("JPEG", encode(&rgb, ImageFormat::Jpeg)),
        ("GIF (256-colour palette)", encode(&image, ImageFormat::Gif)),
    ] {
        let (label, probability) = top(&bytes);
        assert_eq!(label, "espresso", "{name}");
        assert!(probability > 0.8, "{name}: {probability}");
    }
}

#[test]
fn sixteen_bit_and_alpha_forms_keep_the_top_class() {
    let (image, png) = espresso();
    let (_, probability) = top(&png);

    // 16-bit: every 8-bit value v becomes v·257, which maps back to v exactly.
    let deep = DynamicImage::ImageRgb16(image.to_rgb16());
    assert_eq!(
        top(&encode(&deep, ImageFormat::Png)),
        ("espresso".into(), probability)
    );

    // Fully opaque alpha changes nothing.
    let opaque = DynamicImage::ImageRgba8(image.to_rgba8());
    assert_eq!(
        top(&encode(&opaque, ImageFormat::Png)),
        ("espresso".into(), probability)
    );
}
