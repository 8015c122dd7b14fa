//! Builds irc's runtime GEMM exactly as the generated crates ship it, for tests and benches.

#[path = "../../../irc/backends/rust/runtime/cpu.rs"]
pub mod cpu;
#[path = "../../../irc/backends/rust/runtime/gemm.rs"]
pub mod gemm;
#[path = "../../../irc/backends/rust/runtime/par.rs"]
pub mod par;
