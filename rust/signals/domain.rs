//! The domain classifier: a fine-tuned ONNX sequence classifier (Semantic Router's
//! `classifier.category_model`, or one `lora-router train` wrote) whose output labels map to
//! categories through its category_mapping.json. It decides when the top label's probability
//! reaches the configured threshold and the label is a category of this config.

use std::collections::HashMap;
use std::sync::Arc;

use super::{softmax, top_n, Evidence, Score, SignalResult};
use crate::inference::{registry, TextModel};
use crate::plan::{PlanError, SignalSpec};

pub struct DomainSignal {
    model: Arc<TextModel>,
    /// Label name and category for each output index.
    labels: Vec<(Arc<str>, Option<usize>)>,
    threshold: f32,
    name: Arc<str>,
}

impl DomainSignal {
    pub fn build(spec: &SignalSpec, index: &HashMap<String, usize>, path: &str) -> Result<DomainSignal, PlanError> {
        let SignalSpec::Domain { model, labels, threshold } = spec else {
            return Err(PlanError::new(path, "not a domain signal"));
        };
        let loaded = registry::get_or_load(model).map_err(|e| PlanError::new(format!("{path}.model"), e))?;
        let labels = labels
            .iter()
            .enumerate()
            .map(|(i, l)| match l {
                Some(name) => Ok((Arc::from(name.as_str()), index.get(name).copied())),
                None => Ok((Arc::from(format!("label-{i}")), None)),
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        Ok(DomainSignal { model: loaded, labels, threshold: *threshold as f32, name: Arc::from("domain") })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub async fn evaluate(&self, text: &str) -> SignalResult {
        if text.trim().is_empty() {
            return SignalResult::abstain(self.name.clone(), Evidence::None);
        }
        let (logits, tokens) = match self.model.infer_async(text.to_string()).await {
            Ok(x) => x,
            Err(e) => return SignalResult::abstain(self.name.clone(), Evidence::Error(e)),
        };
        if logits.len() != self.labels.len() {
            let msg = format!("the classifier returned {} scores for {} labels", logits.len(), self.labels.len());
            return SignalResult::abstain(self.name.clone(), Evidence::Error(msg));
        }
        let probs = softmax(&logits, 1.0);
        let order = top_n(&probs, 3);
        let best = order[0];
        let (_, category) = &self.labels[best];
        let scores = order
            .iter()
            .map(|&i| Score {
                label: self.labels[i].0.clone(),
                category: self.labels[i].1,
                raw: logits[i],
                probability: probs[i],
            })
            .collect();
        SignalResult {
            signal: self.name.clone(),
            category: *category,
            confidence: probs[best],
            decided: category.is_some() && probs[best] >= self.threshold,
            evidence: Evidence::Scores(scores),
            tokens: Some(tokens),
            elapsed_us: 0,
            hints: None,
        }
    }
}
