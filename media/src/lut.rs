//! 3D LUTs in the `.cube` format (Adobe / Resolve): parsing with errors that name the line,
//! and the canonical file the picture filter applies.
//!
//! The coordinator parses a job's LUT at submission, so a malformed one fails the job there;
//! each worker parses the same bytes again (checked by their SHA-256) and hands FFmpeg's
//! `lut3d` a canonical copy on the [0, 1] domain: FFmpeg 5.1 reads `DOMAIN_MAX` only as a
//! scale and ignores `DOMAIN_MIN`, so another domain is resampled here (tetrahedral, as the
//! filter interpolates) instead of being misread there.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// Lattice sizes accepted: the common 17, 33 and 65, and anything between 2 and 65.
pub const MAX_SIZE: usize = 65;
/// A `.cube` file larger than this is refused before parsing (a 65-point LUT is ~9 MB).
pub const MAX_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LutError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("{0}")]
    File(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cube {
    pub size: usize,
    pub domain_min: [f32; 3],
    pub domain_max: [f32; 3],
    /// `size^3` output triples, red varying fastest.
    pub table: Vec<[f32; 3]>,
}

/// A LUT's bytes from a local path or an object, refused past [`MAX_BYTES`] before reading.
pub fn read(location: &farm_storage::SourceLocation) -> std::io::Result<Vec<u8>> {
    farm_storage::read_whole(location, MAX_BYTES as u64)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Cube {
    pub fn parse(data: &[u8]) -> Result<Self, LutError> {
        if data.len() > MAX_BYTES {
            return Err(LutError::File(format!("the LUT is {} bytes, more than the {MAX_BYTES} accepted", data.len())));
        }
        let text = std::str::from_utf8(data).map_err(|e| LutError::File(format!("the LUT is not text (UTF-8): {e}")))?;
        let mut size = None;
        let (mut domain_min, mut domain_max) = ([0.0f32; 3], [1.0f32; 3]);
        let mut table = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| LutError::Line { line, message };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            let keyword = words.next().expect("non-empty line");
            let rest: Vec<&str> = words.collect();
            if keyword.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
                let n = size.ok_or_else(|| err("a data line comes before LUT_3D_SIZE".into()))?;
                if table.len() == n * n * n {
                    return Err(err(format!("more than {n}^3 = {} data lines", n * n * n)));
                }
                table.push(triple(keyword, &rest).map_err(err)?);
                continue;
            }
            if !table.is_empty() {
                return Err(err(format!("keyword {keyword} after the data lines")));
            }
            match keyword {
                "TITLE" => {}
                "LUT_3D_SIZE" => {
                    let n: usize = single(&rest).map_err(err)?;
                    if !(2..=MAX_SIZE).contains(&n) {
                        return Err(err(format!("LUT_3D_SIZE {n} is outside 2..{MAX_SIZE} (17, 33 and 65 are usual)")));
                    }
                    size = Some(n);
                }
                "LUT_1D_SIZE" => {
                    return Err(err("a 1D LUT or 1D shaper (LUT_1D_SIZE) is not supported: \
                                    export the LUT as a single 3D LUT with the shaper baked in".into()))
                }
                "DOMAIN_MIN" => domain_min = triple_words(&rest).map_err(err)?,
                "DOMAIN_MAX" => domain_max = triple_words(&rest).map_err(err)?,
                "LUT_3D_INPUT_RANGE" => {
                    let [lo, hi] = pair(&rest).map_err(err)?;
                    (domain_min, domain_max) = ([lo; 3], [hi; 3]);
                }
                other => return Err(err(format!("unknown keyword {other:?}"))),
            }
        }
        let n = size.ok_or_else(|| LutError::File("no LUT_3D_SIZE: not a 3D .cube LUT".into()))?;
        if table.len() != n * n * n {
            return Err(LutError::File(format!("{} data lines, LUT_3D_SIZE {n} needs {}", table.len(), n * n * n)));
        }
        if (0..3).any(|c| domain_max[c] <= domain_min[c]) {
            return Err(LutError::File(format!("DOMAIN_MIN {domain_min:?} is not below DOMAIN_MAX {domain_max:?}")));
        }
        Ok(Self { size: n, domain_min, domain_max, table })
    }

    fn at(&self, r: usize, g: usize, b: usize) -> [f32; 3] {
        self.table[r + self.size * (g + self.size * b)]
    }

    /// The LUT's output for an input triple, tetrahedral interpolation, clamped to the domain.
    pub fn apply(&self, rgb: [f32; 3]) -> [f32; 3] {
        let last = (self.size - 1) as f32;
        let pos: [f32; 3] = std::array::from_fn(|c| {
            let t = (rgb[c] - self.domain_min[c]) / (self.domain_max[c] - self.domain_min[c]);
            t.clamp(0.0, 1.0) * last
        });
        let lo: [usize; 3] = std::array::from_fn(|c| (pos[c].floor() as usize).min(self.size - 2));
        let f: [f32; 3] = std::array::from_fn(|c| pos[c] - lo[c] as f32);
        let corner = |dr: usize, dg: usize, db: usize| self.at(lo[0] + dr, lo[1] + dg, lo[2] + db);
        let (c000, c111) = (corner(0, 0, 0), corner(1, 1, 1));
        // The tetrahedron holding the point, by the order of the fractions (as lut3d does).
        let (a, b, w) = match (f[0] > f[1], f[1] > f[2], f[0] > f[2]) {
            (true, true, _) => (corner(1, 0, 0), corner(1, 1, 0), [f[0], f[1], f[2]]),
            (true, false, true) => (corner(1, 0, 0), corner(1, 0, 1), [f[0], f[2], f[1]]),
            (true, false, false) => (corner(0, 0, 1), corner(1, 0, 1), [f[2], f[0], f[1]]),
            (false, true, true) => (corner(0, 1, 0), corner(1, 1, 0), [f[1], f[0], f[2]]),
            (false, true, false) => (corner(0, 1, 0), corner(0, 1, 1), [f[1], f[2], f[0]]),
            (false, false, _) => (corner(0, 0, 1), corner(0, 1, 1), [f[2], f[1], f[0]]),
        };
        std::array::from_fn(|c| {
            (1.0 - w[0]) * c000[c] + (w[0] - w[1]) * a[c] + (w[1] - w[2]) * b[c] + w[2] * c111[c]
        })
    }

    /// The `.cube` text FFmpeg's `lut3d` reads: same size, domain [0, 1] (resampled when
    /// the source file states another domain), values clamped to [0, 1] as video needs.
    pub fn canonical_text(&self) -> String {
        let n = self.size;
        let mut out = String::with_capacity(n * n * n * 28 + 64);
        let _ = writeln!(out, "LUT_3D_SIZE {n}\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 1 1 1");
        for v in self.unit_lattice() {
            let _ = writeln!(out, "{:.6} {:.6} {:.6}", v[0], v[1], v[2]);
        }
        out
    }

    /// The lattice on the [0, 1] domain (resampled when the file states another domain),
    /// red varying fastest, values clamped to [0, 1] as video needs.
    pub fn unit_lattice(&self) -> Vec<[f32; 3]> {
        let unit = self.domain_min == [0.0; 3] && self.domain_max == [1.0; 3];
        let n = self.size;
        let last = (n - 1) as f32;
        let mut out = Vec::with_capacity(n * n * n);
        for b in 0..n {
            for g in 0..n {
                for r in 0..n {
                    let v = if unit { self.at(r, g, b) } else { self.apply([r as f32 / last, g as f32 / last, b as f32 / last]) };
                    out.push(v.map(|c| c.clamp(0.0, 1.0)));
                }
            }
        }
        out
    }
}

fn number(word: &str) -> Result<f32, String> {
    word.parse::<f32>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{word:?} is not a number"))
}

fn triple(first: &str, rest: &[&str]) -> Result<[f32; 3], String> {
    if rest.len() != 2 {
        return Err(format!("a data line needs 3 values, this one has {}", rest.len() + 1));
    }
    Ok([number(first)?, number(rest[0])?, number(rest[1])?])
}

fn triple_words(words: &[&str]) -> Result<[f32; 3], String> {
    match words {
        [a, b, c] => Ok([number(a)?, number(b)?, number(c)?]),
        _ => Err(format!("needs 3 values, has {}", words.len())),
    }
}

fn pair(words: &[&str]) -> Result<[f32; 2], String> {
    match words {
        [a, b] => Ok([number(a)?, number(b)?]),
        _ => Err(format!("needs 2 values, has {}", words.len())),
    }
}

fn single(words: &[&str]) -> Result<usize, String> {
    match words {
        [a] => a.parse().map_err(|_| format!("{a:?} is not a whole number")),
        _ => Err(format!("needs 1 value, has {}", words.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: usize, header: &str) -> String {
        let mut s = format!("TITLE \"test\"\n# comment\n{header}LUT_3D_SIZE {n}\n");
        let last = (n - 1) as f32;
        for b in 0..n {
            for g in 0..n {
                for r in 0..n {
                    s += &format!("{} {} {}\n", r as f32 / last, g as f32 / last, b as f32 / last);
                }
            }
        }
        s
    }

    #[test]
    fn an_identity_lut_maps_every_colour_to_itself() {
        for n in [2, 17, 33] {
            let cube = Cube::parse(identity(n, "").as_bytes()).unwrap();
            for rgb in [[0.0, 0.0, 0.0], [0.3, 0.7, 0.1], [1.0, 0.5, 0.25], [0.9, 0.2, 0.95]] {
                let out = cube.apply(rgb);
                (0..3).for_each(|c| assert!((out[c] - rgb[c]).abs() < 1e-5, "{n} {rgb:?} {out:?}"));
            }
        }
    }

    #[test]
    fn another_domain_is_honoured_and_resampled_onto_zero_to_one() {
        // An identity over [-0.5, 1.5]: a video value v must still come out as v.
        let text = identity(17, "DOMAIN_MIN -0.5 -0.5 -0.5\nDOMAIN_MAX 1.5 1.5 1.5\n");
        let scaled: String = text
            .lines()
            .map(|l| match l.split_whitespace().map(str::parse::<f32>).collect::<Result<Vec<_>, _>>() {
                Ok(v) if v.len() == 3 => format!("{} {} {}\n", v[0] * 2.0 - 0.5, v[1] * 2.0 - 0.5, v[2] * 2.0 - 0.5),
                _ => format!("{l}\n"),
            })
            .collect();
        let cube = Cube::parse(scaled.as_bytes()).unwrap();
        assert_eq!(cube.domain_min, [-0.5; 3]);
        let canonical = Cube::parse(cube.canonical_text().as_bytes()).unwrap();
        assert_eq!(canonical.domain_max, [1.0; 3]);
        for rgb in [[0.1, 0.6, 0.9], [0.5, 0.5, 0.5]] {
            let out = canonical.apply(rgb);
            (0..3).for_each(|c| assert!((out[c] - rgb[c]).abs() < 1e-4, "{rgb:?} {out:?}"));
        }
    }

    #[test]
    fn malformed_luts_are_refused_naming_the_line() {
        let good = identity(2, "");
        let line_of = |text: &str| match Cube::parse(text.as_bytes()) {
            Err(LutError::Line { line, message }) => (line, message),
            other => panic!("{other:?}"),
        };
        let bad_value = good.replacen("1 0 0", "1 zero 0", 1);
        assert_eq!(line_of(&bad_value), (5, "\"zero\" is not a number".into()));
        let short = good.replacen("0 1 0", "0 1", 1);
        assert!(line_of(&short).1.contains("needs 3 values"));
        let (_, shaper) = line_of(&format!("LUT_1D_SIZE 1024\n{good}"));
        assert!(shaper.contains("1D shaper"), "{shaper}");
        assert!(line_of(&good.replace("TITLE", "TITEL")).1.contains("unknown keyword"));
        assert!(line_of(&good.replace("LUT_3D_SIZE 2", "LUT_3D_SIZE 129")).1.contains("outside 2..65"));
        let missing = good.lines().take(10).collect::<Vec<_>>().join("\n");
        assert!(matches!(Cube::parse(missing.as_bytes()), Err(LutError::File(m)) if m.contains("needs 8")));
        assert!(matches!(Cube::parse(b"\xff\xfe"), Err(LutError::File(_))));
    }
}
