//! From a parsed request to a `Decision`. Explicit names resolve directly (with the alias
//! spellings clients use elsewhere, and the caller's own aliases); `MoM`/`auto` runs the
//! signals in plan order and the first that reaches its threshold picks the category, else
//! the default category serves. An external classifier that decides may also suggest a model
//! or adapter, a system prompt and a reasoning setting; suggestions the router cannot honour
//! are recorded, not applied.
//!
//! With tenants, a caller only ever gets what it may use: a name it may not use is answered
//! exactly like a name that does not exist, and intent routing picks among its own adapters.
//! Last, an experiment may give the request another arm (tenants/experiments.rs).

use std::sync::Arc;

use crate::errors::RouterError;
use crate::plan::{ModelRef, Plan, Target};
use crate::request::{RequestView, Requested};
use crate::signals::{Hints, SignalInput, SignalResult};
use crate::tenants::experiments::{self, StickyInput};
use crate::tenants::{Caller, Tenant};

use super::{Classifier, Decision, HintNote};

/// What the router knows about a request besides its body.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Lower-cased request headers, without credentials (authorization, cookies).
    pub headers: Vec<(String, String)>,
    /// Who is calling (with tenants configured).
    pub caller: Option<Caller>,
    /// A tenant name for classifiers when no tenants are configured (the offline
    /// `Router.classify(tenant=...)`): passed on, nothing enforced.
    pub tenant_name: Option<Arc<str>>,
}

const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "x-api-key"];

impl RequestContext {
    pub fn from_headers(headers: &http::HeaderMap, caller: Option<Caller>) -> RequestContext {
        let headers = headers
            .iter()
            .filter(|(name, _)| !CREDENTIAL_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
            .collect();
        RequestContext { headers, caller, tenant_name: None }
    }

    /// From header pairs given by a caller (the offline `Router.classify`): lower-cased, and
    /// without credentials, as on the data plane; `tenant` names one of the plan's tenants.
    pub fn from_pairs(
        plan: &Plan,
        pairs: Vec<(String, String)>,
        tenant: Option<&str>,
    ) -> Result<RequestContext, String> {
        let headers = pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .filter(|(k, _)| !CREDENTIAL_HEADERS.contains(&k.as_str()))
            .collect();
        let caller = match tenant {
            Some(name) if plan.tenants.enabled() => {
                let t = plan.tenants.by_name(name).ok_or_else(|| format!("unknown tenant '{name}'"))?;
                Some(Caller { tenant: t.clone(), key_id: Arc::from("offline") })
            }
            _ => None,
        };
        Ok(RequestContext { headers, caller, tenant_name: tenant.map(Arc::from) })
    }

    pub fn tenant(&self) -> Option<&Tenant> {
        self.caller.as_ref().map(|c| &*c.tenant)
    }
}

pub async fn decide(plan: &Plan, view: &RequestView, ctx: &RequestContext) -> Result<Decision, RouterError> {
    let tenant = ctx.tenant();
    let mut decision = match requested(plan, view) {
        Requested::Named(name) => explicit(plan, name, tenant)?,
        Requested::Auto => match tenant {
            Some(t) if !t.intent_routing => tenant_default(plan, t).ok_or_else(|| not_found(view))?,
            _ => {
                let text = view.classify_text(plan.classify_messages);
                let input = SignalInput {
                    text: &text,
                    view,
                    headers: &ctx.headers,
                    tenant: tenant.map(|t| &*t.name).or(ctx.tenant_name.as_deref()),
                };
                let mut d = classify(plan, &input, tenant).await;
                if let Some(t) = tenant {
                    entitled_target(plan, t, &mut d).ok_or_else(|| not_found(view))?;
                }
                d
            }
        },
    };
    if let Some(adapter) = decision.target.adapter.clone() {
        let input = StickyInput { caller: ctx.caller.as_ref(), user: view.user(), headers: &ctx.headers };
        let may_use = |a: &str| tenant.is_none_or(|t| t.adapters.contains(a));
        let explicit = decision.classifier == Classifier::Explicit;
        if let Some(assigned) =
            experiments::assign(&plan.experiments, &adapter, decision.category, explicit, &input, may_use)
        {
            decision.target.adapter = Some(assigned.experiment.arms[assigned.arm].adapter.clone());
            decision.experiment = Some(assigned);
        }
    }
    Ok(decision)
}

fn not_found(view: &RequestView) -> RouterError {
    RouterError::model_not_found(view.model().unwrap_or(""))
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

/// A name as the caller means it: its own alias first, then the router's names; `None` for
/// a name that does not exist or that the caller may not use (indistinguishable on purpose).
fn resolve_for(plan: &Plan, name: &str, tenant: Option<&Tenant>) -> Option<ModelRef> {
    match tenant {
        None => resolve_model(plan, name),
        Some(t) => t.aliases.get(name).cloned().or_else(|| resolve_model(plan, name)).filter(|r| t.may_use(r)),
    }
}

fn target_for(r: ModelRef) -> Target {
    match r {
        ModelRef::Base(base) => Target::named(base, None),
        ModelRef::Adapter { base, name } => Target::named(base, Some(name)),
    }
}

fn model_ref(t: &Target) -> ModelRef {
    match &t.adapter {
        Some(name) => ModelRef::Adapter { base: t.base, name: name.clone() },
        None => ModelRef::Base(t.base),
    }
}

fn explicit(plan: &Plan, name: &str, tenant: Option<&Tenant>) -> Result<Decision, RouterError> {
    let target = resolve_for(plan, name, tenant).map(target_for).ok_or_else(|| RouterError::model_not_found(name))?;
    Ok(Decision::new(Classifier::Explicit, None, 1.0, target))
}

/// What serves a tenant when intent routing is off or finds nothing it may use: its default
/// adapter, else the first base model it may use.
fn tenant_fallback(plan: &Plan, t: &Tenant) -> Option<Target> {
    let r = match &t.default_adapter {
        Some(a) => ModelRef::Adapter { base: plan.adapters.get(a)?.base, name: a.clone() },
        None => ModelRef::Base(*t.bases.first()?),
    };
    Some(target_for(r))
}

fn tenant_default(plan: &Plan, t: &Tenant) -> Option<Decision> {
    Some(Decision::new(Classifier::Default, None, 0.0, tenant_fallback(plan, t)?))
}

/// Keeps a routed decision within what the tenant may use: the category's best target it
/// may use, else its fallback. `None`: the tenant may use nothing at all.
fn entitled_target(plan: &Plan, t: &Tenant, d: &mut Decision) -> Option<()> {
    if t.may_use(&model_ref(&d.target)) {
        return Some(());
    }
    let from_category =
        d.category.and_then(|c| plan.categories[c].targets.iter().find(|x| t.may_use(&model_ref(x)))).cloned();
    d.target = match from_category {
        Some(x) => x,
        None => tenant_fallback(plan, t)?,
    };
    Some(())
}

/// Runs the signals in order; the first that decides wins. Always succeeds: with no decision
/// the default category serves.
pub async fn classify(plan: &Plan, input: &SignalInput<'_>, tenant: Option<&Tenant>) -> Decision {
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
        apply_hints(plan, &mut decision, h, tenant);
    }
    decision
}

/// Honours an external classifier's suggestions: a model or adapter the router knows (and
/// the tenant may use) replaces the category's target; a system prompt replaces the
/// category's; a reasoning setting replaces the target's. Each is recorded in
/// `Decision::hints`.
fn apply_hints(plan: &Plan, d: &mut Decision, h: Hints, tenant: Option<&Tenant>) {
    if let Some(m) = h.model {
        match resolve_for(plan, &m, tenant) {
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
    let mut d = Decision::new(classifier, Some(category), confidence, c.targets[0].clone());
    d.system_prompt = c.system_prompt.clone().map(|p| (p, c.system_prompt_mode));
    d.signals = signals;
    d
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
            None,
        );
        assert_eq!(d.adapter(), "legal-lora");
        assert_eq!(d.system_prompt.as_ref().map(|p| &*p.0), Some("Be terse."));
        assert_eq!(d.target.use_reasoning, Some(true));
        let mut d = for_category(&plan, 2, 0.9, Classifier::Default, vec![]);
        apply_hints(&plan, &mut d, Hints { model: Some("someone-elses-lora".into()), ..Hints::default() }, None);
        assert_eq!(d.adapter(), "");
        assert!(d.hints[0].ignored && d.hints[0].text.contains("someone-elses-lora"));
    }

    #[test]
    fn credentials_never_reach_classifiers() {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer secret".parse().unwrap());
        h.insert("cookie", "a=b".parse().unwrap());
        h.insert("X-Tenant-Id", "acme".parse().unwrap());
        let ctx = RequestContext::from_headers(&h, None);
        assert_eq!(ctx.headers, vec![("x-tenant-id".to_string(), "acme".to_string())]);
    }
}
