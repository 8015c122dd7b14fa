//! The one error type of the generated crate: every failure is a value, never a panic.

use std::fmt;

/// What went wrong while loading weights, reading inputs or running the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An input or intermediate tensor has a shape the model cannot take.
    Shape(String),
    /// A tensor has the wrong element type.
    DType(String),
    /// The weights file is missing, truncated or does not match the model.
    Weights(String),
    /// A file could not be read or written.
    Io(String),
    /// A command-line or `.npy` input is malformed.
    Input(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape(m) => write!(f, "shape error: {m}"),
            Error::DType(m) => write!(f, "dtype error: {m}"),
            Error::Weights(m) => write!(f, "weights error: {m}"),
            Error::Io(m) => write!(f, "io error: {m}"),
            Error::Input(m) => write!(f, "input error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// Result of every runtime operation.
pub type Result<T> = std::result::Result<T, Error>;

/// A shape error with a formatted message.
pub fn shape_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape(msg.into()))
}
