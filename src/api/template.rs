//! A replica's pod template as a TFJob holds it: compact JSON text, read into a
//! `PodTemplateSpec` when the planner needs one.
//!
//! Every cached TFJob carries a template per replica type. As k8s-openapi's `PodTemplateSpec`
//! even a one-container template takes over 2 KiB (hundreds of `Option` fields, most of them
//! empty); as text it takes what its JSON takes, ~150 bytes for a small template. The planner
//! reads a template a few times per reconcile ([`crate::api::defaults::normalize`]), where
//! reading the text costs about what cloning the struct did.

use std::fmt;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A pod template (a core/v1 `PodTemplateSpec`), kept as compact JSON. It decodes and encodes
/// exactly as a `PodTemplateSpec` does.
#[derive(Clone, PartialEq, Eq)]
pub struct PodTemplate {
    json: Box<str>,
}

impl PodTemplate {
    /// The template of `spec`.
    pub fn new(spec: &PodTemplateSpec) -> Result<Self, serde_json::Error> {
        Ok(Self {
            json: serde_json::to_string(spec)?.into_boxed_str(),
        })
    }

    /// The template as a `PodTemplateSpec`. It was written from one, so reading it fails only
    /// if k8s-openapi cannot read back what it wrote.
    pub fn spec(&self) -> Result<PodTemplateSpec, serde_json::Error> {
        serde_json::from_str(&self.json)
    }

    /// Changes the template through its `PodTemplateSpec` (test builders; not on a hot path).
    pub fn edit(
        &mut self,
        change: impl FnOnce(&mut PodTemplateSpec),
    ) -> Result<(), serde_json::Error> {
        let mut spec = self.spec()?;
        change(&mut spec);
        *self = Self::new(&spec)?;
        Ok(())
    }

    /// Bytes of the template's JSON.
    pub fn json_len(&self) -> usize {
        self.json.len()
    }
}

impl fmt::Debug for PodTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PodTemplate").field(&&*self.json).finish()
    }
}

impl From<PodTemplateSpec> for PodTemplate {
    /// The template of `spec`. A `PodTemplateSpec` always encodes (string-keyed maps, no
    /// floats); should it ever not, the template is empty and the job is refused for having no
    /// `tensorflow` container rather than the operator stopping.
    fn from(spec: PodTemplateSpec) -> Self {
        Self::new(&spec).unwrap_or_else(|_| Self { json: "{}".into() })
    }
}

impl Serialize for PodTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PodTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = PodTemplateSpec::deserialize(deserializer)?;
        Self::new(&spec).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEMPLATE: &str = r#"{"metadata": {"labels": {"app": "tf"}},
        "spec": {"containers": [{"name": "tensorflow", "image": "tf:2",
                                 "ports": [{"name": "tfjob-port", "containerPort": 2222}]}],
                 "nodeSelector": {"pool": "gpu"}}}"#;

    #[test]
    fn a_template_decodes_and_encodes_as_a_pod_template_spec() {
        let compact: PodTemplate = serde_json::from_str(TEMPLATE).expect("decodes");
        let full: PodTemplateSpec = serde_json::from_str(TEMPLATE).expect("decodes");
        assert_eq!(compact.spec().expect("reads back"), full);
        assert_eq!(
            serde_json::to_value(&compact).expect("encodes"),
            serde_json::to_value(&full).expect("encodes")
        );
        // YAML too (kubectl-style manifests are read with serde-saphyr).
        let yaml: PodTemplate = serde_saphyr::from_str(TEMPLATE).expect("YAML decodes");
        assert_eq!(yaml, compact);
    }

    #[test]
    fn a_template_is_kept_as_small_as_its_json() {
        let compact: PodTemplate = serde_json::from_str(TEMPLATE).expect("decodes");
        let full: PodTemplateSpec = serde_json::from_str(TEMPLATE).expect("decodes");
        assert_eq!(
            compact.json_len(),
            serde_json::to_string(&full).map_or(0, |s| s.len())
        );
        assert!(compact.json_len() < 300, "{} bytes", compact.json_len());
        assert!(std::mem::size_of::<PodTemplate>() <= 16);
    }

    #[test]
    fn a_wrong_template_is_refused_when_decoded() {
        let wrong = json!({"spec": {"containers": "not a list"}});
        assert!(serde_json::from_value::<PodTemplate>(wrong).is_err());
    }

    #[test]
    fn an_edit_changes_the_template() {
        let mut t: PodTemplate = serde_json::from_str(TEMPLATE).expect("decodes");
        t.edit(|spec| {
            if let Some(s) = spec.spec.as_mut() {
                s.node_name = Some("n1".into());
            }
        })
        .expect("edits");
        let spec = t.spec().expect("reads back");
        assert_eq!(spec.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
    }
}
