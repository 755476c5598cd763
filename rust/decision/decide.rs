//! From a parsed request to a `Decision`. Explicit names resolve directly (with the alias
//! spellings clients use elsewhere); `MoM`/`auto` runs the signals in plan order and the first
//! that reaches its threshold picks the category, else the default category serves. An
//! external classifier that decides may also suggest a model or adapter, a system prompt and
//! a reasoning setting; suggestions the router cannot honour are recorded, not applied.

use std::sync::Arc;

use crate::errors::RouterError;
use crate::plan::{ModelRef, Plan, Target};
use crate::request::{RequestView, Requested};
use crate::signals::{Hints, SignalInput, SignalResult};

use super::{Classifier, Decision, HintNote};

/// What the router knows about a request besides its body.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Lower-cased request headers, without credentials (authorization, cookies).
    pub headers: Vec<(String, String)>,
    pub tenant: Option<Arc<str>>,
}

const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "x-api-key"];

impl RequestContext {
    pub fn from_headers(headers: &http::HeaderMap) -> RequestContext {
        let headers = headers
            .iter()
            .filter(|(name, _)| !CREDENTIAL_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
            .collect();
        RequestContext { headers, tenant: None }
    }

    /// From header pairs given by a caller (the offline `Router.classify`): lower-cased, and
    /// without credentials, as on the data plane.
    pub fn from_pairs(pairs: Vec<(String, String)>, tenant: Option<&str>) -> RequestContext {
        let headers = pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .filter(|(k, _)| !CREDENTIAL_HEADERS.contains(&k.as_str()))
            .collect();
        RequestContext { headers, tenant: tenant.map(Arc::from) }
    }
}

pub async fn decide(plan: &Plan, view: &RequestView, ctx: &RequestContext) -> Result<Decision, RouterError> {
    match requested(plan, view) {
        Requested::Named(name) => explicit(plan, name),
        Requested::Auto => {
            let text = view.classify_text(plan.classify_messages);
            let input = SignalInput { text: &text, view, headers: &ctx.headers, tenant: ctx.tenant.as_deref() };
            Ok(classify(plan, &input).await)
        }
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

fn target_for(r: ModelRef) -> Target {
    let (base, adapter) = match r {
        ModelRef::Base(base) => (base, None),
        ModelRef::Adapter { base, name } => (base, Some(name)),
    };
    Target { base, adapter, score: 1.0, use_reasoning: None, reasoning_effort: Arc::from("") }
}

fn explicit(plan: &Plan, name: &str) -> Result<Decision, RouterError> {
    let target = resolve_model(plan, name).map(target_for).ok_or_else(|| RouterError::model_not_found(name))?;
    Ok(Decision {
        classifier: Classifier::Explicit,
        category: None,
        confidence: 1.0,
        target,
        system_prompt: None,
        signals: Vec::new(),
        hints: Vec::new(),
    })
}

/// Runs the signals in order; the first that decides wins. Always succeeds: with no decision
/// the default category serves.
pub async fn classify(plan: &Plan, input: &SignalInput<'_>) -> Decision {
    let mut results: Vec<SignalResult> = Vec::with_capacity(plan.signals.len());
    let mut winner: Option<usize> = None;
    for signal in &plan.signals {
        if winner.is_some() && !plan.evaluate_all_signals {
            results.push(signal.skipped());
            continue;
        }
        let r = signal.evaluate(plan, input).await;
        if winner.is_none() && r.decided && r.category.is_some() {
            winner = Some(results.len());
        }
        results.push(r);
    }
    let Some(w) = winner else {
        return for_category(plan, plan.default_category, 0.0, Classifier::Default, results);
    };
    let (category, confidence, name, hints) = (
        results[w].category.expect("a deciding signal names a category"),
        results[w].confidence,
        results[w].signal.clone(),
        results[w].hints.clone(),
    );
    let mut decision = for_category(plan, category, confidence, Classifier::Signal(name), results);
    if let Some(h) = hints {
        apply_hints(plan, &mut decision, h);
    }
    decision
}

/// Honours an external classifier's suggestions: a model or adapter the router knows
/// replaces the category's target; a system prompt replaces the category's; a reasoning
/// setting replaces the target's. Each is recorded in `Decision::hints`.
fn apply_hints(plan: &Plan, d: &mut Decision, h: Hints) {
    if let Some(m) = h.model {
        match resolve_model(plan, &m) {
            Some(r) => {
                let keep = (d.target.use_reasoning, d.target.reasoning_effort.clone());
                d.target = target_for(r);
                (d.target.use_reasoning, d.target.reasoning_effort) = keep;
                d.hints.push(HintNote { text: format!("model {m}: applied"), ignored: false });
            }
            None => d.hints.push(HintNote {
                text: format!("model {m}: ignored, not a model or adapter this router serves"),
                ignored: true,
            }),
        }
    }
    if let Some(p) = h.system_prompt {
        let mode =
            d.category.map(|c| plan.categories[c].system_prompt_mode).unwrap_or(crate::plan::SystemPromptMode::Replace);
        d.system_prompt = Some((Arc::from(p.as_str()), mode));
        d.hints.push(HintNote { text: "system_prompt: applied".into(), ignored: false });
    }
    if let Some(u) = h.use_reasoning {
        d.target.use_reasoning = Some(u);
        d.hints.push(HintNote { text: format!("use_reasoning {u}: applied"), ignored: false });
    }
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
        hints: Vec::new(),
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
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(decide(
            plan,
            &view(body),
            &RequestContext::default(),
        ))
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

    #[test]
    fn hints_apply_when_known_and_are_recorded_when_not() {
        let plan = testing::plan();
        let mut d = for_category(&plan, 2, 0.9, Classifier::Default, vec![]);
        apply_hints(
            &plan,
            &mut d,
            Hints {
                model: Some("base@legal-lora".into()),
                system_prompt: Some("Be terse.".into()),
                use_reasoning: Some(true),
            },
        );
        assert_eq!(d.adapter(), "legal-lora");
        assert_eq!(d.system_prompt.as_ref().map(|p| &*p.0), Some("Be terse."));
        assert_eq!(d.target.use_reasoning, Some(true));
        let mut d = for_category(&plan, 2, 0.9, Classifier::Default, vec![]);
        apply_hints(&plan, &mut d, Hints { model: Some("someone-elses-lora".into()), ..Hints::default() });
        assert_eq!(d.adapter(), "");
        assert!(d.hints[0].ignored && d.hints[0].text.contains("someone-elses-lora"));
    }

    #[test]
    fn credentials_never_reach_classifiers() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer secret".parse().unwrap());
        h.insert("cookie", "a=b".parse().unwrap());
        h.insert("X-Tenant-Id", "acme".parse().unwrap());
        let ctx = RequestContext::from_headers(&h);
        assert_eq!(ctx.headers, vec![("x-tenant-id".to_string(), "acme".to_string())]);
    }
}
