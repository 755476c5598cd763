//! Applies a decision to the request body: `model` becomes the adapter (or base) name vLLM
//! knows, the category's system prompt goes in by its mode, and the reasoning setting is
//! written the way the base model's reasoning family expects. Nothing else is touched.

use serde_json::{Map, Value};

use super::Decision;
use crate::plan::{Plan, ReasoningSpec, SystemPromptMode};
use crate::request::{ApiKind, RequestView};

pub fn rewrite(plan: &Plan, decision: &Decision, view: &mut RequestView) {
    let body = &mut view.body;
    body.insert("model".into(), Value::String(plan.upstream_model(&decision.target).to_string()));
    // Normalised into `model`; vLLM has no such field.
    body.remove("adapter_id");
    if view.kind != ApiKind::Chat {
        return;
    }
    if let Some((prompt, mode)) = &decision.system_prompt {
        if let Some(Value::Array(messages)) = body.get_mut("messages") {
            apply_system_prompt(messages, prompt, *mode);
        }
    }
    if let (Some(use_reasoning), Some(family)) = (decision.use_reasoning(), &plan.bases[decision.target.base].reasoning)
    {
        apply_reasoning(body, family, use_reasoning, &decision.target.reasoning_effort);
    }
}

pub fn apply_system_prompt(messages: &mut Vec<Value>, prompt: &str, mode: SystemPromptMode) {
    let existing = messages.iter_mut().find(|m| m.get("role").and_then(Value::as_str) == Some("system"));
    match (existing, mode) {
        (None, _) => messages.insert(0, serde_json::json!({"role": "system", "content": prompt})),
        (Some(m), SystemPromptMode::Replace) => {
            m["content"] = Value::String(prompt.to_string());
        }
        (Some(m), SystemPromptMode::Insert) => match m.get_mut("content") {
            Some(Value::String(s)) => *s = format!("{prompt}\n\n{s}"),
            Some(Value::Array(parts)) => {
                parts.insert(0, serde_json::json!({"type": "text", "text": format!("{prompt}\n\n")}))
            }
            _ => m["content"] = Value::String(prompt.to_string()),
        },
    }
}

pub fn apply_reasoning(body: &mut Map<String, Value>, family: &ReasoningSpec, use_reasoning: bool, effort: &str) {
    match family {
        ReasoningSpec::ChatTemplateKwargs { parameter } => {
            let kwargs = body.entry("chat_template_kwargs").or_insert_with(|| Value::Object(Map::new()));
            if !kwargs.is_object() {
                *kwargs = Value::Object(Map::new());
            }
            kwargs[parameter.as_str()] = Value::Bool(use_reasoning);
        }
        ReasoningSpec::ReasoningEffort { parameter } => {
            // The router owns this field for routed requests; a client's value is replaced.
            body.remove(parameter.as_str());
            if use_reasoning {
                body.insert(parameter.clone(), Value::String(effort.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(v: Value) -> Vec<Value> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn system_prompt_modes() {
        let mut m = msgs(json!([{"role": "user", "content": "q"}]));
        apply_system_prompt(&mut m, "P", SystemPromptMode::Insert);
        assert_eq!(m[0], json!({"role": "system", "content": "P"}));

        let mut m = msgs(json!([{"role": "system", "content": "old"}, {"role": "user", "content": "q"}]));
        apply_system_prompt(&mut m, "P", SystemPromptMode::Replace);
        assert_eq!(m[0]["content"], "P");
        assert_eq!(m.len(), 2);

        let mut m = msgs(json!([{"role": "system", "content": "old"}, {"role": "user", "content": "q"}]));
        apply_system_prompt(&mut m, "P", SystemPromptMode::Insert);
        assert_eq!(m[0]["content"], "P\n\nold");

        let mut m = msgs(json!([{"role": "system", "content": [{"type": "text", "text": "old"}]}]));
        apply_system_prompt(&mut m, "P", SystemPromptMode::Insert);
        assert_eq!(m[0]["content"][0]["text"], "P\n\n");
        assert_eq!(m[0]["content"][1]["text"], "old");
    }

    #[test]
    fn reasoning_families() {
        let tk = ReasoningSpec::ChatTemplateKwargs { parameter: "enable_thinking".into() };
        let mut b = Map::new();
        b.insert("chat_template_kwargs".into(), json!({"other": 1}));
        apply_reasoning(&mut b, &tk, false, "medium");
        assert_eq!(b["chat_template_kwargs"], json!({"other": 1, "enable_thinking": false}));

        let re = ReasoningSpec::ReasoningEffort { parameter: "reasoning_effort".into() };
        let mut b = Map::new();
        b.insert("reasoning_effort".into(), json!("low"));
        apply_reasoning(&mut b, &re, true, "high");
        assert_eq!(b["reasoning_effort"], "high");
        apply_reasoning(&mut b, &re, false, "high");
        assert!(!b.contains_key("reasoning_effort"));
    }

    #[test]
    fn rewrite_sets_model_and_drops_adapter_id() {
        let plan = crate::plan::testing::plan();
        let mut view = RequestView::parse(
            ApiKind::Chat,
            br#"{"model":"MoM","adapter_id":"","messages":[{"role":"user","content":"rust question"}],"temperature":0.2}"#,
        )
        .unwrap();
        let d = super::super::decide::for_category(&plan, 0, 1.0, super::super::Classifier::Default, vec![]);
        rewrite(&plan, &d, &mut view);
        assert_eq!(view.body["model"], "tech-lora");
        assert!(!view.body.contains_key("adapter_id"));
        assert_eq!(view.body["messages"][0]["content"], "You are an engineer.");
        assert_eq!(view.body["chat_template_kwargs"]["enable_thinking"], true);
        assert_eq!(view.body["temperature"], 0.2);
    }
}
