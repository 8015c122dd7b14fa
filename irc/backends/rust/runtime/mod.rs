//! The runtime of layers every generated crate carries: plain ndarray code, no other crate.

pub mod attention;
pub mod cli;
pub mod conv;
pub mod detect;
pub mod elem;
pub mod elementwise;
pub mod error;
pub mod half;
pub mod linalg;
pub mod norm;
pub mod npy;
pub mod pool;
pub mod quant;
pub mod reduce;
pub mod resize;
pub mod rnn;
pub mod shape;
pub mod weights;

pub use attention::*;
pub use cli::{next_input, Signature};
pub use conv::*;
pub use detect::*;
pub use elem::*;
pub use elementwise::*;
pub use error::*;
pub use half::F16;
pub use linalg::*;
pub use norm::*;
pub use npy::*;
pub use pool::*;
pub use quant::*;
pub use reduce::*;
pub use resize::*;
pub use rnn::*;
pub use shape::*;
pub use weights::*;
