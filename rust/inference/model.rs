//! A text model: tokenizer + ONNX session pool. Encoders (output `[1, dim]` embeddings, or
//! `[1, seq, dim]` hidden states that are mean-pooled here) and sequence classifiers (output
//! `[1, labels]` logits) share this code; callers interpret the vector.

use std::collections::HashMap;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;
use tokenizers::{
    DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer, TokenizerImpl,
};

use super::pool::Pool;
use super::unigram::CompactUnigram;

/// Where a model lives and how to run it (resolved by Python into the plan).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    /// Path to the ONNX file.
    pub model: String,
    /// Path to the Hugging Face `tokenizer.json`.
    pub tokenizer: String,
    /// Token budget per input, special tokens included.
    pub max_tokens: usize,
    pub truncation: Truncation,
    /// Sessions in the pool (concurrent inferences).
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
}

/// Which part of a long input the model sees.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    Head,
    Tail,
    HeadTail,
}

/// What tokenization did to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Tokens the model saw, special tokens included.
    pub tokens: usize,
    /// Tokens the whole input had, when it was tokenized whole (inputs far over the budget are
    /// cut by characters first, and their full count is not known).
    pub original_tokens: Option<usize>,
    pub truncated: bool,
}

/// The crate's tokenizer as tokenizer.json describes it, or the same pipeline around a compact
/// Unigram model (see unigram.rs) for Unigram vocabularies.
enum TextTokenizer {
    Crate(Box<Tokenizer>),
    Compact(
        Box<
            TokenizerImpl<CompactUnigram, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>,
        >,
    ),
}

impl TextTokenizer {
    fn load(path: &str) -> Result<TextTokenizer, String> {
        let err = |e: &dyn std::fmt::Display| format!("cannot load tokenizer {path}: {e}");
        let text = std::fs::read_to_string(path).map_err(|e| err(&e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(&e))?;
        let model = &json["model"];
        let compact = model["type"] == "Unigram"
            && !model["byte_fallback"].as_bool().unwrap_or(false)
            && json["added_tokens"].as_array().is_none_or(Vec::is_empty);
        if !compact {
            let mut t = Tokenizer::from_str(&text).map_err(|e| err(&e))?;
            // Some exports pin padding and truncation (MiniLM's says Fixed(128)); TextModel does both.
            t.with_padding(None);
            t.with_truncation(None).map_err(|e| err(&e))?;
            return Ok(TextTokenizer::Crate(Box::new(t)));
        }
        let vocab: Vec<(String, f64)> = serde_json::from_value(model["vocab"].clone()).map_err(|e| err(&e))?;
        let unk = model["unk_id"].as_u64().ok_or_else(|| err(&"a Unigram model needs an unk_id"))? as usize;
        let mut t = TokenizerImpl::new(CompactUnigram::new(&vocab, unk).map_err(|e| err(&e))?);
        fn part<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<Option<T>, serde_json::Error> {
            if v.is_null() {
                Ok(None)
            } else {
                serde_json::from_value(v.clone()).map(Some)
            }
        }
        t.with_normalizer(part::<NormalizerWrapper>(&json["normalizer"]).map_err(|e| err(&e))?).map_err(|e| err(&e))?;
        t.with_pre_tokenizer(part::<PreTokenizerWrapper>(&json["pre_tokenizer"]).map_err(|e| err(&e))?);
        t.with_post_processor(part::<PostProcessorWrapper>(&json["post_processor"]).map_err(|e| err(&e))?);
        t.with_decoder(part::<DecoderWrapper>(&json["decoder"]).map_err(|e| err(&e))?);
        Ok(TextTokenizer::Compact(Box::new(t)))
    }

    fn encode(&self, text: &str, specials: bool) -> Result<Vec<u32>, String> {
        let enc = match self {
            TextTokenizer::Crate(t) => t.encode(text, specials),
            TextTokenizer::Compact(t) => t.encode(text, specials),
        };
        enc.map(|e| e.get_ids().to_vec()).map_err(|e| format!("tokenization failed: {e}"))
    }
}

pub struct TextModel {
    pub spec: ModelSpec,
    tokenizer: TextTokenizer,
    prefix: Vec<i64>,
    suffix: Vec<i64>,
    sessions: Pool<Session>,
    permits: Arc<tokio::sync::Semaphore>,
    feeds_token_types: bool,
    /// Embeddings of texts computed while building plans (category examples), so a reload
    /// does not recompute them.
    cache: Mutex<HashMap<String, Arc<[f32]>>>,
}

impl TextModel {
    pub fn load(spec: ModelSpec) -> Result<TextModel, String> {
        if !super::onnxruntime_loaded() {
            return Err("ONNX Runtime is not loaded (call init_onnxruntime first)".into());
        }
        if spec.max_tokens < 4 || spec.sessions == 0 {
            return Err("max_tokens must be at least 4 and sessions at least 1".into());
        }
        let tokenizer = TextTokenizer::load(&spec.tokenizer)?;
        let (prefix, suffix) = special_tokens(&tokenizer)?;

        let mut sessions = Vec::with_capacity(spec.sessions);
        for _ in 0..spec.sessions {
            let s = Session::builder()
                .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
                // ONNX Runtime 1.31's fused SkipLayerNormalization kernel is ~5x slower than
                // Add + LayerNormalization on CPU at batch 1; without it multilingual-e5-small
                // takes 3.2 ms instead of 4.7 at 30 tokens (benches/signals_embedding.rs).
                .and_then(|b| Ok(b.with_disabled_optimizers("SkipLayerNormFusion")?))
                .and_then(|b| Ok(b.with_intra_threads(spec.intra_threads.max(1))?))
                .and_then(|mut b| b.commit_from_file(&spec.model))
                .map_err(|e| format!("cannot load ONNX model {}: {e}", spec.model))?;
            sessions.push(s);
        }
        let names: Vec<String> = sessions[0].inputs().iter().map(|i| i.name().to_string()).collect();
        for required in ["input_ids", "attention_mask"] {
            if !names.iter().any(|n| n == required) {
                return Err(format!("ONNX model {} has no input '{required}' (inputs: {names:?})", spec.model));
            }
        }
        if let Some(other) =
            names.iter().find(|n| !matches!(n.as_str(), "input_ids" | "attention_mask" | "token_type_ids"))
        {
            return Err(format!("ONNX model {} needs an input lora-router cannot feed: '{other}'", spec.model));
        }
        let feeds_token_types = names.iter().any(|n| n == "token_type_ids");
        let permits = Arc::new(tokio::sync::Semaphore::new(spec.sessions));
        Ok(TextModel {
            spec,
            tokenizer,
            prefix,
            suffix,
            sessions: Pool::new(sessions),
            permits,
            feeds_token_types,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Token ids for `text` within the budget, special tokens added.
    pub fn tokenize(&self, text: &str) -> Result<(Vec<i64>, TokenInfo), String> {
        let budget = self.spec.max_tokens.saturating_sub(self.prefix.len() + self.suffix.len()).max(1);
        // A token covers at least one character, so an input this long is certainly over
        // budget: cut it by characters first rather than tokenize all of it.
        let char_limit = budget * 12;
        let (content, original, truncated) = if text.chars().count() > char_limit {
            let content = match self.spec.truncation {
                Truncation::Head => self.encode(head_chars(text, char_limit), budget, Truncation::Head)?,
                Truncation::Tail => self.encode(tail_chars(text, char_limit), budget, Truncation::Tail)?,
                Truncation::HeadTail => {
                    let head = budget.div_ceil(2);
                    let mut ids = self.encode(head_chars(text, char_limit / 2), head, Truncation::Head)?;
                    ids.extend(self.encode(tail_chars(text, char_limit / 2), budget - head, Truncation::Tail)?);
                    ids
                }
            };
            (content, None, true)
        } else {
            let all = self.encode(text, usize::MAX, Truncation::Head)?;
            let n = all.len();
            (cut(all, budget, self.spec.truncation), Some(n + self.prefix.len() + self.suffix.len()), n > budget)
        };
        let mut ids = Vec::with_capacity(content.len() + self.prefix.len() + self.suffix.len());
        ids.extend_from_slice(&self.prefix);
        ids.extend(content);
        ids.extend_from_slice(&self.suffix);
        let info = TokenInfo { tokens: ids.len(), original_tokens: original, truncated };
        Ok((ids, info))
    }

    fn encode(&self, text: &str, budget: usize, keep: Truncation) -> Result<Vec<i64>, String> {
        let ids = self.tokenizer.encode(text, false)?.into_iter().map(i64::from).collect();
        Ok(cut(ids, budget, keep))
    }

    /// Runs the model on token ids; returns the output vector (pooled if the model returns
    /// per-token states). Blocking: call from a blocking thread.
    pub fn run(&self, ids: &[i64]) -> Result<Vec<f32>, String> {
        let n = ids.len();
        let mask = vec![1i64; n];
        let types = vec![0i64; n];
        self.sessions.with(|session| {
            let err = |e: ort::Error| format!("inference failed: {e}");
            let ids_t = TensorRef::from_array_view(([1usize, n], ids)).map_err(err)?;
            let mask_t = TensorRef::from_array_view(([1usize, n], mask.as_slice())).map_err(err)?;
            let outputs = if self.feeds_token_types {
                let types_t = TensorRef::from_array_view(([1usize, n], types.as_slice())).map_err(err)?;
                session.run(ort::inputs!["input_ids" => ids_t, "attention_mask" => mask_t, "token_type_ids" => types_t])
            } else {
                session.run(ort::inputs!["input_ids" => ids_t, "attention_mask" => mask_t])
            }
            .map_err(err)?;
            let (shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(err)?;
            match shape.len() {
                2 => Ok(data[..shape[1] as usize].to_vec()),
                3 => {
                    // Per-token states: mean over the sequence (every position is real at batch 1).
                    let (seq, dim) = (shape[1] as usize, shape[2] as usize);
                    let mut out = vec![0f32; dim];
                    for t in 0..seq {
                        for (o, v) in out.iter_mut().zip(&data[t * dim..(t + 1) * dim]) {
                            *o += v;
                        }
                    }
                    out.iter_mut().for_each(|o| *o /= seq.max(1) as f32);
                    Ok(out)
                }
                r => Err(format!("unexpected output rank {r} from {}", self.spec.model)),
            }
        })
    }

    /// Tokenize and run. Blocking.
    pub fn infer(&self, text: &str) -> Result<(Vec<f32>, TokenInfo), String> {
        let (ids, info) = self.tokenize(text)?;
        Ok((self.run(&ids)?, info))
    }

    /// Tokenize and run on a blocking thread, at most one inference per session at a time.
    pub async fn infer_async(self: &Arc<Self>, text: String) -> Result<(Vec<f32>, TokenInfo), String> {
        let _permit = self.permits.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let model = self.clone();
        tokio::task::spawn_blocking(move || model.infer(&text))
            .await
            .map_err(|e| format!("inference task failed: {e}"))?
    }

    /// L2-normalised embeddings of `texts`, computed on every session in parallel and cached
    /// by text. For building plans (category examples); blocking.
    pub fn embed_all(&self, texts: &[String]) -> Result<Vec<Arc<[f32]>>, String> {
        let mut out: Vec<Option<Arc<[f32]>>> = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            texts.iter().map(|t| cache.get(t).cloned()).collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        let workers = self.sessions.size().min(missing.len()).max(1);
        let chunks: Vec<Vec<usize>> =
            (0..workers).map(|w| missing.iter().copied().skip(w).step_by(workers).collect()).collect();
        type Part = Result<Vec<(usize, Arc<[f32]>)>, String>;
        let computed: Vec<Part> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|&i| self.infer(&texts[i]).map(|(v, _)| (i, Arc::from(normalize(v)))))
                            .collect::<Result<Vec<_>, String>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("embedding thread panicked".into()))).collect()
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for part in computed {
            for (i, v) in part? {
                cache.insert(texts[i].clone(), v.clone());
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(|v| v.expect("every text embedded")).collect())
    }
}

/// Keeps `budget` ids of `ids`: the head, the tail, or half of each.
fn cut(mut ids: Vec<i64>, budget: usize, keep: Truncation) -> Vec<i64> {
    if ids.len() <= budget {
        return ids;
    }
    match keep {
        Truncation::Head => {
            ids.truncate(budget);
            ids
        }
        Truncation::Tail => ids.split_off(ids.len() - budget),
        Truncation::HeadTail => {
            let head = budget.div_ceil(2);
            let mut out = ids[..head].to_vec();
            out.extend_from_slice(&ids[ids.len() - (budget - head)..]);
            out
        }
    }
}

fn head_chars(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn tail_chars(text: &str, n: usize) -> &str {
    let total = text.chars().count();
    if total <= n {
        return text;
    }
    match text.char_indices().nth(total - n) {
        Some((i, _)) => &text[i..],
        None => text,
    }
}

/// The special tokens the tokenizer's post-processor puts around one sequence, found by
/// comparing an encoding with and without them.
fn special_tokens(tokenizer: &TextTokenizer) -> Result<(Vec<i64>, Vec<i64>), String> {
    let probe = "probe";
    let bare: Vec<i64> = tokenizer.encode(probe, false)?.into_iter().map(i64::from).collect();
    let full: Vec<i64> = tokenizer.encode(probe, true)?.into_iter().map(i64::from).collect();
    let start = (0..=full.len().saturating_sub(bare.len()))
        .find(|&s| full[s..].starts_with(&bare))
        .ok_or("the tokenizer's post-processor rewrites the text tokens; lora-router cannot use it")?;
    Ok((full[..start].to_vec(), full[start + bare.len()..].to_vec()))
}

pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_the_right_part() {
        let ids: Vec<i64> = (0..10).collect();
        assert_eq!(cut(ids.clone(), 4, Truncation::Head), vec![0, 1, 2, 3]);
        assert_eq!(cut(ids.clone(), 4, Truncation::Tail), vec![6, 7, 8, 9]);
        assert_eq!(cut(ids.clone(), 5, Truncation::HeadTail), vec![0, 1, 2, 8, 9]);
        assert_eq!(cut(ids, 20, Truncation::HeadTail).len(), 10);
    }

    #[test]
    fn char_cuts_respect_boundaries() {
        assert_eq!(head_chars("合同条款abc", 2), "合同");
        assert_eq!(tail_chars("合同条款abc", 4), "款abc");
        assert_eq!(tail_chars("ab", 5), "ab");
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;
    use crate::inference::{registry, testing};

    fn model(max_tokens: usize, truncation: Truncation) -> TextModel {
        testing::init();
        TextModel::load(ModelSpec { truncation, ..testing::fixture_spec(max_tokens) }).unwrap()
    }

    #[test]
    fn adds_specials_and_reports_truncation() {
        let m = model(8, Truncation::Head);
        let (ids, info) = m.tokenize("hello").unwrap();
        assert_eq!((ids[0], *ids.last().unwrap()), (0, 2));
        assert!(!info.truncated);
        let long = "the a an and or of to in on for with";
        let (head, info) = m.tokenize(long).unwrap();
        assert_eq!(head.len(), 8);
        assert!(info.truncated);
        assert_eq!(info.original_tokens, Some(13));
        let tail = model(8, Truncation::Tail).tokenize(long).unwrap().0;
        let both = model(8, Truncation::HeadTail).tokenize(long).unwrap().0;
        assert_ne!(head, tail);
        assert_eq!(&both[1..4], &head[1..4]);
        assert_eq!(&both[4..7], &tail[4..7]);
    }

    #[test]
    fn very_long_inputs_are_cut_by_characters_first() {
        let m = model(16, Truncation::HeadTail);
        let text = "the ".repeat(10_000);
        let (ids, info) = m.tokenize(&text).unwrap();
        assert_eq!(ids.len(), 16);
        assert!(info.truncated && info.original_tokens.is_none());
    }

    #[test]
    fn embeds_normalised_vectors_concurrently() {
        let m = std::sync::Arc::new(model(64, Truncation::HeadTail));
        let one = normalize(m.infer("my code has a bug").unwrap().0);
        assert_eq!(one.len(), 32);
        assert!((one.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
        let texts: Vec<String> = (0..12).map(|i| format!("question {i} about python")).collect();
        let all = m.embed_all(&texts).unwrap();
        assert_eq!(all.len(), 12);
        let again = m.embed_all(&texts).unwrap();
        assert!(std::sync::Arc::ptr_eq(&all[3], &again[3]), "second call comes from the cache");
        assert_eq!(normalize(m.infer("question 3 about python").unwrap().0), all[3].to_vec());
    }

    #[test]
    fn registry_shares_loaded_models() {
        testing::init();
        let a = registry::get_or_load(&testing::fixture_spec(32)).unwrap();
        let b = registry::get_or_load(&testing::fixture_spec(32)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = registry::get_or_load(&testing::fixture_spec(48)).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn missing_files_are_clear_errors() {
        testing::init();
        let mut spec = testing::fixture_spec(32);
        spec.model = "/nonexistent/model.onnx".into();
        let err = TextModel::load(spec).err().unwrap();
        assert!(err.contains("/nonexistent/model.onnx"), "{err}");
    }
}
