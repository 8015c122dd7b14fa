//! The command line of a generated crate: `--input NAME=FILE.npy`, `--output-dir DIR`, `--bench N`.

use super::elem::{AnyArray, Elem};
use super::error::{Error, Result};
use super::npy::{read_npy, write_npy};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Takes the next model input from a list of dynamically typed tensors.
pub fn next_input<T: Elem>(inputs: &mut impl Iterator<Item = AnyArray>, name: &str) -> Result<ArrayD<T>> {
    match inputs.next() {
        Some(a) => a.into_typed(name),
        None => Err(Error::Input(format!("missing input `{name}`"))),
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What the model exposes to the command line.
pub struct Signature<'a> {
    pub inputs: &'a [&'a str],
    pub outputs: &'a [&'a str],
    pub files: &'a [&'a str],
}

struct Args {
    inputs: Vec<(String, PathBuf)>,
    output_dir: Option<PathBuf>,
    bench: Option<usize>,
    weights: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut out = Args { inputs: vec![], output_dir: None, bench: None, weights: None };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| Error::Input(format!("{flag} needs a value")));
        match flag.as_str() {
            "--input" => {
                let v = value()?;
                let (name, file) = v.rsplit_once('=').unwrap_or(("", v.as_str()));
                out.inputs.push((name.to_string(), PathBuf::from(file)));
            }
            "--output-dir" => out.output_dir = Some(PathBuf::from(value()?)),
            "--weights" => out.weights = Some(PathBuf::from(value()?)),
            "--bench" => {
                let n = value()?.parse().map_err(|_| Error::Input("--bench needs a number".into()))?;
                out.bench = Some(n);
            }
            "-h" | "--help" => {
                return Err(Error::Input(
                    "usage: [--input NAME=FILE.npy]... [--output-dir DIR] [--bench N] [--weights FILE]".into(),
                ))
            }
            other => return Err(Error::Input(format!("unknown argument `{other}`"))),
        }
    }
    Ok(out)
}

fn read_inputs(sig: &Signature, given: &[(String, PathBuf)]) -> Result<Vec<AnyArray>> {
    sig.inputs
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let by_name = given.iter().find(|(n, _)| n == name);
            let by_pos = if given.len() == sig.inputs.len() && given[i].0.is_empty() { given.get(i) } else { None };
            match by_name.or(by_pos) {
                Some((_, path)) => read_npy(path),
                None => Err(Error::Input(format!("missing --input {name}=FILE.npy"))),
            }
        })
        .collect()
}

fn write_outputs(sig: &Signature, dir: &Path, outputs: &[AnyArray]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut json = String::from("{\n");
    for (i, (out, (name, file))) in outputs.iter().zip(sig.outputs.iter().zip(sig.files)).enumerate() {
        let file = format!("{file}.npy");
        write_npy(&dir.join(&file), out)?;
        let sep = if i + 1 < outputs.len() { "," } else { "" };
        json.push_str(&format!("  {}: {}{sep}\n", json_string(name), json_string(&file)));
    }
    json.push_str("}\n");
    std::fs::write(dir.join("outputs.json"), json)?;
    Ok(())
}

fn bench<M>(model: &M, inputs: &[AnyArray], runs: usize, run: &impl Fn(&M, Vec<AnyArray>) -> Result<Vec<AnyArray>>) -> Result<()> {
    run(model, inputs.to_vec())?;
    let mut times: Vec<u128> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let copy = inputs.to_vec();
        let start = Instant::now();
        run(model, copy)?;
        times.push(start.elapsed().as_nanos());
    }
    times.sort_unstable();
    let pick = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    // Fractional microseconds: small models run in a few of them.
    let us = |q: f64| pick(q) as f64 / 1000.0;
    println!("bench: runs={runs} median_us={:.3} p90_us={:.3}", us(0.5), us(0.9));
    Ok(())
}

/// Runs the command line; returns the process exit code.
pub fn main<M>(
    sig: &Signature,
    load: impl FnOnce(Option<&Path>) -> Result<M>,
    run: impl Fn(&M, Vec<AnyArray>) -> Result<Vec<AnyArray>>,
) -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args).and_then(|args| {
        let model = load(args.weights.as_deref())?;
        let inputs = read_inputs(sig, &args.inputs)?;
        if let Some(runs) = args.bench {
            return bench(&model, &inputs, runs, &run);
        }
        let outputs = run(&model, inputs)?;
        match &args.output_dir {
            Some(dir) => write_outputs(sig, dir, &outputs),
            None => {
                for (name, out) in sig.outputs.iter().zip(&outputs) {
                    println!("{}: {:?}", json_string(name), out);
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Conformance harness: runs one case directory (weights.bin, input_K.npy) into `out_K.npy`,
/// catching panics so that one case cannot stop the others.
pub fn run_case_dir<M>(
    dir: &Path,
    n_inputs: usize,
    load: impl FnOnce(&Path) -> Result<M> + std::panic::UnwindSafe,
    run: impl Fn(&M, Vec<AnyArray>) -> Result<Vec<AnyArray>> + std::panic::UnwindSafe,
) {
    let dir2 = dir.to_path_buf();
    let outcome = std::panic::catch_unwind(move || -> Result<Vec<AnyArray>> {
        let model = load(&dir2.join("weights.bin"))?;
        let inputs = (0..n_inputs).map(|i| read_npy(&dir2.join(format!("input_{i}.npy")))).collect::<Result<Vec<_>>>()?;
        run(&model, inputs)
    });
    let message = match outcome {
        Ok(Ok(outputs)) => {
            let written: Result<()> =
                outputs.iter().enumerate().try_for_each(|(i, o)| write_npy(&dir.join(format!("out_{i}.npy")), o));
            written.err().map(|e| e.to_string())
        }
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("panic".to_string()),
    };
    if let Some(m) = message {
        let _ = std::fs::write(dir.join("error.txt"), m);
    }
}
