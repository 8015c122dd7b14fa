//! `.npy` files (format 1.0-3.0): a short text header then little-endian data.

use super::elem::{AnyArray, Elem};
use super::error::{Error, Result};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

fn bad(path: &Path, msg: &str) -> Error {
    Error::Input(format!("{}: {msg}", path.display()))
}

/// The value of `key` in a numpy header dict, as raw text.
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

fn typed<T: Elem>(data: &[u8], shape: &[usize], fortran: bool) -> Result<ArrayD<T>> {
    let values: Vec<T> = data.chunks_exact(T::SIZE).map(T::read_le).collect();
    let dims = IxDyn(shape);
    let array = if fortran {
        ArrayD::from_shape_vec(dims.f(), values)
    } else {
        ArrayD::from_shape_vec(dims, values)
    };
    let array = array.map_err(|e| Error::Input(format!("bad .npy payload: {e}")))?;
    Ok(array.as_standard_layout().into_owned())
}

/// Reads a `.npy` file of any supported element type.
pub fn read_npy(path: &Path) -> Result<AnyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(path, "not a .npy file"));
    }
    let (hlen, hstart) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        if bytes.len() < 12 {
            return Err(bad(path, "truncated header"));
        }
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = bytes
        .get(hstart..hstart + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad(path, "bad header"))?;
    let descr = header_field(header, "descr").ok_or_else(|| bad(path, "no descr"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = header_field(header, "fortran_order") == Some("True");
    let shape = header_field(header, "shape")
        .and_then(parse_shape)
        .ok_or_else(|| bad(path, "bad shape"))?;
    let data = &bytes[hstart + hlen..];
    let numel: usize = shape.iter().product();
    let descr = descr.replace('=', "<");
    let descr = if descr.len() == 3 && descr.ends_with('1') { format!("|{}", &descr[1..]) } else { descr };
    macro_rules! load {
        ($t:ty, $v:ident) => {{
            if data.len() < numel * <$t>::SIZE {
                return Err(bad(path, "truncated data"));
            }
            AnyArray::$v(typed::<$t>(&data[..numel * <$t>::SIZE], &shape, fortran)?)
        }};
    }
    Ok(match descr.as_str() {
        "<f2" => load!(super::half::F16, F16),
        "<f4" => load!(f32, F32),
        "<f8" => load!(f64, F64),
        "|i1" => load!(i8, I8),
        "<i2" => load!(i16, I16),
        "<i4" => load!(i32, I32),
        "<i8" => load!(i64, I64),
        "|u1" => load!(u8, U8),
        "<u2" => load!(u16, U16),
        "<u4" => load!(u32, U32),
        "<u8" => load!(u64, U64),
        "|b1" => load!(bool, Bool),
        other => return Err(bad(path, &format!("unsupported dtype {other}"))),
    })
}

fn encode<T: Elem>(a: &ArrayD<T>) -> (Vec<usize>, Vec<u8>) {
    let mut out = Vec::with_capacity(a.len() * T::SIZE);
    a.iter().for_each(|v| v.write_le(&mut out));
    (a.shape().to_vec(), out)
}

/// Writes a tensor as a `.npy` file (format 1.0, C order).
pub fn write_npy(path: &Path, array: &AnyArray) -> Result<()> {
    let (shape, data) = match array {
        AnyArray::F16(a) => encode(a),
        AnyArray::F32(a) => encode(a),
        AnyArray::F64(a) => encode(a),
        AnyArray::I8(a) => encode(a),
        AnyArray::I16(a) => encode(a),
        AnyArray::I32(a) => encode(a),
        AnyArray::I64(a) => encode(a),
        AnyArray::U8(a) => encode(a),
        AnyArray::U16(a) => encode(a),
        AnyArray::U32(a) => encode(a),
        AnyArray::U64(a) => encode(a),
        AnyArray::Bool(a) => encode(a),
    };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}", array.descr());
    while !(MAGIC.len() + 4 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
}
