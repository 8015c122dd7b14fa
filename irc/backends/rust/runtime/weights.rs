//! `weights.bin`: a header, an offset table, then each tensor's little-endian data.
//!
//! Layout: magic `IRCW0001`, u64 count, then per tensor: u32 element type, u32 rank,
//! u64 offset (from the start of the file), u64 byte length, rank x u64 dims.

use super::elem::Elem;
use super::error::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

const MAGIC: &[u8; 8] = b"IRCW0001";

/// One entry of the offset table.
#[derive(Debug, Clone)]
struct Entry {
    code: u32,
    dims: Vec<usize>,
    offset: usize,
    len: usize,
}

/// Where the tensor data is: bytes in memory (embedded weights), or a file read one tensor
/// at a time, so that loading never holds the whole file beside the arrays built from it.
#[derive(Debug)]
enum Source<'a> {
    Bytes(&'a [u8]),
    File(RefCell<File>),
}

/// A parsed weights file: tensors are taken from it by index.
#[derive(Debug)]
pub struct Weights<'a> {
    source: Source<'a>,
    entries: Vec<Entry>,
}

fn truncated() -> Error {
    Error::Weights("truncated offset table".into())
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
}

/// Reads the magic and the offset table through `take(n)` (the next `n` bytes); every
/// tensor must lie inside a file of `size` bytes.
fn read_table(mut take: impl FnMut(usize) -> Result<Vec<u8>>, size: usize) -> Result<Vec<Entry>> {
    if size < 16 || take(8)? != MAGIC {
        return Err(Error::Weights("not an irc weights file".into()));
    }
    let count = le_u64(&take(8)?) as usize;
    let mut entries = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let head = take(24)?;
        let code = u32::from_le_bytes(head[..4].try_into().unwrap_or([0; 4]));
        let rank = u32::from_le_bytes(head[4..8].try_into().unwrap_or([0; 4])) as usize;
        let (offset, len) = (le_u64(&head[8..16]) as usize, le_u64(&head[16..24]) as usize);
        let dims = take(8 * rank)?.chunks_exact(8).map(|d| le_u64(d) as usize).collect();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::Weights("tensor data out of bounds".into()));
        }
        entries.push(Entry { code, dims, offset, len });
    }
    Ok(entries)
}

impl<'a> Weights<'a> {
    /// Parses the header and offset table of a weights file held in memory.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        super::linalg::tune_allocator(); // every model loads its weights here: tune malloc once
        let mut pos = 0;
        let entries = read_table(
            |n| {
                let out = bytes.get(pos..pos + n).ok_or_else(truncated)?;
                pos += n;
                Ok(out.to_vec())
            },
            bytes.len(),
        )?;
        Ok(Weights { source: Source::Bytes(bytes), entries })
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
        let read;
        let data = match &self.source {
            Source::Bytes(bytes) => &bytes[e.offset..e.offset + e.len],
            Source::File(file) => {
                let mut file = file.borrow_mut();
                let mut buf = vec![0u8; e.len];
                file.seek(SeekFrom::Start(e.offset as u64))
                    .and_then(|_| file.read_exact(&mut buf))
                    .map_err(|err| Error::Io(format!("weights tensor #{index}: {err}")))?;
                read = buf;
                &read[..]
            }
        };
        let values: Vec<T> = data.chunks_exact(T::SIZE).map(T::read_le).collect();
        ArrayD::from_shape_vec(IxDyn(dims), values).map_err(|e| Error::Weights(e.to_string()))
    }
}

impl Weights<'static> {
    /// Opens a `weights.bin` file: the offset table is read now, each tensor when taken.
    pub fn open(path: &Path) -> Result<Self> {
        super::linalg::tune_allocator();
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len() as usize;
        let mut reader = BufReader::new(&file);
        let entries = read_table(
            |n| {
                let mut out = vec![0u8; n];
                reader.read_exact(&mut out).map_err(|_| truncated())?;
                Ok(out)
            },
            size,
        )?;
        drop(reader);
        Ok(Weights { source: Source::File(RefCell::new(file)), entries })
    }
}
