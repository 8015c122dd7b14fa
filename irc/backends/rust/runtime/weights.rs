//! `weights.bin`: a header, an offset table, then each tensor's little-endian data.
//!
//! Layout: magic `IRCW0001`, u64 count, then per tensor: u32 element type, u32 rank,
//! u64 offset (from the start of the file), u64 byte length, rank x u64 dims.

use super::elem::Elem;
use super::error::{Error, Result};
use ndarray::{ArrayD, IxDyn};

const MAGIC: &[u8; 8] = b"IRCW0001";

/// One entry of the offset table.
#[derive(Debug, Clone)]
struct Entry {
    code: u32,
    dims: Vec<usize>,
    offset: usize,
    len: usize,
}

/// A parsed weights file: tensors are taken from it by index.
#[derive(Debug)]
pub struct Weights<'a> {
    bytes: &'a [u8],
    entries: Vec<Entry>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let out = self
            .bytes
            .get(self.pos..self.pos + n)
            .ok_or_else(|| Error::Weights("truncated offset table".into()))?;
        self.pos += n;
        Ok(out)
    }
}

impl<'a> Weights<'a> {
    /// Parses the header and offset table of a weights file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        super::linalg::tune_allocator(); // every model loads its weights here: tune malloc once
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(Error::Weights("not an irc weights file".into()));
        }
        let mut r = Reader { bytes, pos: 8 };
        let count = r.u64()? as usize;
        let mut entries = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let code = r.u32()?;
            let rank = r.u32()? as usize;
            let offset = r.u64()? as usize;
            let len = r.u64()? as usize;
            let dims = (0..rank).map(|_| r.u64().map(|d| d as usize)).collect::<Result<Vec<_>>>()?;
            if offset.checked_add(len).is_none_or(|end| end > bytes.len()) {
                return Err(Error::Weights("tensor data out of bounds".into()));
            }
            entries.push(Entry { code, dims, offset, len });
        }
        Ok(Weights { bytes, entries })
    }

    /// Tensor `index`, checked against the element type and shape the model expects.
    pub fn get<T: Elem>(&self, index: usize, dims: &[usize]) -> Result<ArrayD<T>> {
        let e = self
            .entries
            .get(index)
            .ok_or_else(|| Error::Weights(format!("tensor #{index} missing")))?;
        if e.code != T::CODE || e.dims != dims || e.len != dims.iter().product::<usize>() * T::SIZE {
            return Err(Error::Weights(format!(
                "tensor #{index}: expected type {} shape {:?}, file has type {} shape {:?}",
                T::CODE,
                dims,
                e.code,
                e.dims
            )));
        }
        let data = &self.bytes[e.offset..e.offset + e.len];
        let values: Vec<T> = data.chunks_exact(T::SIZE).map(T::read_le).collect();
        ArrayD::from_shape_vec(IxDyn(dims), values).map_err(|e| Error::Weights(e.to_string()))
    }
}
