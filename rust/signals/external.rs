//! Classifiers that live outside the native core: custom Python classifiers and the MCP
//! classifier (python/lora_router/plugins). The core sees them through `ExternalClassifier`
//! (implemented in py/classifier.rs) and knows nothing of Python.
//!
//! Failure rule, in one place (`evaluate`): an answer of `None` abstains; an error, a timeout
//! or an answer naming an unknown category also abstains, and is recorded (and counted) as an
//! error. An external classifier never fails a request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{Evidence, Hints, SignalInput, SignalResult};
use crate::plan::{Plan, PlanError};

/// What a request gives an external classifier (owned: it crosses threads).
#[derive(Debug, Clone)]
pub struct ExternalInput {
    pub text: String,
    /// The request's `messages` as JSON (`[]` for completions).
    pub messages_json: String,
    /// Lower-cased request headers, without credentials.
    pub headers: Vec<(String, String)>,
    pub tenant: Option<String>,
}

/// An external classifier's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalAnswer {
    pub category: String,
    pub confidence: f32,
    /// A base model or adapter to use instead of the category's model_scores.
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub use_reasoning: Option<bool>,
}

pub type ExternalFuture = Pin<Box<dyn Future<Output = Result<Option<ExternalAnswer>, String>> + Send>>;

pub trait ExternalClassifier: Send + Sync {
    /// Starts classifying one request. The future resolves to the answer, `None` to abstain, or
    /// an error message.
    fn classify(&self, input: ExternalInput) -> ExternalFuture;

    /// A one-word state for `/health` (e.g. "connected"), if the classifier has one.
    fn status(&self) -> Option<String> {
        None
    }
}

/// External classifiers by signal name (`custom:<name>`, `mcp`), handed to `Plan::compile`.
pub type Externals = HashMap<String, Arc<dyn ExternalClassifier>>;

pub struct ExternalSignal {
    name: Arc<str>,
    classifier: Arc<dyn ExternalClassifier>,
    timeout: Duration,
    threshold: f32,
}

impl ExternalSignal {
    pub fn build(
        name: &str,
        timeout_ms: u64,
        threshold: f64,
        externals: &Externals,
        path: &str,
    ) -> Result<Self, PlanError> {
        let classifier = externals
            .get(name)
            .cloned()
            .ok_or_else(|| PlanError::new(format!("{path}.name"), format!("no classifier registered as '{name}'")))?;
        Ok(ExternalSignal {
            name: Arc::from(name),
            classifier,
            timeout: Duration::from_millis(timeout_ms),
            threshold: threshold as f32,
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn classifier(&self) -> &Arc<dyn ExternalClassifier> {
        &self.classifier
    }

    pub async fn evaluate(&self, plan: &Plan, input: &SignalInput<'_>) -> SignalResult {
        let abstain = |e: Evidence| SignalResult::abstain(self.name.clone(), e);
        let answer = match tokio::time::timeout(self.timeout, self.classifier.classify(input.external())).await {
            Err(_) => return abstain(Evidence::Error(format!("timed out after {} ms", self.timeout.as_millis()))),
            Ok(Err(e)) => return abstain(Evidence::Error(e)),
            Ok(Ok(None)) => return abstain(Evidence::None),
            Ok(Ok(Some(a))) => a,
        };
        let Some(&category) = plan.category_index.get(&answer.category) else {
            return abstain(Evidence::Error(format!("answered with unknown category '{}'", answer.category)));
        };
        if !answer.confidence.is_finite() {
            return abstain(Evidence::Error("answered with a confidence that is not a number".into()));
        }
        let confidence = answer.confidence.clamp(0.0, 1.0);
        let hints =
            Hints { model: answer.model, system_prompt: answer.system_prompt, use_reasoning: answer.use_reasoning };
        SignalResult {
            signal: self.name.clone(),
            category: Some(category),
            confidence,
            decided: confidence >= self.threshold,
            evidence: Evidence::None,
            tokens: None,
            elapsed_us: 0,
            hints: (!hints.is_empty()).then_some(hints),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing;
    use crate::request::{ApiKind, RequestView};

    /// Answers by the text: the rule under test is what the signal makes of each answer.
    struct ByText;

    impl ExternalClassifier for ByText {
        fn classify(&self, input: ExternalInput) -> ExternalFuture {
            Box::pin(async move {
                let answer = |category: &str, confidence: f32| ExternalAnswer {
                    category: category.into(),
                    confidence,
                    model: Some("legal-lora".into()),
                    system_prompt: None,
                    use_reasoning: None,
                };
                match input.text.as_str() {
                    "legal" => Ok(Some(answer("legal", 0.9))),
                    "unsure" => Ok(Some(answer("legal", 0.3))),
                    "nan" => Ok(Some(answer("legal", f32::NAN))),
                    "astrology" => Ok(Some(answer("astrology", 1.0))),
                    "fails" => Err("KeyError: 'db'".into()),
                    "hangs" => std::future::pending().await,
                    _ => Ok(None),
                }
            })
        }
    }

    fn evaluate(text: &str) -> SignalResult {
        let plan = testing::plan();
        let externals: Externals = [("custom:t".to_string(), Arc::new(ByText) as Arc<dyn ExternalClassifier>)].into();
        let signal = ExternalSignal::build("custom:t", 20, 0.5, &externals, "signals[0]").unwrap();
        let view = RequestView::parse(ApiKind::Chat, br#"{"messages": [{"role": "user", "content": "x"}]}"#).unwrap();
        let input = SignalInput { text, view: &view, headers: &[], tenant: None };
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(signal.evaluate(&plan, &input))
    }

    #[test]
    fn answers_decide_by_threshold_and_carry_hints() {
        let r = evaluate("legal");
        assert!(r.decided && r.category.is_some() && r.confidence == 0.9);
        assert_eq!(r.hints.and_then(|h| h.model).as_deref(), Some("legal-lora"));
        let r = evaluate("unsure");
        assert!(!r.decided && r.category.is_some());
        let r = evaluate("nothing");
        assert!(!r.decided && r.category.is_none() && matches!(r.evidence, Evidence::None));
    }

    #[test]
    fn every_failure_abstains_with_its_reason() {
        for (text, reason) in [
            ("fails", "KeyError: 'db'"),
            ("hangs", "timed out after 20 ms"),
            ("astrology", "unknown category 'astrology'"),
            ("nan", "not a number"),
        ] {
            let r = evaluate(text);
            assert!(!r.decided && r.category.is_none(), "{text}");
            match r.evidence {
                Evidence::Error(e) => assert!(e.contains(reason), "{text}: {e}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_unregistered_name_is_a_plan_error() {
        let e = ExternalSignal::build("custom:missing", 20, 0.5, &Externals::new(), "signals[2]").err().unwrap();
        assert!(e.to_string().contains("signals[2].name"), "{e}");
    }
}
