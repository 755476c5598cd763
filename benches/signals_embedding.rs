//! Text-model latency on one core, batch 1, tokenization included: what the embedding and
//! domain signals pay per request.
//!
//! Groups: a text of exactly 30, 128, 256 or 512 tokens (special tokens included; 512 is the
//! length vLLM Semantic Router quotes its CPU classifier at, 120 ms) for each shipped encoder, one session with one intra-op thread, this process
//! pinned to one core; and `tokenize_only` for the same inputs.
//!
//! Needs the models built (`lora-router models build`) and ORT_DYLIB_PATH naming the
//! onnxruntime wheel's libonnxruntime (scripts/bench-env prints both).
//! Run: `cargo bench --bench signals_embedding` (targets: e5 under 4.5 / 20 ms, MiniLM under
//! 3 / 11 ms at 30 / 128 tokens, p50).

mod common;

use std::time::Instant;

use lora_router::inference::{init_onnxruntime, ModelSpec, TextModel, Truncation};

const SENTENCE: &str = "My service written in Python times out under load and the logs show a stack trace from the \
database driver, so I suspect the connection pool is exhausted when the hourly batch job runs; how should I confirm it \
and what is the safest fix to roll out without downtime for our customers in Europe and Asia this week? ";

fn models_dir() -> std::path::PathBuf {
    std::env::var("LORA_ROUTER_MODELS").map(Into::into).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/lora-router/models")
    })
}

/// The shortest prefix of the sentence (repeated) that has at least `n` tokens; with the
/// model's budget set to `n`, it is run on exactly `n`.
fn text_of(model: &TextModel, n: usize) -> String {
    let words: Vec<&str> = SENTENCE.repeat(12).leak().split_whitespace().collect();
    for k in 1..words.len() {
        let t = words[..k].join(" ");
        if model.tokenize(&t).unwrap().1.original_tokens.unwrap_or(usize::MAX) >= n {
            return t;
        }
    }
    panic!("no prefix has {n} tokens");
}

fn time_ms(rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..10 {
        f();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[rounds / 2], samples[rounds * 99 / 100])
}

fn main() {
    common::procs::pin_self(&common::options().get("cpus").cloned().unwrap_or_else(|| "1".into()));
    let lib = std::env::var("ORT_DYLIB_PATH").expect("set ORT_DYLIB_PATH to the onnxruntime wheel's libonnxruntime");
    init_onnxruntime(&lib).unwrap();
    let mut results = serde_json::Map::new();
    println!("| model | tokens | p50 ms | p99 ms | tokenize p50 µs |");
    println!("|---|---:|---:|---:|---:|");
    for name in ["multilingual-e5-small", "all-minilm-l6-v2"] {
        let dir = models_dir().join(name);
        for n in [30usize, 128, 256, 512] {
            let spec = ModelSpec {
                name: name.into(),
                model: dir.join("model.onnx").display().to_string(),
                tokenizer: dir.join("tokenizer.json").display().to_string(),
                max_tokens: n,
                truncation: Truncation::Head,
                sessions: 1,
                intra_threads: 1,
            };
            let model = TextModel::load(spec).unwrap_or_else(|e| panic!("{e} (run `lora-router models build` first)"));
            let text = text_of(&model, n);
            assert_eq!(model.tokenize(&text).unwrap().0.len(), n);
            let rounds = match n {
                0..=100 => 300,
                101..=200 => 100,
                _ => 40,
            };
            let (p50, p99) = time_ms(rounds, || {
                std::hint::black_box(model.infer(std::hint::black_box(&text)).unwrap());
            });
            let (tok50, _) = time_ms(1000, || {
                std::hint::black_box(model.tokenize(std::hint::black_box(&text)).unwrap());
            });
            println!("| {name} | {n} | {p50:.2} | {p99:.2} | {:.1} |", tok50 * 1000.0);
            results.insert(
                format!("{name} {n} tokens"),
                serde_json::json!({"p50_ms": p50, "p99_ms": p99, "tokenize_p50_us": tok50 * 1000.0}),
            );
        }
    }
    common::write_results("signals_embedding", &results);
}
