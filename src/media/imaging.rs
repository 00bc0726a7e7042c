//! Checking uploaded images and making thumbnails (the `image` crate, PNG and JPEG only).
//!
//! An upload must be the type it declares and small enough in pixels that decoding it for a
//! thumbnail stays bounded in memory. Thumbnails follow the original: `_0c` shrinks to the
//! box's width keeping the proportions (never enlarging), `_1c` crops the centre to the box's
//! shape first, then shrinks into the box. They are encoded in the original's format.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, imageops::FilterType};

use super::names::{ImageType, Thumb};

/// Largest image accepted, in pixels (decoded RGBA it is 4 bytes a pixel).
pub const MAX_PIXELS: u64 = 40_000_000;

fn format(ty: ImageType) -> ImageFormat {
    match ty {
        ImageType::Png => ImageFormat::Png,
        ImageType::Jpeg => ImageFormat::Jpeg,
    }
}

/// Checks that `bytes` are a whole image of type `ty` of at most `MAX_PIXELS` (it is decoded:
/// a truncated or corrupt image is refused, so every stored image has thumbnails); returns its
/// width and height, or why not.
pub fn check(bytes: &[u8], ty: ImageType) -> Result<(u32, u32), String> {
    let actual = image::guess_format(bytes).ok();
    if actual != Some(format(ty)) {
        let found = actual.map_or("not an image this service reads".to_string(), |f| {
            format!("{f:?}").to_lowercase()
        });
        return Err(format!(
            "the body is declared {} but is {found}",
            ty.content_type()
        ));
    }
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format(ty))
        .into_dimensions()
        .map_err(|e| format!("the {} header cannot be read: {e}", ty.content_type()))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS || w == 0 || h == 0 {
        return Err(format!(
            "the image is {w}x{h} pixels; at most {MAX_PIXELS} pixels are accepted"
        ));
    }
    decode(bytes, ty).map_err(|e| format!("the {} cannot be decoded: {e}", ty.content_type()))?;
    Ok((w, h))
}

/// Decodes with memory bounded by `MAX_PIXELS`.
fn decode(bytes: &[u8], ty: ImageType) -> image::ImageResult<DynamicImage> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format(ty));
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4 + (16 << 20));
    reader.limits(limits);
    reader.decode()
}

/// The thumbnail of `bytes` (an image of type `ty` that passed `check`), encoded as `ty`.
pub fn thumbnail(bytes: &[u8], ty: ImageType, t: Thumb) -> Result<Vec<u8>, String> {
    let img = decode(bytes, ty).map_err(|e| format!("the stored image cannot be decoded: {e}"))?;
    let out = if t.crop {
        crop_to_box(img, t)
    } else {
        shrink_to_width(img, t.width)
    };
    let out = match ty {
        ImageType::Jpeg => DynamicImage::ImageRgb8(out.into_rgb8()),
        ImageType::Png => out,
    };
    let mut buf = Cursor::new(Vec::new());
    out.write_to(&mut buf, format(ty))
        .map_err(|e| format!("the thumbnail cannot be encoded: {e}"))?;
    Ok(buf.into_inner())
}

/// Width at most `width`, height in proportion; a narrower image stays as it is.
fn shrink_to_width(img: DynamicImage, width: u32) -> DynamicImage {
    let (w, h) = (img.width(), img.height());
    if w <= width {
        return img;
    }
    let height = ((u64::from(h) * u64::from(width) + u64::from(w) / 2) / u64::from(w)).max(1);
    img.resize_exact(width, height as u32, FilterType::Lanczos3)
}

/// The centre of the image in the box's proportions, shrunk to fit the box.
fn crop_to_box(img: DynamicImage, t: Thumb) -> DynamicImage {
    let (w, h) = (u64::from(img.width()), u64::from(img.height()));
    let (bw, bh) = (u64::from(t.width), u64::from(t.height));
    // The largest w' x h' with w'/h' = bw/bh inside w x h.
    let (cw, ch) = if w * bh > h * bw {
        ((h * bw / bh).max(1), h)
    } else {
        (w, (w * bh / bw).max(1))
    };
    let cropped = img.crop_imm(
        ((w - cw) / 2) as u32,
        ((h - ch) / 2) as u32,
        cw as u32,
        ch as u32,
    );
    if cw <= bw && ch <= bh {
        return cropped;
    }
    cropped.resize(t.width, t.height, FilterType::Lanczos3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::new_rgba8(w, h);
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, ImageFormat::Png).unwrap();
        buf.into_inner()
    }

    fn size(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn thumbnails_shrink_or_crop_as_the_original() {
        let wide = png(300, 200);
        let shrink = Thumb {
            width: 128,
            height: 128,
            crop: false,
        };
        let crop = Thumb {
            crop: true,
            ..shrink
        };
        let t = |b: &[u8], t| size(&thumbnail(b, ImageType::Png, t).unwrap());
        assert_eq!(t(&wide, shrink), (128, 85));
        assert_eq!(t(&wide, crop), (128, 128));
        assert_eq!(t(&png(100, 1000), shrink), (100, 1000), "never enlarged");
        assert_eq!(t(&png(100, 1000), crop), (100, 100));
        assert_eq!(t(&png(50, 40), crop), (40, 40));
    }

    #[test]
    fn a_body_must_be_the_declared_type() {
        assert_eq!(check(&png(3, 2), ImageType::Png), Ok((3, 2)));
        let err = check(&png(3, 2), ImageType::Jpeg).unwrap_err();
        assert!(err.contains("image/jpeg") && err.contains("png"), "{err}");
        assert!(check(b"GIF89a....", ImageType::Png).is_err());
        assert!(check(b"\x89PNG\r\n\x1a\n broken", ImageType::Png).is_err());
    }
}
