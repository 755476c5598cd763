//! Signals turn a request's text into a vote for a category. They run in the plan's order;
//! the first whose confidence reaches its threshold decides (decision/decide.rs).
//!
//! In: the classification text. Out: a `SignalResult` per signal, kept whole for the decision
//! record and the audit log. A signal that fails (an inference error) abstains and says why;
//! it never fails the request.

pub mod domain;
pub mod embedding;
pub mod external;
pub mod keyword;
pub mod whiten;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::inference::TokenInfo;
use crate::plan::{Plan, PlanError, SignalSpec};
use crate::request::RequestView;
pub use domain::DomainSignal;
pub use embedding::EmbeddingSignal;
pub use external::{ExternalAnswer, ExternalClassifier, ExternalFuture, ExternalInput, ExternalSignal, Externals};
pub use keyword::KeywordSignal;

pub enum Signal {
    Keyword(KeywordSignal),
    Embedding(EmbeddingSignal),
    Domain(DomainSignal),
    /// A custom Python classifier or the MCP classifier.
    External(ExternalSignal),
}

/// What signals see of one request.
pub struct SignalInput<'a> {
    /// The text to classify (by the plan's message policy).
    pub text: &'a str,
    pub view: &'a RequestView,
    /// Lower-cased request headers, without credentials.
    pub headers: &'a [(String, String)],
    pub tenant: Option<&'a str>,
}

impl SignalInput<'_> {
    /// The owned copy an external classifier receives.
    pub fn external(&self) -> ExternalInput {
        let messages = self.view.body.get("messages").cloned().unwrap_or(Value::Array(Vec::new()));
        ExternalInput {
            text: self.text.to_string(),
            messages_json: messages.to_string(),
            headers: self.headers.to_vec(),
            tenant: self.tenant.map(str::to_string),
        }
    }
}

impl Signal {
    pub fn build(
        spec: &SignalSpec,
        categories: &HashMap<String, usize>,
        externals: &Externals,
        path: &str,
    ) -> Result<Signal, PlanError> {
        match spec {
            SignalSpec::Keyword { rules } => Ok(Signal::Keyword(KeywordSignal::build(rules, categories, path)?)),
            SignalSpec::Embedding { .. } => Ok(Signal::Embedding(EmbeddingSignal::build(spec, categories, path)?)),
            SignalSpec::Domain { .. } => Ok(Signal::Domain(DomainSignal::build(spec, categories, path)?)),
            SignalSpec::External { name, timeout_ms, threshold } => {
                Ok(Signal::External(ExternalSignal::build(name, *timeout_ms, *threshold, externals, path)?))
            }
        }
    }

    /// The name recorded in `x-lora-router-classifier` when this signal decides.
    pub fn name(&self) -> &Arc<str> {
        match self {
            Signal::Keyword(s) => s.name(),
            Signal::Embedding(s) => s.name(),
            Signal::Domain(s) => s.name(),
            Signal::External(s) => s.name(),
        }
    }

    pub async fn evaluate(&self, plan: &Plan, input: &SignalInput<'_>) -> SignalResult {
        let started = std::time::Instant::now();
        let mut r = match self {
            Signal::Keyword(k) => k.evaluate(plan, input.text),
            Signal::Embedding(e) => e.evaluate(plan, input.text).await,
            Signal::Domain(d) => d.evaluate(input.text).await,
            Signal::External(x) => x.evaluate(plan, input).await,
        };
        r.elapsed_us = started.elapsed().as_micros() as u64;
        r
    }

    /// The result recorded for a signal that did not run because an earlier one decided.
    pub fn skipped(&self) -> SignalResult {
        SignalResult::abstain(self.name().clone(), Evidence::Skipped)
    }
}

/// One signal's answer.
#[derive(Debug, Clone)]
pub struct SignalResult {
    pub signal: Arc<str>,
    /// The category this signal votes for, if any.
    pub category: Option<usize>,
    pub confidence: f32,
    /// Whether the vote reached the signal's threshold (so it may decide).
    pub decided: bool,
    pub evidence: Evidence,
    /// For model-based signals: what tokenization did, truncation included.
    pub tokens: Option<TokenInfo>,
    pub elapsed_us: u64,
    /// An external classifier's suggestions for the request it decided.
    pub hints: Option<Hints>,
}

/// What an external classifier may suggest beyond the category.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    /// A base model or adapter (any spelling `model` accepts) instead of the category's choice.
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub use_reasoning: Option<bool>,
}

impl Hints {
    pub fn is_empty(&self) -> bool {
        *self == Hints::default()
    }
}

#[derive(Debug, Clone)]
pub enum Evidence {
    None,
    /// Keyword rules that matched: (category, keywords found; empty for a NOR rule).
    Keywords(Vec<(usize, Vec<Arc<str>>)>),
    /// The best-scoring labels, highest first.
    Scores(Vec<Score>),
    /// Not evaluated: an earlier signal decided.
    Skipped,
    /// The signal failed and abstained.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct Score {
    pub label: Arc<str>,
    pub category: Option<usize>,
    /// Cosine similarity (embedding) or logit (domain).
    pub raw: f32,
    pub probability: f32,
}

impl SignalResult {
    pub fn abstain(signal: Arc<str>, evidence: Evidence) -> SignalResult {
        SignalResult {
            signal,
            category: None,
            confidence: 0.0,
            decided: false,
            evidence,
            tokens: None,
            elapsed_us: 0,
            hints: None,
        }
    }

    pub fn to_json(&self, plan: &Plan) -> Value {
        let mut v = json!({
            "signal": &*self.signal,
            "category": self.category.map(|c| plan.category_name(c)),
            "confidence": self.confidence,
            "decided": self.decided,
            "elapsed_us": self.elapsed_us,
        });
        match &self.evidence {
            Evidence::None => {}
            Evidence::Keywords(rules) => {
                v["matched"] = rules
                    .iter()
                    .map(|(c, kws)| json!({"category": plan.category_name(*c), "keywords": kws.iter().map(|k| &**k).collect::<Vec<_>>()}))
                    .collect();
            }
            Evidence::Scores(scores) => {
                v["scores"] = scores
                    .iter()
                    .map(|s| json!({"label": &*s.label, "category": s.category.map(|c| plan.category_name(c)), "score": s.raw, "probability": s.probability}))
                    .collect();
            }
            Evidence::Skipped => v["skipped"] = json!(true),
            Evidence::Error(e) => v["error"] = json!(e),
        }
        if let Some(h) = &self.hints {
            v["hints"] = json!({"model": h.model, "system_prompt": h.system_prompt, "use_reasoning": h.use_reasoning});
        }
        if let Some(t) = self.tokens {
            v["tokens"] = json!(t.tokens);
            v["truncated"] = json!(t.truncated);
            if let Some(o) = t.original_tokens {
                v["original_tokens"] = json!(o);
            }
        }
        v
    }
}

/// Softmax of `scores / temperature`.
pub fn softmax(scores: &[f32], temperature: f32) -> Vec<f32> {
    let t = temperature.max(1e-6);
    let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = scores.iter().map(|s| ((s - max) / t).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Indices of the `n` largest values, largest first.
pub fn top_n(values: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(n);
    idx
}

#[cfg(test)]
mod tests {
    #[test]
    fn softmax_and_top() {
        let p = super::softmax(&[0.9, 0.8, 0.1], 0.1);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(p[0] > p[1] && p[1] > p[2]);
        assert_eq!(super::top_n(&[0.1, 0.9, 0.5], 2), vec![1, 2]);
    }
}
