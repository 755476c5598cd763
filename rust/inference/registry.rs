//! Loaded models, shared by every plan that names the same model with the same settings, so
//! a reload neither reloads the tokenizer and sessions nor holds two copies in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::{ModelSpec, TextModel};

static LOADED: OnceLock<Mutex<HashMap<ModelSpec, Weak<TextModel>>>> = OnceLock::new();

pub fn get_or_load(spec: &ModelSpec) -> Result<Arc<TextModel>, String> {
    let map = LOADED.get_or_init(|| Mutex::new(HashMap::new()));
    let mut loaded = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(model) = loaded.get(spec).and_then(Weak::upgrade) {
        return Ok(model);
    }
    let model = Arc::new(TextModel::load(spec.clone())?);
    loaded.retain(|_, w| w.strong_count() > 0);
    loaded.insert(spec.clone(), Arc::downgrade(&model));
    Ok(model)
}
