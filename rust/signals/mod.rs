//! Signals turn a request's text into a vote for a category. They run in the plan's order;
//! the first whose confidence reaches its threshold decides (decision/decide.rs).
//!
//! In: the classification text. Out: a `SignalResult` per signal evaluated, kept whole for the
//! decision record and the audit log.

pub mod keyword;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::plan::{Plan, PlanError, SignalSpec};
pub use keyword::KeywordSignal;

pub enum Signal {
    Keyword(KeywordSignal),
}

impl Signal {
    pub fn build(spec: &SignalSpec, categories: &HashMap<String, usize>, path: &str) -> Result<Signal, PlanError> {
        match spec {
            SignalSpec::Keyword { rules } => Ok(Signal::Keyword(KeywordSignal::build(rules, categories, path)?)),
        }
    }

    /// The name recorded in `x-lora-router-classifier` when this signal decides.
    pub fn name(&self) -> &str {
        match self {
            Signal::Keyword(_) => "keyword",
        }
    }

    pub async fn evaluate(&self, plan: &Plan, text: &str) -> SignalResult {
        match self {
            Signal::Keyword(k) => k.evaluate(plan, text),
        }
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
}

#[derive(Debug, Clone)]
pub enum Evidence {
    None,
    /// Keyword rules that matched: (category, keywords found; empty for a NOR rule).
    Keywords(Vec<(usize, Vec<Arc<str>>)>),
}

impl SignalResult {
    pub fn to_json(&self, plan: &Plan) -> Value {
        let mut v = json!({
            "signal": &*self.signal,
            "category": self.category.map(|c| plan.category_name(c)),
            "confidence": self.confidence,
            "decided": self.decided,
        });
        match &self.evidence {
            Evidence::None => {}
            Evidence::Keywords(rules) => {
                v["matched"] = rules
                    .iter()
                    .map(|(c, kws)| json!({"category": plan.category_name(*c), "keywords": kws.iter().map(|k| &**k).collect::<Vec<_>>()}))
                    .collect();
            }
        }
        v
    }
}
