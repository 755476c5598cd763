//! Text models on ONNX Runtime, shared by the embedding and domain signals: a tokenizer
//! (the `tokenizers` crate, pure Rust) and a small pool of ONNX sessions (the `ort` crate,
//! loading the libonnxruntime that the onnxruntime wheel ships; Python finds it and passes an
//! absolute path to `init_onnxruntime`).
//!
//! In: text. Out: an embedding (L2-normalised) or class probabilities, plus what the
//! tokenizer did (token count, truncation). Inference runs on blocking threads, never on the
//! async workers; a semaphore sized to the session pool keeps requests from piling up there.

pub mod model;
pub mod pool;
pub mod registry;
pub mod unigram;

use std::sync::OnceLock;

pub use model::{ModelSpec, TextModel, TokenInfo, Truncation};

static ORT_LIBRARY: OnceLock<String> = OnceLock::new();

/// Loads ONNX Runtime from `path` (an absolute path to libonnxruntime). Idempotent for the
/// same path; the first successful call wins for the life of the process.
pub fn init_onnxruntime(path: &str) -> Result<(), String> {
    if let Some(loaded) = ORT_LIBRARY.get() {
        return if loaded == path { Ok(()) } else { Err(format!("ONNX Runtime is already loaded from {loaded}")) };
    }
    if !std::path::Path::new(path).is_absolute() {
        // ort resolves relative paths against the executable (the Python interpreter's dir).
        return Err(format!("the ONNX Runtime library path must be absolute, got {path}"));
    }
    let builder = ort::init_from(path).map_err(|e| format!("cannot load ONNX Runtime from {path}: {e}"))?;
    builder.with_name("lora-router").commit();
    let _ = ORT_LIBRARY.set(path.to_string());
    Ok(())
}

pub fn onnxruntime_loaded() -> bool {
    ORT_LIBRARY.get().is_some()
}

#[cfg(test)]
pub mod testing {
    //! The tiny random-weight fixture (tests/fixtures/tiny-encoder) and ONNX Runtime, for unit
    //! tests. `scripts/test` sets ORT_DYLIB_PATH to the onnxruntime wheel's library.

    use super::ModelSpec;

    pub fn init() {
        let path = std::env::var("ORT_DYLIB_PATH").expect(
            "ORT_DYLIB_PATH must name libonnxruntime for these tests (scripts/test sets it from the onnxruntime wheel)",
        );
        super::init_onnxruntime(&path).expect("ONNX Runtime loads");
    }

    pub fn fixture_spec(max_tokens: usize) -> ModelSpec {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-encoder");
        ModelSpec {
            name: "tiny-encoder".into(),
            model: format!("{dir}/model.onnx"),
            tokenizer: format!("{dir}/tokenizer.json"),
            max_tokens,
            truncation: super::Truncation::HeadTail,
            sessions: 2,
            intra_threads: 1,
        }
    }
}
