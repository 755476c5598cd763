//! The embedding classifier: each category's examples (and description) are embedded when the
//! plan is compiled; a request's text is embedded and compared by cosine similarity, either to
//! each category's centroid (by default after whitening, see whiten.rs) or to its `k` nearest
//! texts. Similarities become confidences with a softmax at the model's temperature
//! (similarity scales differ several-fold between models, so the threshold and margin are
//! defined on the calibrated scale).

use std::collections::HashMap;
use std::sync::Arc;

use super::whiten::Whitener;
use super::{softmax, top_n, Evidence, Score, SignalResult};
use crate::inference::{model::normalize, registry, TextModel};
use crate::plan::{EmbeddingMethod, Plan, PlanError, SignalSpec};

pub struct EmbeddingSignal {
    model: Arc<TextModel>,
    method: EmbeddingMethod,
    k: usize,
    temperature: f32,
    threshold: f32,
    margin: f32,
    /// Category index for each row of `centroids`.
    categories: Vec<usize>,
    centroids: Vec<Arc<[f32]>>,
    /// (row in `categories`, embedding) of every text.
    texts: Vec<(usize, Arc<[f32]>)>,
    /// Set when centroids are compared in the whitened space.
    whitener: Option<Whitener>,
    name: Arc<str>,
}

impl EmbeddingSignal {
    pub fn build(spec: &SignalSpec, index: &HashMap<String, usize>, path: &str) -> Result<EmbeddingSignal, PlanError> {
        let SignalSpec::Embedding {
            model,
            method,
            k,
            whiten,
            temperature,
            cosine_temperature,
            threshold,
            margin,
            categories: cats,
        } = spec
        else {
            return Err(PlanError::new(path, "not an embedding signal"));
        };
        let loaded = registry::get_or_load(model).map_err(|e| PlanError::new(format!("{path}.model"), e))?;
        let mut categories = Vec::new();
        let mut groups: Vec<Vec<Arc<[f32]>>> = Vec::new();
        for (i, c) in cats.iter().enumerate() {
            let cat = *index.get(&c.category).ok_or_else(|| {
                PlanError::new(format!("{path}.categories[{i}].category"), format!("unknown category '{}'", c.category))
            })?;
            let wanted: Vec<String> = c.texts.iter().filter(|t| !t.trim().is_empty()).cloned().collect();
            if wanted.is_empty() {
                return Err(PlanError::new(
                    format!("{path}.categories[{i}].texts"),
                    "a category needs a description or examples",
                ));
            }
            let embs = loaded.embed_all(&wanted).map_err(|e| PlanError::new(format!("{path}.categories[{i}]"), e))?;
            categories.push(cat);
            groups.push(embs);
        }
        if categories.is_empty() {
            return Err(PlanError::new(format!("{path}.categories"), "no category to compare with"));
        }
        let whitener = if *whiten && *method == EmbeddingMethod::Centroid {
            Whitener::fit(&groups.iter().map(|g| g.iter().map(|e| &e[..]).collect()).collect::<Vec<_>>())
        } else {
            None
        };
        let centroids = groups
            .iter()
            .map(|g| {
                let mut mean = vec![0f32; g[0].len()];
                for e in g {
                    mean.iter_mut().zip(e.iter()).for_each(|(m, x)| *m += x / g.len() as f32);
                }
                Arc::from(match &whitener {
                    Some(w) => w.apply(&mean),
                    None => normalize(mean),
                })
            })
            .collect();
        let texts = groups.into_iter().enumerate().flat_map(|(row, g)| g.into_iter().map(move |e| (row, e))).collect();
        Ok(EmbeddingSignal {
            model: loaded,
            method: *method,
            k: (*k).max(1),
            temperature: if whitener.is_some() { *temperature } else { *cosine_temperature } as f32,
            threshold: *threshold as f32,
            margin: *margin as f32,
            categories,
            centroids,
            texts,
            whitener,
            name: Arc::from("embedding"),
        })
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether centroids are compared in the whitened space, and with what shrinkage.
    pub fn whitening(&self) -> Option<f64> {
        self.whitener.as_ref().map(|w| w.shrinkage)
    }

    /// Per-category similarity of a normalised embedding.
    pub fn similarities(&self, query: &[f32]) -> Vec<f32> {
        let whitened;
        let query = match &self.whitener {
            Some(w) => {
                whitened = w.apply(query);
                &whitened[..]
            }
            None => query,
        };
        let dot = |v: &[f32]| v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>();
        match self.method {
            EmbeddingMethod::Centroid => self.centroids.iter().map(|c| dot(c)).collect(),
            EmbeddingMethod::Knn => {
                let mut per: Vec<Vec<f32>> = vec![Vec::new(); self.categories.len()];
                for (row, e) in &self.texts {
                    per[*row].push(dot(e));
                }
                per.into_iter()
                    .map(|mut s| {
                        s.sort_by(|a, b| b.total_cmp(a));
                        let n = s.len().min(self.k);
                        s[..n].iter().sum::<f32>() / n as f32
                    })
                    .collect()
            }
        }
    }

    pub async fn evaluate(&self, plan: &Plan, text: &str) -> SignalResult {
        if text.trim().is_empty() {
            return SignalResult::abstain(self.name.clone(), Evidence::None);
        }
        let (embedding, tokens) = match self.model.infer_async(text.to_string()).await {
            Ok(x) => x,
            Err(e) => return SignalResult::abstain(self.name.clone(), Evidence::Error(e)),
        };
        let sims = self.similarities(&normalize(embedding));
        let probs = softmax(&sims, self.temperature);
        let order = top_n(&probs, 3);
        let (best, p1) = (order[0], probs[order[0]]);
        let p2 = order.get(1).map(|&i| probs[i]).unwrap_or(0.0);
        let scores = order
            .iter()
            .map(|&i| Score {
                label: plan.categories[self.categories[i]].name.clone(),
                category: Some(self.categories[i]),
                raw: sims[i],
                probability: probs[i],
            })
            .collect();
        SignalResult {
            signal: self.name.clone(),
            category: Some(self.categories[best]),
            confidence: p1,
            decided: p1 >= self.threshold && p1 - p2 >= self.margin,
            evidence: Evidence::Scores(scores),
            tokens: Some(tokens),
            elapsed_us: 0,
            hints: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inference::testing;
    use crate::plan::{testing as plan_testing, Plan};
    use crate::signals::{Evidence, Signal};

    fn plan(whiten: bool, examples: &[&[&str]; 2]) -> Plan {
        testing::init();
        let mut spec = plan_testing::spec_json();
        let model = serde_json::to_value(testing::fixture_spec(32)).unwrap();
        spec["signals"] = serde_json::json!([{
            "type": "embedding", "model": model, "method": "centroid", "k": 3, "whiten": whiten,
            "temperature": 0.05, "cosine_temperature": 0.05, "threshold": 0.0, "margin": 0.0,
            "categories": [{"category": "technical", "texts": examples[0]}, {"category": "legal", "texts": examples[1]}]
        }]);
        Plan::from_json(&spec.to_string(), &crate::state::LiveState::local()).unwrap()
    }

    #[test]
    fn scores_every_category_and_reports_tokens() {
        let p = plan(
            true,
            &[
                &["python code bug", "rust compile error", "java function test"],
                &["contract law court", "lease bank loan"],
            ],
        );
        let Signal::Embedding(e) = &p.signals[0] else { panic!("embedding signal expected") };
        assert!(e.whitening().is_some());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // An example itself is most similar to its own category.
        let r = rt.block_on(e.evaluate(&p, "python code bug"));
        assert_eq!(r.category, Some(0));
        assert!(r.decided);
        assert_eq!(r.tokens.unwrap().tokens, 5);
        let Evidence::Scores(scores) = &r.evidence else { panic!("scores expected") };
        assert_eq!(scores.len(), 2);
        assert!((scores.iter().map(|s| s.probability).sum::<f32>() - 1.0).abs() < 1e-4);
        // Blank text abstains.
        assert!(!rt.block_on(e.evaluate(&p, "   ")).decided);
    }

    #[test]
    fn descriptions_only_use_plain_cosine() {
        let p = plan(true, &[&["programming questions"], &["legal questions"]]);
        let Signal::Embedding(e) = &p.signals[0] else { panic!("embedding signal expected") };
        assert!(e.whitening().is_none());
    }

    #[test]
    fn a_category_without_text_is_a_plan_error() {
        testing::init();
        let mut spec = plan_testing::spec_json();
        spec["signals"] = serde_json::json!([{
            "type": "embedding", "model": serde_json::to_value(testing::fixture_spec(32)).unwrap(), "method": "centroid",
            "k": 3, "whiten": true, "temperature": 0.05, "cosine_temperature": 0.05, "threshold": 0.0, "margin": 0.0,
            "categories": [{"category": "technical", "texts": ["  "]}, {"category": "legal", "texts": ["x"]}]
        }]);
        let err = Plan::from_json(&spec.to_string(), &crate::state::LiveState::local()).err().unwrap();
        assert_eq!(err.path, "signals[0].categories[0].texts");
    }
}
