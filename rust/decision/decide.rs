//! From a parsed request to a `Decision`. Explicit names resolve directly (with the alias
//! spellings clients use elsewhere); `MoM`/`auto` runs the signals in plan order and the first
//! that reaches its threshold picks the category, else the default category serves.

use std::sync::Arc;

use crate::errors::RouterError;
use crate::plan::{ModelRef, Plan, Target};
use crate::request::{RequestView, Requested};
use crate::signals::SignalResult;

use super::{Classifier, Decision};

pub async fn decide(plan: &Plan, view: &RequestView) -> Result<Decision, RouterError> {
    match requested(plan, view) {
        Requested::Named(name) => explicit(plan, name),
        Requested::Auto => Ok(classify(plan, &view.classify_text(plan.classify_messages)).await),
    }
}

/// LoRAX's `adapter_id` wins over `model`; a missing model or a virtual one means "choose".
fn requested<'a>(plan: &Plan, view: &'a RequestView) -> Requested<'a> {
    if let Some(adapter) = view.adapter_id() {
        return Requested::Named(adapter);
    }
    match view.model() {
        None => Requested::Auto,
        Some(m) if m.is_empty() || plan.is_virtual_model(m) => Requested::Auto,
        Some(m) => Requested::Named(m),
    }
}

/// Resolves a client's model name: an adapter or base model by its own name, or the
/// `base:adapter` (Ray Serve, SGLang) and `base@adapter` spellings of an adapter.
pub fn resolve_model(plan: &Plan, name: &str) -> Option<ModelRef> {
    if let Some(r) = plan.models.get(name) {
        return Some(r.clone());
    }
    for sep in [':', '@'] {
        if let Some((base, adapter)) = name.split_once(sep) {
            if let (Some(ModelRef::Base(b)), Some(r @ ModelRef::Adapter { base: ab, .. })) =
                (plan.models.get(base), plan.models.get(adapter))
            {
                if b == ab {
                    return Some(r.clone());
                }
            }
        }
    }
    None
}

fn explicit(plan: &Plan, name: &str) -> Result<Decision, RouterError> {
    let target = match resolve_model(plan, name) {
        Some(ModelRef::Base(base)) => {
            Target { base, adapter: None, score: 1.0, use_reasoning: None, reasoning_effort: Arc::from("") }
        }
        Some(ModelRef::Adapter { base, name }) => {
            Target { base, adapter: Some(name), score: 1.0, use_reasoning: None, reasoning_effort: Arc::from("") }
        }
        None => return Err(RouterError::model_not_found(name)),
    };
    Ok(Decision {
        classifier: Classifier::Explicit,
        category: None,
        confidence: 1.0,
        target,
        system_prompt: None,
        signals: Vec::new(),
    })
}

/// Runs the signals in order; the first that decides wins. Always succeeds: with no decision
/// the default category serves.
pub async fn classify(plan: &Plan, text: &str) -> Decision {
    let mut results: Vec<SignalResult> = Vec::with_capacity(plan.signals.len());
    let mut winner: Option<(usize, f32, Classifier)> = None;
    for signal in &plan.signals {
        if winner.is_some() && !plan.evaluate_all_signals {
            results.push(signal.skipped());
            continue;
        }
        let r = signal.evaluate(plan, text).await;
        if let (true, None, Some(c)) = (r.decided, &winner, r.category) {
            winner = Some((c, r.confidence, Classifier::Signal(r.signal.clone())));
        }
        results.push(r);
    }
    let (category, confidence, classifier) = winner.unwrap_or((plan.default_category, 0.0, Classifier::Default));
    for_category(plan, category, confidence, classifier, results)
}

pub fn for_category(
    plan: &Plan,
    category: usize,
    confidence: f32,
    classifier: Classifier,
    signals: Vec<SignalResult>,
) -> Decision {
    let c = &plan.categories[category];
    Decision {
        classifier,
        category: Some(category),
        confidence,
        target: c.targets[0].clone(),
        system_prompt: c.system_prompt.clone().map(|p| (p, c.system_prompt_mode)),
        signals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing;
    use crate::request::ApiKind;

    fn view(body: &str) -> RequestView {
        RequestView::parse(ApiKind::Chat, body.as_bytes()).unwrap()
    }

    fn run(plan: &Plan, body: &str) -> Result<Decision, RouterError> {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(decide(plan, &view(body)))
    }

    #[test]
    fn keyword_routes_and_default_falls_back() {
        let plan = testing::plan();
        let d =
            run(&plan, r#"{"model":"MoM","messages":[{"role":"user","content":"Fix my rust borrow error"}]}"#).unwrap();
        assert_eq!(d.category_name(&plan), "technical");
        assert_eq!(d.adapter(), "tech-lora");
        assert_eq!(d.classifier.name(), "keyword");
        let d = run(&plan, r#"{"messages":[{"role":"user","content":"What should I cook tonight?"}]}"#).unwrap();
        assert_eq!(d.category_name(&plan), "general");
        assert_eq!(d.adapter(), "");
        assert_eq!(d.classifier.name(), "default");
        assert_eq!(d.signals.len(), 1);
    }

    #[test]
    fn aliases_normalise() {
        let plan = testing::plan();
        for name in ["tech-lora", "base:tech-lora", "base@tech-lora"] {
            let d =
                run(&plan, &format!(r#"{{"model":"{name}","messages":[{{"role":"user","content":"hi"}}]}}"#)).unwrap();
            assert_eq!(d.adapter(), "tech-lora", "{name}");
            assert_eq!(d.classifier, Classifier::Explicit);
        }
        let d = run(&plan, r#"{"model":"base","adapter_id":"legal-lora","messages":[{"role":"user","content":"hi"}]}"#)
            .unwrap();
        assert_eq!(d.adapter(), "legal-lora");
        let d = run(&plan, r#"{"model":"base","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(d.adapter(), "");
        for bad in ["nope", "other:tech-lora", "base@nope", "tech-lora:base"] {
            let e = run(&plan, &format!(r#"{{"model":"{bad}","messages":[{{"role":"user","content":"hi"}}]}}"#))
                .unwrap_err();
            assert_eq!(e.status().as_u16(), 404, "{bad}");
        }
    }
}
