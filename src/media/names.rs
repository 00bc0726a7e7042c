//! Object names: content-addressed (md5 hex of the bytes) with the original's extensions, and
//! the thumbnail suffixes `@{w}w_{h}h[_{c}c][.ext]`.
//!
//! Every name a request can give is parsed against a fixed grammar (32 lowercase hex digits, a
//! known suffix) before it reaches the storage, so a name can never hold a `/`, a `..` or anything
//! else that could leave the storage directory.

use std::fmt;

/// The three folders of the storage, as the original's paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Images,
    Audios,
    Files,
}

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Audios => "audios",
            Kind::Files => "files",
        }
    }
}

/// A validated object: its folder and a name that passed `names` grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey {
    pub kind: Kind,
    name: String,
}

impl ObjectKey {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.dir(), self.name)
    }
}

/// Hex md5 of `bytes` (the content address).
pub fn digest(bytes: &[u8]) -> String {
    crate::apps::md5_hex(bytes)
}

fn is_digest(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The two image formats, by the original's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
}

impl ImageType {
    /// From a declared content type (`image/png`, `image/jpeg`).
    pub fn from_content_type(ct: &str) -> Option<ImageType> {
        let essence = ct.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/png" => Some(ImageType::Png),
            "image/jpeg" | "image/jpg" => Some(ImageType::Jpeg),
            _ => None,
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            ImageType::Png => ".png",
            ImageType::Jpeg => ".jpg",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
        }
    }

    fn from_ext(ext: &str) -> Option<ImageType> {
        match ext {
            ".png" => Some(ImageType::Png),
            ".jpg" => Some(ImageType::Jpeg),
            _ => None,
        }
    }
}

/// A thumbnail request: the box and whether to crop to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thumb {
    pub width: u32,
    pub height: u32,
    pub crop: bool,
}

/// A requested image: the original `{md5}{ext}`, or one of its thumbnails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub digest: String,
    pub ty: ImageType,
    pub thumb: Option<Thumb>,
}

const IMAGE_GRAMMAR: &str = "an image name is <md5>.png or <md5>.jpg, optionally followed by \
     @128w_128h or @256w_256h, then _0c (shrink) or _1c (crop), then the extension again";

impl ImageName {
    pub fn new(digest: String, ty: ImageType) -> ImageName {
        ImageName {
            digest,
            ty,
            thumb: None,
        }
    }

    /// Parses `{md5}{ext}[@{w}w_{h}h[_{c}c][{ext}]]`; `Err` says what a name looks like.
    pub fn parse(raw: &str) -> Result<ImageName, String> {
        let bad = || format!("{raw:?} is not an image name: {IMAGE_GRAMMAR}");
        let (origin, suffix) = match raw.split_once('@') {
            Some((o, s)) => (o, Some(s)),
            None => (raw, None),
        };
        let (digest, ext) = origin.split_at_checked(32).ok_or_else(bad)?;
        let ty = ImageType::from_ext(ext).filter(|_| is_digest(digest));
        let ty = ty.ok_or_else(bad)?;
        let thumb = suffix
            .map(|s| parse_thumb(s, ty).ok_or_else(bad))
            .transpose()?;
        Ok(ImageName {
            digest: digest.to_string(),
            ty,
            thumb,
        })
    }

    /// The original's name, `{md5}{ext}` (what `src` names).
    pub fn original(&self) -> ObjectKey {
        ObjectKey {
            kind: Kind::Images,
            name: format!("{}{}", self.digest, self.ty.ext()),
        }
    }

    /// Where this image is stored: the original, or the thumbnail's cache
    /// `{md5}_{w}w_{h}h_{c}c{ext}` (the original's cache names).
    pub fn key(&self) -> ObjectKey {
        match self.thumb {
            None => self.original(),
            Some(t) => ObjectKey {
                kind: Kind::Images,
                name: format!(
                    "{}_{}w_{}h_{}c{}",
                    self.digest,
                    t.width,
                    t.height,
                    u8::from(t.crop),
                    self.ty.ext()
                ),
            },
        }
    }
}

/// `128w_128h`, `256w_256h_1c.jpg`, …: the two sizes of the original, crop 0 or 1, and an
/// optional extension (ignored, as the original did, if it is one of the two).
fn parse_thumb(s: &str, ty: ImageType) -> Option<Thumb> {
    let s = s
        .strip_suffix(ty.ext())
        .or_else(|| s.strip_suffix(".png"))
        .or_else(|| s.strip_suffix(".jpg"))
        .unwrap_or(s);
    let (size, crop) = match s.strip_suffix("_0c") {
        Some(size) => (size, false),
        None => match s.strip_suffix("_1c") {
            Some(size) => (size, true),
            None => (s, false),
        },
    };
    let side = match size {
        "128w_128h" => 128,
        "256w_256h" => 256,
        _ => return None,
    };
    Some(Thumb {
        width: side,
        height: side,
        crop,
    })
}

/// An audio: `{md5}` as uploaded, or `{md5}.mp3` converted from it.
pub fn audio(digest: &str, mp3: bool) -> Result<ObjectKey, String> {
    if !is_digest(digest) {
        return Err(format!(
            "{digest:?} is not an audio name: an audio name is the <md5> an upload returned"
        ));
    }
    let name = if mp3 {
        format!("{digest}.mp3")
    } else {
        digest.to_string()
    };
    Ok(ObjectKey {
        kind: Kind::Audios,
        name,
    })
}

/// The extension kept from an uploaded file's name: `.` and 1 to 16 ASCII letters or digits,
/// lowercased; anything else keeps none.
pub fn file_ext(filename: &str) -> String {
    let Some((stem, ext)) = filename.rsplit_once('.') else {
        return String::new();
    };
    let ok = !stem.is_empty() && (1..=16).contains(&ext.len());
    if ok && ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
        format!(".{}", ext.to_ascii_lowercase())
    } else {
        String::new()
    }
}

/// A file: `{md5}` plus the extension `file_ext` kept.
pub fn file(raw: &str) -> Result<ObjectKey, String> {
    let bad = || {
        format!(
            "{raw:?} is not a file name: a file name is <md5> or <md5>.<ext> (1 to 16 lowercase \
             letters or digits)"
        )
    };
    let (digest, ext) = raw.split_at_checked(32).ok_or_else(bad)?;
    let ext_ok = ext.is_empty()
        || ext.strip_prefix('.').is_some_and(|e| {
            (1..=16).contains(&e.len())
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !is_digest(digest) || !ext_ok {
        return Err(bad());
    }
    Ok(ObjectKey {
        kind: Kind::Files,
        name: raw.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn image_names_follow_the_originals_grammar() {
        let n = ImageName::parse(&format!("{D}.jpg")).unwrap();
        assert_eq!((n.ty, n.thumb), (ImageType::Jpeg, None));
        let t = ImageName::parse(&format!("{D}.png@256w_256h_1c.png")).unwrap();
        assert_eq!(t.key().name(), format!("{D}_256w_256h_1c.png"));
        assert_eq!(t.original().name(), format!("{D}.png"));
        let t = ImageName::parse(&format!("{D}.jpg@128w_128h")).unwrap();
        assert_eq!(t.thumb.map(|t| (t.width, t.crop)), Some((128, false)));
        for bad in [
            "../../etc/passwd".to_string(),
            format!("{D}.gif"),
            format!("{D}.jpg@64w_64h"),
            format!("{D}.jpg@128w_128h_2c"),
            format!("{}.jpg", &D[..31]),
            format!("{}.jpg", D.to_uppercase()),
            format!("{D}.jpg/../x"),
            String::new(),
        ] {
            assert!(ImageName::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_and_audio_names_cannot_leave_their_folder() {
        assert_eq!(file_ext("report.PDF"), ".pdf");
        assert_eq!(file_ext("a.tar.gz"), ".gz");
        assert_eq!(file_ext(".bashrc"), "");
        assert_eq!(file_ext("x.ph p"), "");
        assert_eq!(file_ext("noext"), "");
        assert!(file(&format!("{D}.pdf")).is_ok());
        assert!(file(D).is_ok());
        for bad in [
            format!("{D}/x"),
            format!("{D}.."),
            format!("{D}.PDF"),
            "..".into(),
        ] {
            assert!(file(&bad).is_err(), "{bad}");
        }
        assert_eq!(audio(D, true).unwrap().name(), format!("{D}.mp3"));
        assert!(audio("../x", false).is_err());
    }
}
