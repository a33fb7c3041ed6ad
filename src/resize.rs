//! Antialiased bilinear resizing of 8-bit RGB images that reproduces Pillow's `Image.resize(...,
//! BILINEAR)` to the pixel.
//!
//! Classifiers trained with torchvision see images resized by Pillow. A resizer that differs by
//! one level here and there (as general-purpose ones do: other fixed-point precision, other pass
//! order) moves near-tied probabilities enough to swap the top class, so petal follows Pillow's
//! arithmetic: a triangle filter widened by the downscale factor, weights normalised in f64 then
//! turned into 22-bit fixed point, a horizontal pass then a vertical one, each rounded to 8 bits.

use image::RgbImage;

/// Fixed-point precision of the weights, as in Pillow (32 bits less 8 for the pixel, 2 spare).
const PRECISION_BITS: u32 = 32 - 8 - 2;
const CHANNELS: usize = 3;

/// For each output pixel along one axis: the first input pixel used and the fixed-point weights
/// of it and the following ones.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    // Downscaling widens the filter so that every input pixel contributes (antialiasing).
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);

    for out in 0..out_size {
        let centre = (out as f64 + 0.5) * scale;
        // Pillow truncates towards zero (a C cast) after adding 0.5, then clamps.
        let start = ((centre - support + 0.5) as i64).max(0) as usize;
        let end = ((centre + support + 0.5) as i64).min(in_size as i64) as usize;

        let raw: Vec<f64> = (start..end)
            .map(|x| triangle((x as f64 - centre + 0.5) / filter_scale))
            .collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|w| {
                let w = if total != 0.0 { w / total } else { *w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                (if scaled < 0.0 {
                    scaled - 0.5
                } else {
                    scaled + 0.5
                }) as i32
            })
            .collect();
        first.push(start);
        weights.push(fixed);
    }
    Taps { first, weights }
}

fn to_u8(accumulated: i64) -> u8 {
    (accumulated >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Applies `taps` along a line of pixels: `pixel(i)` is the i-th input pixel along it.
fn filter_line(taps: &Taps, out: usize, pixel: impl Fn(usize) -> [u8; CHANNELS]) -> [u8; CHANNELS] {
    let mut sums = [1i64 << (PRECISION_BITS - 1); CHANNELS];
    for (i, &w) in taps.weights[out].iter().enumerate() {
        let px = pixel(taps.first[out] + i);
        for c in 0..CHANNELS {
            sums[c] += i64::from(px[c]) * i64::from(w);
        }
    }
    sums.map(to_u8)
}

fn horizontal(src: &RgbImage, width: u32) -> RgbImage {
    let taps = taps(src.width() as usize, width as usize);
    RgbImage::from_fn(width, src.height(), |x, y| {
        image::Rgb(filter_line(&taps, x as usize, |i| {
            src.get_pixel(i as u32, y).0
        }))
    })
}

fn vertical(src: &RgbImage, height: u32) -> RgbImage {
    let taps = taps(src.height() as usize, height as usize);
    RgbImage::from_fn(src.width(), height, |x, y| {
        image::Rgb(filter_line(&taps, y as usize, |i| {
            src.get_pixel(x, i as u32).0
        }))
    })
}

/// Resizes `src` to `width`×`height` exactly as Pillow's bilinear `resize` does. An axis whose
/// size does not change is not filtered.
pub fn bilinear(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let across = if width != src.width() {
        horizontal(src, width)
    } else {
        src.clone()
    };
    if height != across.height() {
        vertical(&across, height)
    } else {
        across
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn weights_sum_to_one_in_fixed_point_and_span_the_widened_filter() {
        let taps = taps(1000, 256);
        for (out, weights) in taps.weights.iter().enumerate() {
            let sum: i32 = weights.iter().sum();
            assert!(
                (sum - (1 << PRECISION_BITS)).abs() <= weights.len() as i32,
                "output {out}: {sum}"
            );
        }
        // 1000 → 256 widens the triangle to ±3.9 input pixels: 8 taps in the middle.
        assert_eq!(taps.weights[128].len(), 8);
        assert_eq!(taps.first[0], 0);
    }

    #[test]
    fn halving_weighs_each_pair_and_a_quarter_of_the_neighbours() {
        // At scale 2 the triangle spans ±2 input pixels: output 0 (centre 1.0) weighs inputs
        // 0, 1, 2 by 0.75, 0.75, 0.25, and output 1 (centre 3.0) weighs inputs 1, 2, 3 by
        // 0.25, 0.75, 0.75; the weight falling outside the image is renormalised away (÷ 1.75).
        let mut src = RgbImage::new(4, 1);
        for (x, v) in [0u8, 100, 200, 40].into_iter().enumerate() {
            src.put_pixel(x as u32, 0, Rgb([v, v, v]));
        }
        let out = bilinear(&src, 2, 1);
        assert_eq!(out.get_pixel(0, 0)[0], 71); // (0·3 + 100·3 + 200·1) / 7 = 71.4
        assert_eq!(out.get_pixel(1, 0)[0], 117); // (100·1 + 200·3 + 40·3) / 7 = 117.1
    }

    #[test]
    fn a_flat_image_stays_flat_and_same_size_is_untouched() {
        let flat = RgbImage::from_pixel(37, 23, Rgb([12, 130, 250]));
        let resized = bilinear(&flat, 11, 50);
        assert!(resized.pixels().all(|p| *p == Rgb([12, 130, 250])));

        let mut noisy = RgbImage::new(5, 5);
        noisy.put_pixel(2, 3, Rgb([9, 8, 7]));
        assert_eq!(bilinear(&noisy, 5, 5), noisy);
    }
}
