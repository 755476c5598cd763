//! Tenants: who is calling (`keys.rs`), what they may use (entitlement, enforced in
//! decision/decide.rs and on `/v1/models`), which arm of an experiment serves them
//! (`experiments.rs`), and how much they may send (their limits; the counts are live state,
//! state/quotas.rs and state/store).
//!
//! With no tenants in the plan, authentication is off (a single-tenant deployment).

pub mod experiments;
pub mod keys;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::errors::{ErrorKind, RouterError};
use crate::plan::{ModelRef, PlanError, TenantSpec};
use crate::state::quotas::Limits;
use crate::util::secret::bearer;
use keys::KeyIndex;

#[derive(Debug)]
pub struct Tenant {
    pub name: Arc<str>,
    pub adapters: HashSet<Arc<str>>,
    /// Base model indexes the tenant may use.
    pub bases: Vec<usize>,
    pub default_adapter: Option<Arc<str>>,
    pub aliases: HashMap<String, ModelRef>,
    pub intent_routing: bool,
    pub limits: Limits,
}

impl Tenant {
    /// Whether the tenant may use a model.
    pub fn may_use(&self, r: &ModelRef) -> bool {
        match r {
            ModelRef::Base(b) => self.bases.contains(b),
            ModelRef::Adapter { name, .. } => self.adapters.contains(name),
        }
    }
}

/// The caller of a request: its tenant and the id of the key it used.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Arc<Tenant>,
    pub key_id: Arc<str>,
}

#[derive(Default)]
pub struct Tenants {
    pub list: Vec<Arc<Tenant>>,
    keys: KeyIndex,
}

impl Tenants {
    pub fn compile(specs: &[TenantSpec], models: &HashMap<String, ModelRef>) -> Result<Tenants, PlanError> {
        let mut out = Tenants::default();
        for (ti, t) in specs.iter().enumerate() {
            let path = format!("tenants[{ti}]");
            if out.list.iter().any(|x| *x.name == *t.name) {
                return Err(PlanError::new(format!("{path}.name"), format!("duplicate tenant '{}'", t.name)));
            }
            let adapter = |name: &str, p: String| match models.get(name) {
                Some(ModelRef::Adapter { name, .. }) => Ok(name.clone()),
                _ => Err(PlanError::new(p, format!("'{name}' is not an adapter"))),
            };
            let mut adapters = HashSet::new();
            for (ai, a) in t.adapters.iter().enumerate() {
                adapters.insert(adapter(a, format!("{path}.adapters[{ai}]"))?);
            }
            let mut bases = Vec::new();
            for (bi, b) in t.base_models.iter().enumerate() {
                match models.get(b) {
                    Some(ModelRef::Base(i)) => bases.push(*i),
                    _ => {
                        return Err(PlanError::new(
                            format!("{path}.base_models[{bi}]"),
                            format!("'{b}' is not a base model"),
                        ))
                    }
                }
            }
            let default_adapter =
                t.default_adapter.as_deref().map(|a| adapter(a, format!("{path}.default_adapter"))).transpose()?;
            let mut aliases = HashMap::new();
            for (alias, to) in &t.aliases {
                let r = models.get(to).cloned().ok_or_else(|| {
                    PlanError::new(format!("{path}.aliases.{alias}"), format!("'{to}' is not a model or adapter"))
                })?;
                aliases.insert(alias.clone(), r);
            }
            for (ki, k) in t.keys.iter().enumerate() {
                out.keys.add(ti, k, &format!("{path}.keys[{ki}]"))?;
            }
            out.list.push(Arc::new(Tenant {
                name: Arc::from(t.name.as_str()),
                adapters,
                bases,
                default_adapter,
                aliases,
                intent_routing: t.intent_routing,
                limits: Limits { rpm: t.rpm, tpm: t.tpm },
            }));
        }
        Ok(out)
    }

    /// Authentication is on when tenants are configured.
    pub fn enabled(&self) -> bool {
        !self.list.is_empty()
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.list.iter().find(|t| &*t.name == name)
    }

    /// The caller a request's `Authorization: Bearer <key>` names; `Ok(None)` when
    /// authentication is off. No key, or a key no tenant has: 401.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Caller>, RouterError> {
        if !self.enabled() {
            return Ok(None);
        }
        let unauthorized = |m: &str| RouterError::new(ErrorKind::Unauthorized, m);
        if !headers.contains_key(AUTHORIZATION) {
            return Err(unauthorized("This router needs an API key: send `Authorization: Bearer <key>`."));
        }
        let key = bearer(headers).ok_or_else(|| unauthorized("The Authorization header must be `Bearer <key>`."))?;
        let m = self.keys.find(key.as_bytes()).ok_or_else(|| unauthorized("Incorrect API key provided."))?;
        Ok(Some(Caller { tenant: self.list[m.tenant].clone(), key_id: m.id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::KeySpec;
    use sha2::{Digest, Sha256};

    pub fn key_spec(id: &str, key: &str) -> KeySpec {
        let d = Sha256::new().chain_update([1u8, 2, 3]).chain_update(key.as_bytes()).finalize();
        KeySpec { id: id.into(), salt_hex: "010203".into(), digest_hex: d.iter().map(|b| format!("{b:02x}")).collect() }
    }

    fn models() -> HashMap<String, ModelRef> {
        let mut m = HashMap::new();
        m.insert("base".to_string(), ModelRef::Base(0));
        m.insert("a-lora".to_string(), ModelRef::Adapter { base: 0, name: "a-lora".into() });
        m.insert("b-lora".to_string(), ModelRef::Adapter { base: 0, name: "b-lora".into() });
        m
    }

    fn spec(name: &str, key: &str, adapter: &str) -> TenantSpec {
        TenantSpec {
            name: name.into(),
            keys: vec![key_spec(&format!("{name}/1"), key)],
            adapters: vec![adapter.into()],
            base_models: vec!["base".into()],
            default_adapter: Some(adapter.into()),
            aliases: vec![("my-model".into(), adapter.into())],
            intent_routing: true,
            rpm: None,
            tpm: None,
        }
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
        h
    }

    #[test]
    fn keys_name_their_tenant_and_nothing_else_passes() {
        let t =
            Tenants::compile(&[spec("acme", "k-acme", "a-lora"), spec("beta", "k-beta", "b-lora")], &models()).unwrap();
        let c = t.authenticate(&bearer("k-beta")).unwrap().unwrap();
        assert_eq!(&*c.tenant.name, "beta");
        assert_eq!(&*c.key_id, "beta/1");
        assert!(c.tenant.may_use(&ModelRef::Adapter { base: 0, name: "b-lora".into() }));
        assert!(!c.tenant.may_use(&ModelRef::Adapter { base: 0, name: "a-lora".into() }));
        for bad in [bearer("k-gamma"), bearer(""), HeaderMap::new()] {
            assert_eq!(t.authenticate(&bad).unwrap_err().status().as_u16(), 401);
        }
    }

    #[test]
    fn off_without_tenants() {
        let t = Tenants::compile(&[], &models()).unwrap();
        assert!(t.authenticate(&HeaderMap::new()).unwrap().is_none());
    }

    #[test]
    fn unknown_adapter_is_a_plan_error() {
        let err = Tenants::compile(&[spec("acme", "k", "nope")], &models()).err().unwrap();
        assert_eq!(err.path, "tenants[0].adapters[0]");
    }
}
