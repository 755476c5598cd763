//! The decision: which category, base model, adapter, system prompt and reasoning setting a
//! request gets, and why. `decide` computes it (the data plane, `/v1/classify` and the Python
//! `Router.classify` all call the same function); `rewrite` applies it to the request body.

pub mod decide;
pub mod rewrite;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::plan::{Plan, SystemPromptMode, Target};
use crate::signals::SignalResult;
use crate::tenants::experiments::Assignment;
pub use decide::{decide, RequestContext};
pub use rewrite::rewrite;

/// Who made the decision, as written in `x-lora-router-classifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classifier {
    /// The client named a model or adapter.
    Explicit,
    /// No signal reached its threshold.
    Default,
    /// A signal decided (`keyword`, `embedding`, `custom:<name>`, ...).
    Signal(Arc<str>),
}

impl Classifier {
    pub fn name(&self) -> &str {
        match self {
            Classifier::Explicit => "explicit",
            Classifier::Default => "default",
            Classifier::Signal(s) => s,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub classifier: Classifier,
    /// None for explicit requests.
    pub category: Option<usize>,
    pub confidence: f32,
    pub target: Target,
    pub system_prompt: Option<(Arc<str>, SystemPromptMode)>,
    /// Every signal that ran, in order, not only the winner.
    pub signals: Vec<SignalResult>,
    /// What became of the deciding classifier's suggestions (model, prompt, reasoning).
    pub hints: Vec<HintNote>,
    /// The experiment arm that replaced the adapter, if any.
    pub experiment: Option<Assignment>,
}

/// One suggestion of the deciding classifier and what the router did with it.
#[derive(Debug, Clone, PartialEq)]
pub struct HintNote {
    /// e.g. `model acme-lora: applied`.
    pub text: String,
    /// The router could not honour it (an unknown model); the data plane logs these.
    pub ignored: bool,
}

impl Decision {
    pub fn new(classifier: Classifier, category: Option<usize>, confidence: f32, target: Target) -> Decision {
        Decision {
            classifier,
            category,
            confidence,
            target,
            system_prompt: None,
            signals: Vec::new(),
            hints: Vec::new(),
            experiment: None,
        }
    }

    pub fn category_name<'a>(&self, plan: &'a Plan) -> &'a str {
        self.category.map(|c| plan.category_name(c)).unwrap_or("")
    }

    pub fn adapter(&self) -> &str {
        self.target.adapter.as_deref().unwrap_or("")
    }

    /// Whether rewrite writes a reasoning setting: only when the router chose the target.
    pub fn use_reasoning(&self) -> Option<bool> {
        match self.classifier {
            Classifier::Explicit => None,
            _ => self.target.use_reasoning,
        }
    }

    /// Whether a model-based signal saw only part of the text (never silent: it is in the
    /// decision JSON, the audit log and the `x-lora-router-truncated` header).
    pub fn truncated(&self) -> bool {
        self.signals.iter().any(|s| s.tokens.is_some_and(|t| t.truncated))
    }

    /// The decision as JSON, the same for `/v1/classify`, the CLI and the audit log.
    pub fn to_json(&self, plan: &Plan) -> Value {
        json!({
            "category": self.category.map(|c| plan.category_name(c)),
            "confidence": self.confidence,
            "classifier": self.classifier.name(),
            "model": plan.upstream_model(&self.target),
            "base_model": &*plan.bases[self.target.base].name,
            "adapter": self.target.adapter.as_deref(),
            "use_reasoning": self.use_reasoning(),
            "reasoning_effort": self.use_reasoning().filter(|u| *u).map(|_| &*self.target.reasoning_effort),
            "system_prompt": self.system_prompt.as_ref().map(|(p, _)| &**p),
            "truncated": self.truncated(),
            "hints": self.hints.iter().map(|h| h.text.as_str()).collect::<Vec<_>>(),
            "experiment": self.experiment.as_ref().map(|e| e.label()),
            "signals": self.signals.iter().map(|s| s.to_json(plan)).collect::<Vec<_>>(),
        })
    }
}
